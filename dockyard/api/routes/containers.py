"""Container routes: create, list, inspect, lifecycle (start, stop, restart, kill, pause, unpause,
wait), rename, remove, prune, logs, attach, resize and update. Each action publishes Docker's event."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from dockyard.api import bodies, hijack, shapes
from dockyard.api.errors import ApiError, json_line
from dockyard.api.routes import api_path
from dockyard.api.server import (
    api_version,
    bool_query,
    engine,
    json_query,
    json_response,
    long_poll,
    read_json,
    start_stream,
)
from dockyard.engine.containers import ContainerError, NotModified, detach
from dockyard.engine.containers.logs import parse_time
from dockyard.engine.containers.policy import parse_signal
from dockyard.engine.containers.service import PendingAttach
from dockyard.engine.daemon import Engine
from dockyard.image import filters as flt
from dockyard.shim.protocol import STREAM_IDS, frame

LIST_FILTERS = frozenset({"ancestor", "before", "expose", "exited", "health", "id", "is-task", "isolation",
                          "label", "name", "network", "publish", "since", "status", "volume"})
PATH = "/containers/{id}"
T = TypeVar("T")


def routes() -> list[web.RouteDef]:
    return [
        web.post(api_path("/containers/create"), create),
        web.get(api_path("/containers/json"), list_containers),
        web.post(api_path("/containers/prune"), prune),
        web.get(api_path(PATH + "/json"), inspect),
        web.post(api_path(PATH + "/start"), start),
        web.post(api_path(PATH + "/stop"), stop),
        web.post(api_path(PATH + "/restart"), restart),
        web.post(api_path(PATH + "/kill"), kill),
        web.post(api_path(PATH + "/pause"), pause),
        web.post(api_path(PATH + "/unpause"), unpause),
        web.post(api_path(PATH + "/wait"), wait),
        web.post(api_path(PATH + "/rename"), rename),
        web.post(api_path(PATH + "/resize"), resize),
        web.post(api_path(PATH + "/update"), update),
        web.post(api_path(PATH + "/attach"), attach),
        web.get(api_path(PATH + "/attach/ws"), attach_ws),
        web.get(api_path(PATH + "/logs"), logs),
        web.delete(api_path("/containers/{id:.+}"), remove),  # a link's name has a slash: parent/alias
    ]


def _ref(request: web.Request) -> str:
    return request.match_info["id"]


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"invalid value for {name}: {raw!r}") from None


def _lookup(eng: Engine, ref: str) -> dict[str, Any]:
    """The container's record (404 "No such container"); blocking."""
    return eng.containers.store.get(eng.containers.store.resolve(ref))


async def _record(eng: Engine, ref: str) -> dict[str, Any]:
    """The container's record (404 "No such container")."""
    return await eng.run(_lookup, eng, ref)


async def _event(eng: Engine, ref: str, action: str, **extra: str) -> None:
    eng.container_event(await _record(eng, ref), action, extra)


async def _no_content(eng: Engine, ref: str, action: str | None, work: Any, *args: Any,
                      **extra: str) -> web.Response:
    """Run a lifecycle call, publish its event (unless the service does); 204, or 304 when there
    was nothing to do. The record is read first: the container may be gone once the call returns
    (a --rm container that exited at once); both in one trip to the thread pool."""
    def call() -> tuple[dict[str, Any], bool]:
        record = _lookup(eng, ref)
        try:
            work(record["ID"], *args)
        except NotModified:
            return record, False
        return record, True

    record, done = await eng.run(call)
    if not done:
        return web.Response(status=304)
    if action:
        eng.container_event(record, action, extra)
    return web.Response(status=204)


# ---- create, list, inspect ------------------------------------------------------------------------

async def create(request: web.Request) -> web.Response:
    """POST /containers/create?name: 404 "No such image" lets the CLI pull and retry."""
    body = bodies.container_create(await read_json(request))
    eng = engine(request)

    def create_container() -> dict[str, Any]:  # one trip to the thread pool
        if body.get("Image"):
            eng.images.store.resolve(body["Image"])  # Docker's "No such image: x:tag"
        return eng.containers.store.get(eng.containers.create(body, request.query.get("name") or None))

    record = await eng.run(create_container)
    eng.container_event(record, "create")
    return json_response({"Id": record["ID"], "Warnings": []}, status=201)


