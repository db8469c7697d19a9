"""The aiohttp application of dockyardd: Docker's headers on every response, the API version
check of /vX.Y/ prefixes, Docker's JSON errors, request helpers, and the listeners (unix sockets,
loopback or TLS tcp)."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from dockyard.api import routes, versions
from dockyard.api.errors import JSON_HEADERS, ApiError, error_response, json_line, status_of
from dockyard.engine.config import ENGINE_VERSION, ConfigError, DaemonConfig, Listener
from dockyard.engine.containers import ContainerError
from dockyard.engine.daemon import Engine

log = logging.getLogger("dockyardd.api")

ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)
LONG_POLLS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("long_polls", set)
SERVER_HEADER = f"Docker/{ENGINE_VERSION} (linux)"
JSON_LIMIT = 4 * 1024 * 1024  # the largest JSON request body accepted
SOCKET_GROUP = "dockyard"
STREAMING = "dockyard.streaming"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_MESSAGES = {404: "page not found", 405: "method not allowed"}


def engine(request: web.Request) -> Engine:
    """The engine serving request."""
    return request.app[ENGINE]


# ---- responses and requests -----------------------------------------------------------------

def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON body as dockerd writes it (one line, newline-terminated)."""
    return web.Response(status=status, body=json_line(data), headers=JSON_HEADERS)


async def start_stream(request: web.Request, content_type: str,
                       headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Begin a streamed (chunked) 200 response; errors after this point end the connection."""
    response = web.StreamResponse(headers={"Content-Type": content_type, **(headers or {})})
    response.enable_chunked_encoding()
    request[STREAMING] = True
    await response.prepare(request)
    return response


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (None when empty): 400 for a wrong Content-Type or bad JSON,
    413 above JSON_LIMIT."""
    body = await request.read()
    if not body.strip():
        return None
    ctype = request.headers.get("Content-Type", "")
    if ctype and ctype.split(";")[0].strip().lower() != "application/json":
        raise ApiError(400, f"unsupported Content-Type header ({ctype}): must be 'application/json'")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"invalid JSON: {e}") from None


def bool_query(request: web.Request, name: str) -> bool:
    """A boolean query parameter as dockerd reads it: absent, "", 0, no, false, none → False."""
    return request.query.get(name, "").strip().lower() not in ("", "0", "no", "false", "none")


def json_query(request: web.Request, name: str) -> dict[str, Any] | None:
    """A JSON-object query parameter such as filters (None when absent or empty)."""
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ApiError(400, f"invalid {name} parameter: {e}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"invalid {name} parameter: a JSON object is expected")
    return value


@contextlib.contextmanager
def long_poll(request: web.Request) -> Iterator[None]:
    """Mark the running handler as one that may wait indefinitely (attach, exec, wait, logs
    --follow): daemon shutdown cancels it rather than waiting for it to end."""
    tasks = request.app[LONG_POLLS]
    task = asyncio.current_task()
    assert task is not None
    tasks.add(task)
    try:
        yield
    finally:
        tasks.discard(task)


async def _cancel_long_polls(app: web.Application) -> None:
    for task in list(app[LONG_POLLS]):
        task.cancel()


# ---- middlewares and headers ----------------------------------------------------------------

@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as Docker's {"message"} JSON with dockerd's status."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, _HTTP_MESSAGES.get(e.status) or e.text or e.reason)
    except Exception as e:
        if request.get(STREAMING):
            raise
        status = status_of(e)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, e,
                      exc_info=not isinstance(e, (ApiError, ContainerError)))
        return error_response(status, str(e))


def api_version(request: web.Request) -> tuple[int, ...]:
    """The API version the client asked for in the path (the newest one when unversioned)."""
    prefix = request.match_info.get("version", "").strip("v/")
    return versions.parse(prefix or versions.API_VERSION)


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse /vX.Y/ prefixes outside the supported range, as dockerd does."""
    prefix = request.match_info.get("version", "")
    if prefix:
        versions.check(prefix.strip("v/"))
    return await handler(request)


async def docker_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The headers dockerd puts on every response but 101."""
    if response.status == 101:
        return
    response.headers["Api-Version"] = versions.API_VERSION
    response.headers["Docker-Experimental"] = str(engine(request).config.experimental).lower()
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = SERVER_HEADER


def make_app(eng: Engine) -> web.Application:
    """The API application over an engine."""
    app = web.Application(client_max_size=JSON_LIMIT, middlewares=[errors_middleware, version_middleware])
    app[ENGINE] = eng
    app[LONG_POLLS] = set()
    app.on_response_prepare.append(docker_headers)
    app.on_shutdown.append(_cancel_long_polls)
    routes.add_routes(app)
    return app


# ---- listeners --------------------------------------------------------------------------------

class Listeners:
    """The running API server: close() stops it and removes its unix sockets."""

    def __init__(self, runner: web.AppRunner, sockets: list[str]) -> None:
        self.runner = runner
        self.sockets = sockets

    async def close(self) -> None:
        await self.runner.cleanup()
        for path in self.sockets:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _claim_socket_path(path: str) -> None:
    """Make room for a unix socket: refuse if a live server answers there, drop a stale file."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o711, exist_ok=True)
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
    else:
        raise ConfigError(f"{path} is in use by another daemon")
    finally:
        probe.close()


def _secure_socket(path: str) -> None:
    """Mode 0660, group dockyard when that group exists (as docker's socket)."""
    with contextlib.suppress(KeyError):
        os.chown(path, 0, grp.getgrnam(SOCKET_GROUP).gr_gid)
    os.chmod(path, 0o660)


def _tls_context(config: DaemonConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=config.tlscacert)
    context.load_cert_chain(config.tlscert, config.tlskey)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _site(runner: web.AppRunner, listener: Listener, config: DaemonConfig) -> web.BaseSite:
    if listener.scheme == "unix":
        _claim_socket_path(listener.path)
        site: web.BaseSite = web.UnixSite(runner, listener.path)
        await site.start()
        _secure_socket(listener.path)
        return site
    tls = _tls_context(config) if config.tlsverify else None
    site = web.TCPSite(runner, listener.host, listener.port, ssl_context=tls)
    await site.start()
    return site


async def start_listeners(eng: Engine) -> Listeners:
    """Serve the API on every configured address."""
    runner = web.AppRunner(make_app(eng), handler_cancellation=True, access_log=log if eng.config.debug else None)
    await runner.setup()
    listeners = Listeners(runner, [])
    try:
        for listener in eng.config.hosts:
            await _site(runner, listener, eng.config)
            if listener.scheme == "unix":
                listeners.sockets.append(listener.path)
    except BaseException:
        await listeners.close()
        raise
    return listeners
