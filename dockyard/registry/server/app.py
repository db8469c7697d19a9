"""The registry's HTTP API (OCI distribution spec 1.1) as an aiohttp application.

Repository names contain slashes, so one handler matches every /v2/ path against the spec's
endpoint patterns. Uploaded bytes are hashed as they arrive; a session's hash state is kept in
memory between PATCH requests (and rebuilt from its data file after a restart)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.image import digest as digests
from dockyard.image import mediatypes as mt
from dockyard.image import reference
from dockyard.image.manifest import Index, InvalidManifest, parse_any
from dockyard.registry.server.auth import Access
from dockyard.registry.server.errors import API_VERSION_HEADER, RegistryError
from dockyard.registry.server.storage import Storage, Upload, UploadUnknown

MANIFEST_LIMIT = 4 * 1024 * 1024
CHUNK = 1 << 20
DEFAULT_PAGE = 1000

_NAME = r"(?P<name>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"{_NAME}/tags/list"), "tags"),
    (re.compile(rf"{_NAME}/manifests/(?P<ref>[^/]+)"), "manifest"),
    (re.compile(rf"{_NAME}/blobs/uploads/?"), "uploads"),
    (re.compile(rf"{_NAME}/blobs/uploads/(?P<uuid>[^/]+)"), "upload"),
    (re.compile(rf"{_NAME}/blobs/(?P<digest>[^/]+)"), "blob"),
    (re.compile(rf"{_NAME}/referrers/(?P<digest>[^/]+)"), "referrers"),
]
Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


def _digest_param(value: str, code: str = "DIGEST_INVALID") -> str:
    try:
        return digests.validate(value)
    except digests.InvalidDigest as err:
        raise RegistryError(code, str(err)) from None


def _page_size(request: web.Request) -> int | None:
    n = request.query.get("n")
    if n is None or n == "":
        return None
    if not n.isdigit():
        raise RegistryError("PAGINATION_NUMBER_INVALID", {"n": n})
    return int(n)


class _Hashing:
    """The running hash of one upload session and how many bytes it covers."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.offset = 0


