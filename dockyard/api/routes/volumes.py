"""Volume routes: create, list, inspect, remove, prune (the engine publishes create, destroy and
prune events)."""

from __future__ import annotations

from aiohttp import web

from dockyard.api import versions
from dockyard.api.errors import ApiError
from dockyard.api.routes import api_path
from dockyard.api.server import bool_query, engine, json_query, json_response, read_json

PATH = "/volumes/{name}"
_ALL_BY_DEFAULT_BEFORE = (1, 42)  # older clients' prune removed named volumes too


def routes() -> list[web.RouteDef]:
    return [
        web.get(api_path("/volumes"), list_volumes),
        web.post(api_path("/volumes/create"), create),
        web.post(api_path("/volumes/prune"), prune),
        web.get(api_path(PATH), inspect),
        web.delete(api_path(PATH), remove),
    ]


async def list_volumes(request: web.Request) -> web.Response:
    """GET /volumes?filters."""
    eng = engine(request)
    found = await eng.run(eng.volumes.list, json_query(request, "filters"))
    return json_response({"Volumes": found, "Warnings": None})


def _string_map(body: dict, key: str) -> dict[str, str] | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
        raise ApiError(400, f"invalid {key}: a map of strings is expected")
    return value


async def create(request: web.Request) -> web.Response:
    """POST /volumes/create {Name, Driver, DriverOpts, Labels}: 201 and the volume."""
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid volume create request")
    eng = engine(request)
    volume = await eng.run(eng.volumes.create, body.get("Name") or "", body.get("Driver") or "",
                           _string_map(body, "Labels"), _string_map(body, "DriverOpts"))
    return json_response(volume, status=201)


async def inspect(request: web.Request) -> web.Response:
    """GET /volumes/{name}."""
    eng = engine(request)
    return json_response(await eng.run(eng.volumes.inspect, request.match_info["name"]))


async def remove(request: web.Request) -> web.Response:
    """DELETE /volumes/{name}?force."""
    eng = engine(request)
    await eng.run(eng.volumes.remove, request.match_info["name"], bool_query(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    """POST /volumes/prune?filters: anonymous unused volumes (all unused ones with all=true, or
    for clients older than API 1.42)."""
    eng = engine(request)
    filters = dict(json_query(request, "filters") or {})
    prefix = request.match_info.get("version", "").strip("v/")
    if prefix and versions.parse(prefix) < _ALL_BY_DEFAULT_BEFORE and "all" not in filters:
        filters["all"] = ["true"]
    deleted, reclaimed = await eng.run(eng.volumes.prune, filters)
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})
