"""The classic builder protocol: POST /build (tar body, JSON-lines progress) and /build/prune."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any

from aiohttp import web

from dockyard.api.errors import ApiError, json_line
from dockyard.api.routes import api_path
from dockyard.api.server import bool_query, engine, json_response, read_json, start_stream
from dockyard.api.streams import body_file, drain
from dockyard.build.builder import BuildError, BuildOptions
from dockyard.engine.builds import BuildInputs
from dockyard.image.names import normalize_tag
from dockyard.image.reference import InvalidReference
from dockyard.registry.client.auth import Credentials

_CONTEXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def routes() -> list[web.RouteDef]:
    return [
        web.post(api_path("/build"), build),
        web.post(api_path("/build/prune"), prune),
        web.post(api_path("/build/context"), context_manifest),
    ]


def _json_param(request: web.Request, name: str, default: Any) -> Any:
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, f"invalid {name} parameter: {raw}") from None


def options(request: web.Request) -> tuple[BuildOptions, dict[str, str]]:
    """BuildOptions from /build's query parameters (dockerd's names), and the named contexts
    (name → docker-image://REF, a git URL, or "local": a directory sent with the context)."""
    q = request.query
    if q.get("version") == "2" or q.get("remote") == "client-session":
        raise ApiError(400, "BuildKit sessions are not supported by this daemon: use the classic builder "
                            "(DOCKER_BUILDKIT=0)")
    tags = q.getall("t", [])
    for tag in tags:
        try:
            normalize_tag(tag)
        except (InvalidReference, ValueError):
            raise ApiError(400, f"invalid reference format: repository name ({tag}) must be lowercase") from None
    build_args = _json_param(request, "buildargs", {}) or {}
    epoch = build_args.get("SOURCE_DATE_EPOCH")
    opts = BuildOptions(
        dockerfile=q.get("dockerfile") or "Dockerfile", tags=tags, build_args=build_args,
        target=q.get("target", ""), labels=_json_param(request, "labels", {}) or {},
        no_cache=bool_query(request, "nocache"), cache_from=_json_param(request, "cachefrom", []) or [],
        network=q.get("networkmode") or "default", platform=q.get("platform", ""),
        source_date_epoch=int(epoch) if epoch and str(epoch).isdigit() else None)
    opts.no_cache_filter = _json_param(request, "nocachefilter", []) or []
    opts.cache_to = _json_param(request, "cacheto", []) or []  # dockyard's CLI: --cache-to
    if not isinstance(opts.cache_to, list) or not all(
            isinstance(c, dict) and c.get("type") in ("local", "inline") for c in opts.cache_to):
        raise ApiError(400, "invalid cacheto parameter: a JSON list of {\"type\": \"local\"|\"inline\", ...}")
    contexts = _json_param(request, "buildcontexts", {}) or {}  # dockyard's CLI: --build-context
    if not isinstance(contexts, dict) or not all(isinstance(v, str) and _CONTEXT_NAME.fullmatch(k)
                                                 for k, v in contexts.items()):
        raise ApiError(400, "invalid buildcontexts parameter: a JSON object of names and sources")
    opts.extra_hosts = q.getall("extrahosts", [])
    opts.always_pull = bool_query(request, "pull")
    shm = q.get("shmsize", "")
    if shm:
        if not shm.isdigit():
            raise ApiError(400, f"invalid shmsize parameter: {shm}")
        opts.shm_size = int(shm)
    secrets = request.headers.get("X-Dockyard-Build-Secrets", "")
    if secrets:  # dockyard's CLI only: the classic protocol has no session to carry them
        try:
            opts.secrets = {k: base64.b64decode(v) for k, v in json.loads(base64.b64decode(secrets)).items()}
        except (ValueError, AttributeError):
            raise ApiError(400, "invalid X-Dockyard-Build-Secrets header") from None
    if opts.network.startswith("container:"):
        raise ApiError(400, f"network mode {opts.network!r} is not supported for builds")
    if opts.network == "bridge":
        opts.network = "default"
    return opts, contexts


def _ssh(request: web.Request) -> dict[str, dict[str, Any]]:
    """X-Dockyard-Build-Ssh (dockyard's CLI: --ssh): base64 JSON of id → {"socket": path on
    this host} or {"keys": [base64 private keys]}."""
    raw = request.headers.get("X-Dockyard-Build-Ssh", "")
    if not raw:
        return {}
    try:
        doc = json.loads(base64.b64decode(raw))
        out: dict[str, dict[str, Any]] = {}
        for sid, source in doc.items():
            if isinstance(source.get("socket"), str) and source["socket"]:
                out[sid] = {"socket": source["socket"]}
            else:
                out[sid] = {"keys": [base64.b64decode(k) for k in source["keys"]]}
        return out
    except (ValueError, AttributeError, KeyError, TypeError):
        raise ApiError(400, "invalid X-Dockyard-Build-Ssh header") from None


async def build(request: web.Request) -> web.StreamResponse:
    """POST /build: the context arrives as the body; progress as {"stream"}, the image ID as
    {"aux": {"ID"}}, failures as {"errorDetail", "error"} (the CLI exits with errorDetail.code)."""
    eng = engine(request)
    if eng.builds is None:
        raise ApiError(500, "the builder is not available")
    try:
        opts, contexts = options(request)
        ssh = _ssh(request)
        if opts.network not in ("default", "host", "none"):  # a user-defined network, run in as a container
            opts.network = (await eng.run(eng.networks.resolve, opts.network))["Id"]
    except Exception:
        await drain(request)
        raise
    quiet = bool_query(request, "q")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict | None] = asyncio.Queue()

    def emit(text: str) -> None:
        if not quiet:
            loop.call_soon_threadsafe(queue.put_nowait, {"stream": text})

    body = body_file(request)
    service = eng.builds
    inputs = BuildInputs(session=request.headers.get("X-Dockyard-Context", ""),
                         auth=Credentials.map_from_header(request.headers.get("X-Registry-Config", "")),
                         remote=request.query.get("remote", ""), contexts=contexts, ssh=ssh)

    def work() -> None:
        try:
            image = service.build(body, opts, emit, inputs)
            short = image.removeprefix("sha256:")[:12]
            loop.call_soon_threadsafe(queue.put_nowait, {"aux": {"ID": image}})
            if quiet:
                loop.call_soon_threadsafe(queue.put_nowait, {"stream": image + "\n"})
            else:
                emit(f"Successfully built {short}\n")
                for tag in opts.tags:
                    emit(f"Successfully tagged {normalize_tag(tag).familiar()}\n")
        except BuildError as e:
            loop.call_soon_threadsafe(queue.put_nowait, {"errorDetail": {"code": e.code, "message": e.message},
                                                         "error": e.message})
        except Exception as e:  # reported in the stream: the response has begun
            message = f"build failed: {e}"
            loop.call_soon_threadsafe(queue.put_nowait, {"errorDetail": {"message": message}, "error": message})
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = asyncio.ensure_future(eng.run_detached(work))
    response: web.StreamResponse | None = None
    try:
        while (message := await queue.get()) is not None:
            if response is None:
                response = await start_stream(request, "application/json")
            await response.write(json_line(message))
    finally:
        await task
    if response is None:
        response = await start_stream(request, "application/json")
    await response.write_eof()
    return response


async def context_manifest(request: web.Request) -> web.Response:
    """POST /build/context?session=S (dockyard's CLI): the manifest of the coming build's context;
    answers {"Context": reference for /build's X-Dockyard-Context header, "Need": [paths whose data
    must be sent]}."""
    eng = engine(request)
    if eng.builds is None:
        raise ApiError(500, "the builder is not available")
    entries = await read_json(request)
    if not isinstance(entries, list):
        raise ApiError(400, "the context manifest must be a JSON array")
    try:
        ref, need = await eng.run(eng.builds.context_need, request.query.get("session", ""), entries)
    except BuildError as e:
        raise ApiError(400, e.message) from None
    return json_response({"Context": ref, "Need": need})


async def prune(request: web.Request) -> web.Response:
    """POST /build/prune?all&filters&keep-storage."""
    eng = engine(request)
    if eng.builds is None:
        raise ApiError(500, "the builder is not available")
    return json_response(await eng.run(eng.builds.prune, bool_query(request, "all")))