class Registry:
    """The registry application's state: storage, access control and upload hash states."""

    def __init__(self, root: str | Path, access: Access | None = None, delete: bool = True) -> None:
        self.storage = Storage(root)
        self.access = access or Access()
        self.delete_enabled = delete
        self._hashing: dict[str, _Hashing] = {}

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(client_max_size=MANIFEST_LIMIT, middlewares=[self._errors])
        app.router.add_route("*", "/v2", self._base)
        app.router.add_route("*", "/v2/", self._base)
        app.router.add_route("GET", "/token", self._token)
        app.router.add_route("*", "/v2/{tail:.+}", self._dispatch)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except RegistryError as err:
            return err.response(request.method == "HEAD")
        except web.HTTPException as err:
            if err.status == 404:
                return RegistryError("NAME_UNKNOWN", status=404, message="page not found").response()
            raise
        response.headers.update(API_VERSION_HEADER)
        return response

    async def _token(self, request: web.Request) -> web.StreamResponse:
        return self.access.issue_token(request)

    async def _base(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise RegistryError("UNSUPPORTED")
        self.access.authorize(request, "")
        return web.json_response({}, headers=API_VERSION_HEADER)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if tail == "_catalog":
            self.access.authorize(request, "registry:catalog:*")
            if request.method not in ("GET", "HEAD"):
                raise RegistryError("UNSUPPORTED")
            return self._catalog(request)
        for pattern, kind in _ROUTES:
            match = pattern.fullmatch(tail)
            if match:
                params = match.groupdict()
                if not reference.is_repository_path(params["name"]):
                    raise RegistryError("NAME_INVALID", {"name": params["name"]})
                action = "pull" if request.method in ("GET", "HEAD") else "push"
                if request.method == "DELETE":
                    action = "delete"
                self.access.authorize(request, f"repository:{params['name']}:{action}")
                handler: Handler | None = getattr(self, f"_{kind}_{request.method.lower()}", None)
                if handler is None:
                    raise RegistryError("UNSUPPORTED")
                return await handler(request, params)
        if re.fullmatch(r"[^/]+(?:/[^/]+)*/(manifests|blobs|tags|referrers)/.*", tail):
            raise RegistryError("NAME_INVALID", {"name": tail})
        raise RegistryError("NAME_UNKNOWN", status=404, message="page not found")

    def _catalog(self, request: web.Request) -> web.Response:
        return _paginated(request, self.storage.repositories(), "repositories", "/v2/_catalog", {})

    # -- tags ------------------------------------------------------------------------------------

    async def _tags_get(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        tags = self.storage.tags(p["name"])
        if tags is None:
            raise RegistryError("NAME_UNKNOWN", {"name": p["name"]})
        return _paginated(request, tags, "tags", f"/v2/{p['name']}/tags/list", {"name": p["name"]})

    # -- blobs -----------------------------------------------------------------------------------

    async def _blob_get(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        digest = _digest_param(p["digest"])
        if not self.storage.has_blob(p["name"], digest):
            raise RegistryError("BLOB_UNKNOWN", {"digest": digest})
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                   "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000", **API_VERSION_HEADER}
        return web.FileResponse(self.storage.blob_path(digest), headers=headers)

    _blob_head = _blob_get

    async def _blob_delete(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        digest = _digest_param(p["digest"])
        if not self.delete_enabled:
            raise RegistryError("UNSUPPORTED")
        if not self.storage.unlink_blob(p["name"], digest):
            raise RegistryError("BLOB_UNKNOWN", {"digest": digest})
        return web.Response(status=202, headers={"Docker-Content-Digest": digest, "Content-Length": "0"})

    # -- uploads ---------------------------------------------------------------------------------

    def _upload_response(self, upload: Upload, status: int) -> web.Response:
        offset = upload.size
        return web.Response(status=status, headers={
            "Location": f"/v2/{upload.repo}/blobs/uploads/{upload.id}",
            "Range": f"0-{max(offset - 1, 0)}", "Docker-Upload-UUID": upload.id, "Content-Length": "0"})

    def _created(self, repo: str, digest: str) -> web.Response:
        return web.Response(status=201, headers={"Location": f"/v2/{repo}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest, "Content-Length": "0"})

    async def _uploads_post(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        repo = p["name"]
        mount, source = request.query.get("mount"), request.query.get("from")
        if mount:
            digest = _digest_param(mount)
            if source and reference.is_repository_path(source):
                found = self.storage.has_blob(source, digest)
                if found:
                    self.access.authorize(request, f"repository:{source}:pull")
            else:  # no source: any repository's copy will do (the spec's automatic content discovery)
                found = self.storage.blob_size(digest) is not None
            if found:
                self.storage.link_blob(repo, digest)
                return self._created(repo, digest)
        upload = self.storage.new_upload(repo)
        digest_param = request.query.get("digest")
        if digest_param is None:
            return self._upload_response(upload, 202)
        return await self._finish(request, upload, digest_param)

    async def _upload_get(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        return self._upload_response(self._session(p), 204)

    async def _upload_patch(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        upload = self._session(p)
        await self._receive(request, upload, chunked=True)
        return self._upload_response(upload, 202)

    async def _upload_put(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        upload = self._session(p)
        if "digest" not in request.query:
            raise RegistryError("DIGEST_INVALID", "the digest parameter is required")
        return await self._finish(request, upload, request.query["digest"])

    async def _upload_delete(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        upload = self._session(p)
        self._drop(upload)
        return web.Response(status=204)

    def _session(self, p: dict[str, str]) -> Upload:
        try:
            return self.storage.upload(p["name"], p["uuid"])
        except UploadUnknown:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": p["uuid"]}) from None

    def _drop(self, upload: Upload) -> None:
        self._hashing.pop(upload.id, None)
        self.storage.drop_upload(upload)

    def _state(self, upload: Upload) -> _Hashing:
        """The session's hash state, rebuilt from its data when it is not current."""
        state = self._hashing.get(upload.id)
        size = upload.size
        if state is None or state.offset != size:
            state = _Hashing()
            with open(upload.path, "rb") as f:
                while chunk := f.read(CHUNK):
                    state.hash.update(chunk)
                    state.offset += len(chunk)
            self._hashing[upload.id] = state
        return state

    async def _receive(self, request: web.Request, upload: Upload, chunked: bool) -> None:
        """Append the request body to the session (checking Content-Range on chunks)."""
        state = self._state(upload)
        content_range = request.headers.get("Content-Range")
        length = request.content_length
        if content_range and chunked:
            match = re.fullmatch(r"(?:bytes[ =])?(\d+)-(\d+)", content_range.strip())
            if match is None:
                raise RegistryError("RANGE_INVALID", {"Content-Range": content_range}, headers=self._range(upload))
            start, end = int(match.group(1)), int(match.group(2))
            if start != state.offset or end < start or (length is not None and length != end - start + 1):
                raise RegistryError("RANGE_INVALID", {"Content-Range": content_range, "offset": state.offset},
                                    headers=self._range(upload))
        received = 0
        with open(upload.path, "ab") as f:
            try:
                async for chunk in request.content.iter_chunked(CHUNK):
                    f.write(chunk)
                    state.hash.update(chunk)
                    state.offset += len(chunk)
                    received += len(chunk)
            finally:
                f.flush()
                if state.offset != upload.size:
                    self._hashing.pop(upload.id, None)
        if length is not None and received != length:
            raise RegistryError("SIZE_INVALID", {"expected": length, "received": received})

    def _range(self, upload: Upload) -> dict[str, str]:
        return {"Range": f"0-{max(upload.size - 1, 0)}", "Location": f"/v2/{upload.repo}/blobs/uploads/{upload.id}",
                "Docker-Upload-UUID": upload.id}

    async def _finish(self, request: web.Request, upload: Upload, digest_param: str) -> web.StreamResponse:
        """Receive the last bytes, verify the digest and make the blob visible in the repository."""
        try:
            digest = _digest_param(digest_param)
            await self._receive(request, upload, chunked=False)
            state = self._state(upload)
            algo = digests.split(digest)[0]
            actual = f"sha256:{state.hash.hexdigest()}" if algo == "sha256" else self._rehash(upload, algo)
            if actual != digest:
                raise RegistryError("DIGEST_INVALID", {"expected": digest, "actual": actual})
        except BaseException:
            self._drop(upload)
            raise
        self._hashing.pop(upload.id, None)
        self.storage.commit_file(upload.path, digest)
        self.storage.drop_upload(upload)
        self.storage.link_blob(upload.repo, digest)
        return self._created(upload.repo, digest)

    def _rehash(self, upload: Upload, algo: str) -> str:
        h = digests.hasher(algo)
        with open(upload.path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return f"{algo}:{h.hexdigest()}"

    # -- manifests -------------------------------------------------------------------------------

    def _resolve(self, repo: str, ref: str) -> str:
        if ":" in ref:
            digest = _digest_param(ref)
            if self.storage.manifest_type(repo, digest) is None:
                raise RegistryError("MANIFEST_UNKNOWN", {"digest": digest})
            return digest
        if not reference.is_tag(ref):
            raise RegistryError("MANIFEST_INVALID", {"tag": ref}, message="invalid tag")
        digest = self.storage.resolve_tag(repo, ref)
        if digest is None:
            raise RegistryError("MANIFEST_UNKNOWN", {"tag": ref})
        return digest

    async def _manifest_get(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        repo = p["name"]
        digest = self._resolve(repo, p["ref"])
        found = self.storage.manifest(repo, digest)
        if found is None:
            raise RegistryError("MANIFEST_UNKNOWN", {"digest": digest})
        data, media_type = found
        headers = {"Docker-Content-Digest": digest, "Content-Type": media_type, "ETag": f'"{digest}"'}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(data))})
        return web.Response(body=data, headers=headers)

    _manifest_head = _manifest_get

    async def _manifest_put(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        repo, ref = p["name"], p["ref"]
        data = await _read_limited(request, MANIFEST_LIMIT)
        media_type = mt.base_type(request.headers.get("Content-Type", ""))
        try:
            doc = parse_any(data, media_type or None)
        except InvalidManifest as err:
            raise RegistryError("MANIFEST_INVALID", str(err)) from None
        media_type = doc.media_type
        digest = digests.of_bytes(data)
        tag = None
        if ":" in ref:
            wanted = _digest_param(ref)
            algo = digests.split(wanted)[0]
            if algo != "sha256":
                digest = digests.of_bytes(data, algo)
            if digest != wanted:
                raise RegistryError("DIGEST_INVALID", {"expected": wanted, "actual": digest})
        elif reference.is_tag(ref):
            tag = ref
        else:
            raise RegistryError("MANIFEST_INVALID", {"tag": ref}, message="invalid tag")
        self._check_references(repo, doc)
        subject = None
        headers = {}
        if doc.subject is not None:
            descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
            artifact_type = doc.artifact_type or (doc.config.media_type if not isinstance(doc, Index) else "")
            if artifact_type:
                descriptor["artifactType"] = artifact_type
            if doc.annotations:
                descriptor["annotations"] = doc.annotations
            subject = (doc.subject.digest, descriptor)
            headers["OCI-Subject"] = doc.subject.digest
        self.storage.put_manifest(repo, data, media_type, tag, subject)
        return web.Response(status=201, headers={"Location": f"/v2/{repo}/manifests/{digest}",
                                                 "Docker-Content-Digest": digest, "Content-Length": "0", **headers})

    def _check_references(self, repo: str, doc: Any) -> None:
        """MANIFEST_BLOB_UNKNOWN unless the repository holds what the document references."""
        if isinstance(doc, Index):
            for d in doc.manifests:
                if self.storage.manifest_type(repo, d.digest) is None:
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", {"digest": d.digest})
            return
        for d in (doc.config, *doc.layers):
            if d.urls and mt.is_nondistributable(d.media_type):
                continue
            size = self.storage.blob_size(d.digest) if self.storage.has_blob(repo, d.digest) else None
            if size is None:
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", {"digest": d.digest})
            if size != d.size:
                raise RegistryError("MANIFEST_INVALID", {"digest": d.digest, "size": d.size, "actual": size},
                                    message="blob size does not match its descriptor")

    async def _manifest_delete(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        repo, ref = p["name"], p["ref"]
        if not self.delete_enabled:
            raise RegistryError("UNSUPPORTED")
        if ":" not in ref:
            if not reference.is_tag(ref) or not self.storage.delete_tag(repo, ref):
                raise RegistryError("MANIFEST_UNKNOWN", {"tag": ref})
            return web.Response(status=202, headers={"Content-Length": "0"})
        digest = _digest_param(ref)
        if not self.storage.delete_manifest(repo, digest):
            raise RegistryError("MANIFEST_UNKNOWN", {"digest": digest})
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- referrers -------------------------------------------------------------------------------

    async def _referrers_get(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        digest = _digest_param(p["digest"])
        found = self.storage.referrers(p["name"], digest)
        headers = {}
        artifact_type = request.query.get("artifactType")
        if artifact_type:
            found = [d for d in found if d.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
        return web.Response(body=json.dumps(body).encode(), headers={"Content-Type": mt.OCI_INDEX, **headers})


def _paginated(request: web.Request, items: list[str], key: str, path: str, extra: dict[str, str]
               ) -> web.Response:
    """A page of sorted items after ?last= (at most ?n=), with a Link header to the next page."""
    n = _page_size(request)
    last = request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    headers = {}
    if n is not None and len(items) > n:
        items = items[:n]
        if items:
            headers["Link"] = f'<{path}?n={n}&last={items[-1]}>; rel="next"'
    return web.json_response({**extra, key: items}, headers=headers)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The request body; 413 when it is (or announces itself) larger than limit."""
    if request.content_length is not None and request.content_length > limit:
        raise RegistryError("TOO_LARGE", {"limit": limit}, status=413)
    data = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > limit:
            raise RegistryError("TOO_LARGE", {"limit": limit}, status=413)
    return bytes(data)