async def list_containers(request: web.Request) -> web.Response:
    """GET /containers/json?all&limit&size&filters: newest first."""
    eng = engine(request)
    limit = _int_query(request, "limit") or 0
    filters = flt.normalize(json_query(request, "filters"), LIST_FILTERS)
    found = await eng.run(eng.containers.list, bool_query(request, "all") or limit > 0, filters,
                          bool_query(request, "size"))
    found.sort(key=lambda c: c["Created"], reverse=True)
    version = api_version(request)
    return json_response([shapes.container_summary(c, version) for c in (found[:limit] if limit > 0 else found)])


async def inspect(request: web.Request) -> web.Response:
    """GET /containers/{id}/json?size: with size, SizeRw and SizeRootFs as in the list."""
    eng = engine(request)
    doc = await eng.run(eng.containers.inspect, _ref(request))
    doc["ExecIDs"] = eng.execs.ids_of(doc["Id"]) or None
    if bool_query(request, "size"):
        doc["SizeRw"] = await eng.run(eng.containers.layer_size, doc["Id"])
        doc["SizeRootFs"] = doc["SizeRw"] + (await eng.images.inspect(doc["Image"]))["Size"]
    return json_response(shapes.container(doc, api_version(request)))


# ---- lifecycle ------------------------------------------------------------------------------------

async def start(request: web.Request) -> web.Response:
    """POST /containers/{id}/start."""
    eng = engine(request)
    return await _no_content(eng, _ref(request), None, eng.containers.start)  # the service publishes "start"


async def stop(request: web.Request) -> web.Response:
    """POST /containers/{id}/stop?t&signal: kill (the stop signal), die, stop events."""
    eng = engine(request)
    ref = _ref(request)
    record = await eng.run(eng.containers.inspect, ref)
    sig = request.query.get("signal") or None
    if record["State"]["Running"]:
        number = parse_signal(sig or record["Config"].get("StopSignal"))
        await _event(eng, ref, "kill", signal=str(number))
    return await _no_content(eng, ref, "stop", eng.containers.stop, _int_query(request, "t"), sig)


async def restart(request: web.Request) -> web.Response:
    """POST /containers/{id}/restart?t."""
    eng = engine(request)
    return await _no_content(eng, _ref(request), "restart", eng.containers.restart, _int_query(request, "t"))


async def kill(request: web.Request) -> web.Response:
    """POST /containers/{id}/kill?signal."""
    eng = engine(request)
    sig = parse_signal(request.query.get("signal") or "SIGKILL", 9)
    try:
        return await _no_content(eng, _ref(request), "kill", eng.containers.kill, sig, signal=str(sig))
    except ContainerError as e:  # dockerd's router names the container in every kill error
        raise type(e)(f"Cannot kill container: {_ref(request)}: {e}") from None


async def pause(request: web.Request) -> web.Response:
    """POST /containers/{id}/pause."""
    eng = engine(request)
    return await _no_content(eng, _ref(request), "pause", eng.containers.pause)


async def unpause(request: web.Request) -> web.Response:
    """POST /containers/{id}/unpause."""
    eng = engine(request)
    return await _no_content(eng, _ref(request), "unpause", eng.containers.unpause)


async def wait(request: web.Request) -> web.StreamResponse:
    """POST /containers/{id}/wait?condition: headers at once (the CLI waits for them before it
    starts the container), the body when the condition holds."""
    eng = engine(request)
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise ApiError(400, f"invalid condition: {condition!r}")
    cid = await eng.run(eng.containers.wait_target, _ref(request))
    seen = eng.containers.exit_count(cid)  # before the headers: an exit right after them is the next one
    response = await start_stream(request, "application/json")
    try:
        with long_poll(request):
            result = await eng.run_detached(eng.containers.wait, cid, condition, None, seen)
    except Exception as e:  # the headers are out: report in the body, as dockerd does
        result = {"StatusCode": -1, "Error": {"Message": str(e)}}
    await response.write(json_line({"Error": result.get("Error"), "StatusCode": result["StatusCode"]}))
    await response.write_eof()
    return response


