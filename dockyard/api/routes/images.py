"""Image routes: list, inspect, history, tag, remove, prune, save, load, import and pull (create),
push, auth."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from dockyard.api import shapes
from dockyard.api.errors import ApiError, json_line
from dockyard.api.routes import api_path
from dockyard.api.server import (
    api_version,
    bool_query,
    engine,
    json_query,
    json_response,
    read_json,
    start_stream,
)
from dockyard.api.streams import body_file, drain, response_writer
from dockyard.engine.registry import pull_name
from dockyard.registry.client.auth import Credentials
from dockyard.registry.client.login import LoginError
from dockyard.registry.client.pull import PullError
from dockyard.registry.client.push import PushError

T = TypeVar("T")


def routes() -> list[web.RouteDef]:
    return [
        web.get(api_path("/images/json"), list_images),
        web.get(api_path("/images/get"), save_images),
        web.post(api_path("/images/load"), load_images),
        web.post(api_path("/images/create"), create_image),
        web.post(api_path("/images/prune"), prune_images),
        web.get(api_path("/images/{name:.+}/json"), inspect_image),
        web.get(api_path("/images/{name:.+}/history"), image_history),
        web.post(api_path("/images/{name:.+}/tag"), tag_image),
        web.post(api_path("/images/{name:.+}/push"), push_image),
        web.post(api_path("/auth"), auth),
        web.get(api_path("/distribution/{name:.+}/json"), distribution),
        web.get(api_path("/images/{name:.+}/get"), save_images),
        web.delete(api_path("/images/{name:.+}"), remove_image),
    ]


async def list_images(request: web.Request) -> web.Response:
    """GET /images/json?all&filters&digests&shared-size (shared-size from API 1.42, VirtualSize
    before 1.44)."""
    version = api_version(request)
    images = await engine(request).images.list(bool_query(request, "all"), json_query(request, "filters"),
                                               version >= (1, 42) and bool_query(request, "shared-size"))
    return json_response([shapes.image_summary(image, version) for image in images])


async def inspect_image(request: web.Request) -> web.Response:
    """GET /images/{name}/json (Container and ContainerConfig before API 1.45, VirtualSize before 1.44)."""
    image = await engine(request).images.inspect(request.match_info["name"])
    return json_response(shapes.image(image, api_version(request)))


async def image_history(request: web.Request) -> web.Response:
    """GET /images/{name}/history."""
    return json_response(await engine(request).images.history(request.match_info["name"]))


async def tag_image(request: web.Request) -> web.Response:
    """POST /images/{name}/tag?repo&tag → 201."""
    repo, tag = request.query.get("repo", ""), request.query.get("tag", "")
    if not repo:
        raise ApiError(400, "repository name must have at least one component")
    await engine(request).images.tag(request.match_info["name"], f"{repo}:{tag}" if tag else repo)
    return web.Response(status=201)


async def remove_image(request: web.Request) -> web.Response:
    """DELETE /images/{name}?force&noprune."""
    records = await engine(request).images.remove(request.match_info["name"], bool_query(request, "force"),
                                                  not bool_query(request, "noprune"))
    return json_response(records)


async def prune_images(request: web.Request) -> web.Response:
    """POST /images/prune?filters."""
    return json_response(await engine(request).images.prune(json_query(request, "filters")))


async def save_images(request: web.Request) -> web.StreamResponse:
    """GET /images/{name}/get and /images/get?names=...: the archive, streamed as it is written."""
    names = [request.match_info["name"]] if "name" in request.match_info else request.query.getall("names", [])
    if not names:
        raise ApiError(400, "no images named: use names=")
    service = engine(request).images
    await service.to_save(names)
    response = await start_stream(request, "application/x-tar")
    out = response_writer(response, asyncio.get_running_loop())

    def write() -> None:
        with out:
            service.save(names, out)

    await service.run(write)
    await response.write_eof()
    return response


async def _consume_upload(request: web.Request, work: Callable[[BinaryIO], T]) -> T:
    """Run work(body) in the pool as the body arrives; on failure drain the upload before the
    error answer."""
    service = engine(request).images
    try:
        return await service.run(work, body_file(request))
    except Exception:
        await drain(request)
        raise


async def _message_stream(request: web.Request, messages: list[dict[str, str]]) -> web.StreamResponse:
    response = await start_stream(request, "application/json")
    for message in messages:
        await response.write(json_line(message))
    await response.write_eof()
    return response


async def load_images(request: web.Request) -> web.StreamResponse:
    """POST /images/load?quiet: the upload is read by a worker thread as it arrives. A failure is
    an error message in the 200 stream, as dockerd answers (docker-py raises ImageLoadError)."""
    try:
        lines = await _consume_upload(request, engine(request).images.load)
    except Exception as err:
        return await _message_stream(request, [{"errorDetail": {"message": str(err)}, "error": str(err)}])
    return await _message_stream(request, [{"stream": line + "\n"} for line in lines])


def _credentials(request: web.Request) -> Credentials:
    return Credentials.from_header(request.headers.get("X-Registry-Auth", ""))


async def _progress_stream(request: web.Request, work: Callable[[Callable[[dict], None]], object]
                           ) -> web.StreamResponse:
    """Stream work's progress messages; a failure after the start becomes an error message."""
    response = await start_stream(request, "application/json")
    loop = asyncio.get_running_loop()

    def sink(message: dict) -> None:
        asyncio.run_coroutine_threadsafe(response.write(json_line(message)), loop).result()

    try:
        await engine(request).images.run(work, sink)
    except (PullError, PushError, OSError, ValueError, LookupError) as err:
        await response.write(json_line({"errorDetail": {"message": str(err)}, "error": str(err)}))
    await response.write_eof()
    return response


