"""Exec routes: create, start (hijacked like attach, or detached), resize, inspect; with Docker's
exec_create / exec_start / exec_die container events."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dockyard.api import bodies, hijack
from dockyard.api.errors import ApiError
from dockyard.api.routes import api_path
from dockyard.api.server import engine, json_response, read_json
from dockyard.engine.containers.execs import Exec
from dockyard.engine.containers.store import Record
from dockyard.engine.daemon import Engine

log = logging.getLogger("dockyardd.api")
_background: set[asyncio.Task[None]] = set()  # running execs (a reference keeps each task alive)


def routes() -> list[web.RouteDef]:
    return [
        web.post(api_path("/containers/{id}/exec"), create),
        web.post(api_path("/exec/{id}/start"), start),
        web.post(api_path("/exec/{id}/resize"), resize),
        web.get(api_path("/exec/{id}/json"), inspect),
    ]


def _event(eng: Engine, record: Record, ex: Exec, action: str, **extra: str) -> None:
    eng.container_event(record, action, {"execID": ex.id, **extra})


def _with_record(eng: Engine, ex: Exec) -> tuple[Exec, Record]:
    """ex and its container's record (for the events). Exec create and start read their records
    by key on the event loop, as the start's set-up does (SQLite in WAL mode, a few hundred
    microseconds): a trip to the thread pool and back costs more than that on a busy machine."""
    return ex, eng.containers.store.get(ex.container_id)


async def create(request: web.Request) -> web.Response:
    """POST /containers/{id}/exec → 201 {"Id"}."""
    body = bodies.exec_create(await read_json(request))
    eng = engine(request)
    ex, record = _with_record(eng, eng.execs.get(eng.execs.create(request.match_info["id"], body)))
    _event(eng, record, ex, "exec_create: " + " ".join(ex.config["Cmd"]))
    return json_response({"Id": ex.id}, status=201)


async def _run(eng: Engine, ex: Exec, record: Record,
               stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, raw: bool | None = None) -> None:
    """Run the exec; its events carry the container's record as read when it was started."""
    _event(eng, record, ex, "exec_start: " + " ".join(ex.config["Cmd"]))
    await eng.execs.start(ex.id, stream, raw)
    _event(eng, record, ex, "exec_die", exitCode=str(ex.exit_code))


def _keep(eng: Engine, ex: Exec, record: Record, stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
          raw: bool | None = None) -> asyncio.Task[None]:
    """The exec run as a task of its own, which outlives its request: a detached exec, or a client
    that detached or went away, leaves the process running and tracked to its exit (as dockerd)."""
    task = asyncio.create_task(_run(eng, ex, record, stream, raw))
    _background.add(task)

    def finished(t: asyncio.Task[None]) -> None:
        _background.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("exec %s: %s", ex.id[:12], t.exception())
    task.add_done_callback(finished)
    return task


async def start(request: web.Request) -> web.StreamResponse:
    """POST /exec/{id}/start {"Detach", "Tty"}: Detach answers 200 at once; otherwise the
    connection is hijacked and carries the process's stdio until it exits, in 8-byte frames
    unless this request's Tty is set (whatever the exec's own Tty, as dockerd)."""
    body = bodies.exec_start(await read_json(request))
    eng = engine(request)
    ex, record = _with_record(eng, eng.execs.startable(request.match_info["id"]))
    if body.get("Detach"):  # answered once the exec runs, as dockerd (inspect then shows it running)
        task = _keep(eng, ex, record, None)
        while not (ex.running or ex.exit_code is not None or task.done()):
            await asyncio.sleep(0.002)
        return web.Response(status=200)
    async with hijack.hijack(request) as stream:
        try:
            await asyncio.shield(_keep(eng, ex, record, stream, bool(body.get("Tty"))))
        except Exception as e:  # the stream is hijacked now: report on it as stdout, as dockerd does
            text = f"{e}\r\n".encode()
            stream[1].write(text if body.get("Tty") else b"\x01\0\0\0" + len(text).to_bytes(4, "big") + text)
    return hijack.done()


async def resize(request: web.Request) -> web.Response:
    """POST /exec/{id}/resize?h&w."""
    try:
        height, width = int(request.query.get("h", "0")), int(request.query.get("w", "0"))
    except ValueError:
        raise ApiError(400, "invalid h or w") from None
    engine(request).execs.resize(request.match_info["id"], height, width)
    return web.Response(status=200)


async def inspect(request: web.Request) -> web.Response:
    """GET /exec/{id}/json."""
    return json_response(engine(request).execs.inspect(request.match_info["id"]))