async def rename(request: web.Request) -> web.Response:
    """POST /containers/{id}/rename?name."""
    eng = engine(request)
    ref, name = _ref(request), request.query.get("name", "")
    old = (await eng.run(eng.containers.inspect, ref))["Name"]
    await eng.run(eng.containers.rename, ref, name)
    await _event(eng, name, "rename", oldName=old)
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    """POST /containers/{id}/update: {"Warnings": [...]}."""
    eng = engine(request)
    body = bodies.container_update(await read_json(request))
    record = await _record(eng, _ref(request))
    warnings = await eng.run(eng.containers.update, record["ID"], body)
    eng.container_event(record, "update")
    return json_response({"Warnings": warnings or None})


async def resize(request: web.Request) -> web.Response:
    """POST /containers/{id}/resize?h&w."""
    eng = engine(request)
    await eng.run(eng.containers.resize, _ref(request), _int_query(request, "h") or 0, _int_query(request, "w") or 0)
    return web.Response(status=200)


# ---- remove, prune --------------------------------------------------------------------------------

async def remove(request: web.Request) -> web.Response:
    """DELETE /containers/{id}?force&v&link (destroy is published by the engine)."""
    eng = engine(request)
    await eng.run(eng.containers.remove, _ref(request), bool_query(request, "force"), bool_query(request, "v"),
                  bool_query(request, "link"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    """POST /containers/prune?filters: every stopped container (label and until filters)."""
    eng = engine(request)
    filters = flt.normalize(json_query(request, "filters"), frozenset({"label", "label!", "until"}))
    until = flt.timestamp(filters["until"][0]) if filters.get("until") else None

    def wanted(record: dict[str, Any]) -> bool:
        if not flt.labels_pass(filters, record["Config"].get("Labels")):
            return False
        return until is None or parse_time(record["Created"]) / 1e9 < until

    records = [r for r in await eng.run(eng.containers.store.all) if not r["State"]["Running"] and wanted(r)]
    deleted, reclaimed = [], 0
    for record in records:
        with contextlib.suppress(Exception):
            size = await eng.run(eng.containers.layer_size, record["ID"])
            await eng.run(eng.containers.remove, record["ID"])
            deleted.append(record["ID"])
            reclaimed += size
    eng.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


# ---- logs -----------------------------------------------------------------------------------------

def _seconds(request: web.Request, name: str) -> float:
    raw = request.query.get(name, "")
    if not raw:
        return 0
    try:
        return float(raw)
    except ValueError:
        return flt.timestamp(raw)


def _encode(tty: bool, stream: str, data: bytes) -> bytes:
    """Output as a client reads it: raw with a tty, else in multiplexed frames."""
    return data if tty else frame(STREAM_IDS[stream], data)


async def _threaded(entries: Iterator[T]) -> AsyncIterator[T]:
    """Iterate entries in a daemon thread (following blocks), handing them over through a bounded
    queue; the thread stops once the consumer is gone or the engine closed under it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[T | None] = asyncio.Queue(256)
    stop = threading.Event()

    def run() -> None:
        with contextlib.suppress(Exception):  # the loop or the container store closed (daemon stopping)
            try:
                for entry in entries:
                    if stop.is_set():
                        return
                    asyncio.run_coroutine_threadsafe(queue.put(entry), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop)

    threading.Thread(target=run, name="dockyardd-logs", daemon=True).start()
    try:
        while (entry := await queue.get()) is not None:
            yield entry
    finally:
        stop.set()
        while not queue.empty():  # unblock a pending put so that the thread sees stop
            queue.get_nowait()


async def logs(request: web.Request) -> web.StreamResponse:
    """GET /containers/{id}/logs: frames without a tty, raw bytes with one."""
    stdout, stderr = bool_query(request, "stdout"), bool_query(request, "stderr")
    if not stdout and not stderr:
        raise ApiError(400, "Bad parameters: you must choose at least one stream")
    eng = engine(request)
    record = await eng.run(eng.containers.inspect, _ref(request))
    tty = bool(record["Config"].get("Tty"))
    entries = await eng.run(lambda: eng.containers.logs(
        record["Id"], stdout, stderr, _seconds(request, "since"), _seconds(request, "until"),
        request.query.get("tail") or None, bool_query(request, "timestamps"), bool_query(request, "follow")))
    details, timestamps = bool_query(request, "details"), bool_query(request, "timestamps")
    response = await start_stream(request, hijack.RAW_STREAM if tty else hijack.MULTIPLEXED_STREAM)
    with long_poll(request):
        async with contextlib.aclosing(_threaded(entries)) as threaded:
            async for stream_name, data in threaded:
                if details:  # dockerd: the entry's attributes (none recorded here) and a space, after the time
                    stamp, _, rest = data.partition(b" ") if timestamps else (b"", b"", data)
                    data = (stamp + b" " if timestamps else b"") + b" " + rest
                await response.write(_encode(tty, stream_name, data))
    await response.write_eof()
    return response


# ---- attach ---------------------------------------------------------------------------------------

async def attach(request: web.Request) -> web.StreamResponse:
    """POST /containers/{id}/attach?stream&logs&stdin&stdout&stderr: hijacked; logs=1 replays the
    log first; stream=1 then proxies the shim's attach stream from the container's (next) start
    until its output ends."""
    async with _attach_request(request) as (record, pending, want_stdin, stdout, stderr, keys):
        return await _attached(request, record, pending, want_stdin, stdout, stderr, keys)


async def attach_ws(request: web.Request) -> web.StreamResponse:
    """GET /containers/{id}/attach/ws (same query as attach): the attach over a WebSocket, as
    dockerd's: binary messages carry the output raw (stdout and stderr unframed, even without a
    tty), and the client's messages go to the container's stdin."""
    async with _attach_request(request) as (record, pending, want_stdin, stdout, stderr, keys):
        eng = engine(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        with long_poll(request):
            if bool_query(request, "logs") and (stdout or stderr) and record["LogPath"]:
                for _stream, data in await eng.run(lambda: list(eng.containers.logs(record["Id"], stdout, stderr))):
                    await ws.send_bytes(data)
            if pending is not None:
                current, shim = await eng.run_detached(pending.wait)
                eng.container_event(current, "attach")
                tty = bool(current["Config"].get("Tty"))
                stdin = want_stdin and bool(current["Config"].get("OpenStdin"))
                watcher = detach.DetachWatcher(keys) if stdin and tty else None
                if await _proxy_ws(ws, shim, tty, stdin, watcher):
                    eng.container_event(current, "detach")
            await ws.close()
        return ws


AttachRequest = tuple[dict[str, Any], PendingAttach | None, bool, bool, bool, bytes]


@contextlib.asynccontextmanager
async def _attach_request(request: web.Request) -> AsyncIterator[AttachRequest]:
    """An attach's query read: (record, pending stream or None, stdin, stdout, stderr, detach
    keys); the pending attach is dropped when the block ends unless it was taken."""
    eng = engine(request)
    ref = _ref(request)
    record = await eng.run(eng.containers.inspect, ref)
    want_stdin, stdout, stderr = (bool_query(request, name) for name in ("stdin", "stdout", "stderr"))
    keys = _detach_keys(request.query.get("detachKeys") or detach.DEFAULT_KEYS)
    # registered before the answer, after which the client may start the container
    pending = await eng.run(eng.containers.prepare_attach, ref, want_stdin, stdout, stderr) \
        if bool_query(request, "stream") else None
    try:
        yield record, pending, want_stdin, stdout, stderr, keys
    finally:
        if pending is not None:
            pending.cancel()  # a no-op once the stream was taken


async def _attached(request: web.Request, record: dict[str, Any], pending: PendingAttach | None,
                    want_stdin: bool, stdout: bool, stderr: bool, keys: bytes) -> web.StreamResponse:
    eng = engine(request)
    async with hijack.hijack(request, head_first=True) as (reader, writer):
        if bool_query(request, "logs") and (stdout or stderr) and record["LogPath"]:  # none: no log to replay
            entries = await eng.run(lambda: list(eng.containers.logs(record["Id"], stdout, stderr)))
            writer.write(b"".join(_encode(bool(record["Config"].get("Tty")), *entry) for entry in entries))
        if pending is not None:
            current, shim = await eng.run_detached(pending.wait)
            eng.container_event(current, "attach")
            stdin = want_stdin and bool(current["Config"].get("OpenStdin"))
            watcher = detach.DetachWatcher(keys) if stdin and current["Config"].get("Tty") else None
            if await _proxy(reader, writer, shim, stdin, watcher):
                eng.container_event(current, "detach")
    return hijack.done()


def _detach_keys(spec: str) -> bytes:
    try:
        return detach.parse_keys(spec)
    except ValueError as e:
        raise ApiError(400, str(e)) from None


async def _proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, shim: socket.socket,
                 stdin: bool, watcher: detach.DetachWatcher | None = None) -> bool:
    """Client bytes → the shim (its EOF half-closes toward the shim), shim output → the client;
    True when the client's detach keys ended the session (the container keeps running)."""
    shim.setblocking(False)
    shim_reader, shim_writer = await asyncio.open_connection(sock=shim)

    async def client_input() -> AsyncIterator[bytes]:
        while stdin and (data := await reader.read(65536)):
            yield data

    async def downstream() -> None:
        with contextlib.suppress(ConnectionError):
            while data := await shim_reader.read(65536):
                writer.write(data)
                await writer.drain()

    try:
        return await _pump(_feed_shim(client_input(), shim_writer, stdin, watcher), downstream())
    finally:
        shim_writer.close()