async def pull_image(request: web.Request) -> web.StreamResponse:
    """POST /images/create?fromImage&tag&platform: resolve first (errors answer with a status),
    then stream the download's progress."""
    query = request.query
    service = engine(request).images
    name = pull_name(query["fromImage"], query.get("tag", ""))
    try:
        plan = await service.run(service.registry.resolve, name, _credentials(request), query.get("platform"))
    except PullError as err:
        raise ApiError(err.status, str(err)) from None
    return await _progress_stream(request, lambda sink: service.registry.fetch(plan, sink))


async def push_image(request: web.Request) -> web.StreamResponse:
    """POST /images/{name}/push?tag: every tag of the repository without one."""
    service = engine(request).images
    tag = request.query.get("tag", "")
    name = request.match_info["name"] + (f":{tag}" if tag else "")
    try:
        await service.run(service.registry.check_push, name)
    except PushError as err:
        raise ApiError(err.status, str(err)) from None
    credentials = _credentials(request)
    return await _progress_stream(request, lambda sink: service.registry.push(name, credentials, sink))


async def distribution(request: web.Request) -> web.Response:
    """GET /distribution/{name}/json: the registry's descriptor and platforms for name."""
    service = engine(request).images
    try:
        return json_response(await service.run(service.registry.distribution, request.match_info["name"],
                                               _credentials(request)))
    except PullError as err:
        raise ApiError(err.status, str(err)) from None


async def auth(request: web.Request) -> web.Response:
    """POST /auth: check credentials against the registry."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid auth configuration: a JSON object is required")
    service = engine(request).images
    try:
        return json_response(await service.run(service.registry.login, body))
    except LoginError as err:
        raise ApiError(err.status, str(err)) from None


async def create_image(request: web.Request) -> web.StreamResponse:
    """POST /images/create: fromImage pulls; fromSrc=- imports the request body (URL imports
    are refused: dockyardd fetches nothing but registries)."""
    query = request.query
    if query.get("fromImage"):
        return await pull_image(request)
    source = query.get("fromSrc", "")
    if not source:
        raise ApiError(400, "either fromImage or fromSrc is required")
    if source != "-":
        kind = "a URL" if urlsplit(source).scheme else "a file path"
        raise ApiError(400, f"importing from {kind} is not available: dockyardd has no network client; "
                            "send the tarball in the request body (fromSrc=-)")
    repo, tag = query.get("repo", ""), query.get("tag", "")
    ref = (f"{repo}:{tag}" if tag else repo) or None
    service = engine(request).images
    image_id = await _consume_upload(request, lambda stream: service.import_tarball(
        stream, ref, query.getall("changes", []), query.get("message") or None, query.get("platform"), source))
    return await _message_stream(request, [{"status": image_id}])

