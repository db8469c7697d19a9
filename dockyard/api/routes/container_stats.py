"""Container resource routes: top (processes) and stats (one-shot, single or streamed samples)."""

from __future__ import annotations

import contextlib

from aiohttp import web

from dockyard.api.errors import ApiError, json_line
from dockyard.api.routes import api_path
from dockyard.api.routes.containers import PATH, _threaded
from dockyard.api.server import bool_query, engine, json_response, long_poll, start_stream
from dockyard.engine.containers import stats
from dockyard.engine.containers.top import top as container_top


def routes() -> list[web.RouteDef]:
    return [web.get(api_path(PATH + "/top"), top), web.get(api_path(PATH + "/stats"), container_stats)]


async def top(request: web.Request) -> web.Response:
    """GET /containers/{id}/top?ps_args."""
    eng = engine(request)
    ref = request.match_info["id"]
    found = await eng.run(container_top, eng.containers, ref, request.query.get("ps_args") or None)
    eng.container_event(await eng.run(eng.containers.store.get, await eng.run(eng.containers.store.resolve, ref)),
                        "top")
    return json_response(found)


async def container_stats(request: web.Request) -> web.StreamResponse:
    """GET /containers/{id}/stats?stream&one-shot: JSON lines every second, or one document."""
    eng = engine(request)
    stream = request.query.get("stream", "") == "" or bool_query(request, "stream")  # default true
    one_shot = bool_query(request, "one-shot")
    await eng.run(eng.containers.store.resolve, request.match_info["id"])  # 404 before any output
    if stream and one_shot:
        raise ApiError(400, "cannot have stream=true and one-shot=true")
    entries = stats.samples(eng.containers, request.match_info["id"], stream, one_shot)
    if not stream:
        return json_response(await eng.run_detached(next, entries))
    response = await start_stream(request, "application/json")
    with long_poll(request):
        async with contextlib.aclosing(_threaded(entries)) as threaded:
            async for doc in threaded:
                await response.write(json_line(doc))
    await response.write_eof()
    return response
