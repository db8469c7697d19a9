"""Network routes: list, inspect, create, remove, prune, connect and disconnect."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.errors import ApiError
from dockyard.api.routes import api_path
from dockyard.api.server import engine, json_query, json_response, read_json
from dockyard.engine.networks.views import LIST_FILTERS
from dockyard.image import filters as flt

PATH = "/networks/{id}"


def routes() -> list[web.RouteDef]:
    return [
        web.get(api_path("/networks"), list_networks),
        web.post(api_path("/networks/create"), create),
        web.post(api_path("/networks/prune"), prune),
        web.get(api_path(PATH), inspect),
        web.delete(api_path(PATH), remove),
        web.post(api_path(PATH + "/connect"), connect),
        web.post(api_path(PATH + "/disconnect"), disconnect),
    ]


async def list_networks(request: web.Request) -> web.Response:
    """GET /networks?filters."""
    eng = engine(request)
    filters = flt.normalize(json_query(request, "filters"), LIST_FILTERS)
    return json_response(await eng.run(eng.networks.list, filters))


async def inspect(request: web.Request) -> web.Response:
    """GET /networks/{id}?verbose&scope."""
    eng = engine(request)
    scope = request.query.get("scope", "")
    record = await eng.run(eng.networks.inspect, request.match_info["id"])
    if scope and scope != record["Scope"]:
        raise ApiError(404, f"network {request.match_info['id']} not found")
    return json_response(record)


async def create(request: web.Request) -> web.Response:
    """POST /networks/create: 201 {"Id", "Warning"}."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "network name cannot be empty")
    eng = engine(request)
    record = await eng.run(eng.networks.create, body)
    return json_response({"Id": record["Id"], "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    """DELETE /networks/{id}."""
    eng = engine(request)
    await eng.run(eng.networks.remove, request.match_info["id"])
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    """POST /networks/prune?filters (label, label!, until)."""
    eng = engine(request)
    filters = flt.normalize(json_query(request, "filters"), frozenset({"label", "label!", "until"}))
    removed = await eng.run(eng.networks.prune, filters)
    eng.events.publish("network", "prune", "", {"reclaimed": "0"})
    return json_response({"NetworksDeleted": removed or None})


async def connect(request: web.Request) -> web.Response:
    """POST /networks/{id}/connect {"Container", "EndpointConfig"} (events come from the endpoint)."""
    body = await read_json(request) or {}
    eng = engine(request)
    await eng.run(eng.containers.connect_network, request.match_info["id"], body.get("Container") or "",
                  body.get("EndpointConfig"))
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    """POST /networks/{id}/disconnect {"Container", "Force"}."""
    body = await read_json(request) or {}
    eng = engine(request)
    await eng.run(eng.containers.disconnect_network, request.match_info["id"], body.get("Container") or "",
                  bool(body.get("Force")))
    return web.Response(status=200)