async def _feed_shim(chunks: AsyncIterator[bytes], shim_writer: asyncio.StreamWriter, stdin: bool,
                     watcher: detach.DetachWatcher | None) -> bool:
    """The client's input (chunks) to the shim, watched for the detach keys: True when they ended
    it; else, once the input ends, stdin is half-closed toward the shim if attached (False)."""
    with contextlib.suppress(ConnectionError):
        async for data in chunks:
            detached = False
            if watcher is not None:
                data, detached = watcher.feed(data)
            shim_writer.write(data)
            await shim_writer.drain()
            if detached:
                return True
        if stdin:
            shim_writer.write_eof()
    return False


async def _pump(upstream: Coroutine[Any, Any, bool], downstream: Coroutine[Any, Any, None],
                output_outlives_input: bool = True) -> bool:
    """Run an attach's two directions until the output ends (False) or the client's input says it
    detached (True); with output_outlives_input false the end of the input ends it too (False)."""
    feeding = asyncio.create_task(upstream)
    draining = asyncio.create_task(downstream)
    try:
        await asyncio.wait({feeding, draining}, return_when=asyncio.FIRST_COMPLETED)
        if feeding.done() and not feeding.cancelled() and feeding.result():
            return True
        if output_outlives_input:
            await draining  # the output ends (the container exited, or its stdout closed)
        return False
    finally:
        feeding.cancel()
        draining.cancel()


async def _proxy_ws(ws: web.WebSocketResponse, shim: socket.socket, tty: bool, stdin: bool,
                    watcher: detach.DetachWatcher | None) -> bool:
    """_proxy for a WebSocket: the client's messages → the shim, shim output → binary messages,
    unframed; the client's close ends the session (after half-closing stdin toward the shim)."""
    shim.setblocking(False)
    shim_reader, shim_writer = await asyncio.open_connection(sock=shim)

    async def client_input() -> AsyncIterator[bytes]:
        async for message in ws:  # read to the client's close even without stdin
            if stdin and message.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                yield message.data if message.type == WSMsgType.BINARY else message.data.encode()

    async def downstream() -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                if tty:
                    data = await shim_reader.read(65536)
                    if not data:
                        return
                else:
                    header = await shim_reader.readexactly(8)
                    data = await shim_reader.readexactly(int.from_bytes(header[4:], "big"))
                await ws.send_bytes(data)

    try:
        return await _pump(_feed_shim(client_input(), shim_writer, stdin, watcher), downstream(),
                           output_outlives_input=False)
    finally:
        shim_writer.close()
