"""Container filesystem routes: archive (docker cp: HEAD stat, GET, PUT), export, changes (docker
diff) and commit."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import web

from dockyard.api.errors import ApiError
from dockyard.api.routes import api_path
from dockyard.api.routes.containers import PATH
from dockyard.api.server import bool_query, engine, json_response, read_json, start_stream
from dockyard.api.streams import body_file, drain, response_writer
from dockyard.engine.containers import changes
from dockyard.engine.containers.archive import ContainerFiles, export
from dockyard.engine.daemon import Engine

STAT_HEADER = "X-Docker-Container-Path-Stat"


def routes() -> list[web.RouteDef]:
    return [
        web.head(api_path(PATH + "/archive"), archive_stat),
        web.get(api_path(PATH + "/archive"), get_archive, allow_head=False),
        web.put(api_path(PATH + "/archive"), put_archive),
        web.get(api_path(PATH + "/export"), export_container),
        web.get(api_path(PATH + "/changes"), container_changes),
        web.post(api_path("/commit"), commit),
    ]


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise web.HTTPBadRequest(text="path is required")
    return path


def _stat_header(doc: dict[str, object]) -> dict[str, str]:
    return {STAT_HEADER: base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()}


async def _tar_response(request: web.Request, eng: Engine, headers: dict[str, str], work: object) -> web.StreamResponse:
    """Stream what work(out) writes as an application/x-tar body."""
    response = await start_stream(request, "application/x-tar", headers)
    out = response_writer(response, asyncio.get_running_loop())

    def write() -> None:
        with out:
            work(out)  # type: ignore[operator]

    await eng.run(write)
    await response.write_eof()
    return response


async def archive_stat(request: web.Request) -> web.Response:
    """HEAD /containers/{id}/archive?path: the path's stat in the header."""
    eng = engine(request)

    def stat() -> dict[str, Any]:
        with ContainerFiles(eng.containers, request.match_info["id"]) as files:
            return files.stat(_path(request))

    return web.Response(status=200, headers=_stat_header(await eng.run(stat)))


async def get_archive(request: web.Request) -> web.StreamResponse:
    """GET /containers/{id}/archive?path: the stat header and the path as a tar."""
    eng = engine(request)
    path = _path(request)
    files = ContainerFiles(eng.containers, request.match_info["id"])
    await eng.run(files.__enter__)
    try:
        headers = _stat_header(await eng.run(files.stat, path))
        eng.container_event(files.record, "archive-path")
        return await _tar_response(request, eng, headers, lambda out: files.write_archive(path, out))
    finally:  # shielded: aiohttp cancels the handler when the client hangs up after the tar
        await asyncio.shield(eng.run(files.__exit__, None, None, None))


async def put_archive(request: web.Request) -> web.Response:
    """PUT /containers/{id}/archive?path&noOverwriteDirNonDir&copyUIDGID: unpack the tar body."""
    eng = engine(request)
    path = _path(request)
    body = body_file(request)

    def extract() -> dict[str, Any]:
        with ContainerFiles(eng.containers, request.match_info["id"]) as files:
            files.extract(path, body, bool_query(request, "noOverwriteDirNonDir"),
                          bool_query(request, "copyUIDGID"))
            return files.record

    try:
        eng.container_event(await eng.run(extract), "extract-to-dir")
    except Exception:
        await drain(request)
        raise
    return web.Response(status=200)


async def export_container(request: web.Request) -> web.StreamResponse:
    """GET /containers/{id}/export: the whole filesystem as a tar."""
    eng = engine(request)
    ref = await eng.run(eng.containers.store.resolve, request.match_info["id"])
    response = await _tar_response(request, eng, {}, lambda out: export(eng.containers, ref, out))
    eng.container_event(await eng.run(eng.containers.store.get, ref), "export")
    return response


async def container_changes(request: web.Request) -> web.Response:
    """GET /containers/{id}/changes: docker diff."""
    eng = engine(request)
    return json_response(await eng.run(changes.changes, eng.containers, request.match_info["id"]) or None)


async def commit(request: web.Request) -> web.Response:
    """POST /commit?container&repo&tag&comment&author&pause&changes: body = config overrides."""
    body = await read_json(request)
    if body is not None and not isinstance(body, dict):
        raise ApiError(400, "invalid JSON: a container config object is expected")
    eng = engine(request)
    query = request.query
    ref = query.get("container", "")
    pause = bool_query(request, "pause") or query.get("pause", "") == ""  # default true
    image_id = await eng.run(lambda: changes.commit(
        eng.containers, ref, query.get("repo", ""), query.get("tag", ""), query.get("comment", ""),
        query.get("author", ""), pause, query.getall("changes", []), body))
    record = await eng.run(eng.containers.store.get, await eng.run(eng.containers.store.resolve, ref))
    if repo := query.get("repo", ""):  # as dockerd: the image's tag event, then the container's commit
        tag = query.get("tag", "")
        await eng.run(eng.images.tagged, image_id, f"{repo}:{tag}" if tag else repo)
    eng.container_event(record, "commit", {"comment": query.get("comment", ""), "imageID": image_id,
                                           "imageRef": query.get("repo", "")})
    return json_response({"Id": image_id}, status=201)
