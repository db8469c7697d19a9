"""Pushing images from an ImageStore: every layer and the config (skipped when the registry has
the blob, mounted from another repository of the same registry the store knows holds it, else
uploaded), then the manifest under the tag. Without a tag, every tag of the repository goes.

    push(store, "127.0.0.1:5000/busybox:1", credentials, config, progress)
"""

from __future__ import annotations

import contextlib
import io
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, BinaryIO

from dockyard.image import digest as digests
from dockyard.image import reference
from dockyard.image.errors import NoSuchImage
from dockyard.image.manifest import Descriptor, parse_manifest
from dockyard.image.store import ImageStore
from dockyard.registry.client.auth import Credentials
from dockyard.registry.client.endpoint import RegistryConfig
from dockyard.registry.client.progress import Progress
from dockyard.registry.client.pull import scope, short
from dockyard.registry.client.transport import RegistryError, Transport

CONCURRENCY = 5


class PushError(Exception):
    """A push that failed; status is the HTTP status the daemon answers with."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Pushed:
    """One tag pushed: its manifest digest and size."""

    tag: str
    digest: str
    size: int


class _Reading(io.RawIOBase):
    """A blob file that reports how much has been read (sent)."""

    def __init__(self, f: BinaryIO, progress: Progress, layer_id: str, total: int) -> None:
        self._f, self._progress, self._id, self._total, self.sent = f, progress, layer_id, total, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.sent += len(data)
        self._progress.update("Pushing", self._id, self.sent, self._total)
        return data


def tags_to_push(store: ImageStore, name: str) -> tuple[reference.Reference, list[reference.Reference]]:
    """(repository, the tagged references to push): name's tag, or every tag of the repository."""
    ref = reference.parse_normalized(name)
    if ref.digest is not None:
        raise PushError("cannot push a digest reference", 400)
    if ref.tag is not None:
        refs = [ref]
    else:
        prefix = f"{ref.name}:"
        names = sorted({t for rec in store.meta.list_images() for t in store.meta.tags_of(rec.id)
                        if t.startswith(prefix)})
        refs = [reference.parse_normalized(n) for n in names]
    for r in refs:
        try:
            store.resolve(str(r))
        except NoSuchImage:
            refs = []
    if not refs:
        raise PushError(f"An image does not exist locally with the tag: {ref.trim().familiar()}", 404)
    return ref.trim(), refs


def _mount_sources(store: ImageStore, repo: reference.Reference, digest: str) -> list[str]:
    """Repositories of repo's registry that the store's repo digests say hold the blob."""
    sources = []
    for rec in store.meta.list_images():
        names = store.meta.repo_digests_of(rec.id)
        if not names:
            continue
        try:
            blobs = {rec.id, *(layer.descriptor.digest for layer in store.layers(rec.id))}
        except (LookupError, ValueError):
            continue
        if digest in blobs:
            for name in names:
                other = reference.parse_normalized(name)
                if other.domain == repo.domain and other.path != repo.path:
                    sources.append(other.path)
    return list(dict.fromkeys(sources))


def push_blob(store: ImageStore, transport: Transport, repo: reference.Reference, desc: Descriptor,
              progress: Progress, layer_id: str) -> None:
    """Make desc's blob present in repo: skip, mount or upload it."""
    base = f"/v2/{repo.path}/blobs"
    if _exists(transport, base, desc.digest, repo):
        progress.status("Layer already exists", layer_id)
        return
    sources = _mount_sources(store, repo, desc.digest)
    location = ""
    for source in sources[:3]:
        resp = transport.request("POST", f"{base}/uploads/?mount={desc.digest}&from={source}",
                                 [scope(repo, "pull,push"), f"repository:{source}:pull"], ok=(201, 202))
        resp.read()
        if resp.status == 201:
            progress.status(f"Mounted from {source}", layer_id)
            return
        location = resp.getheader("Location", "")
        break
    if not location:
        resp = transport.request("POST", f"{base}/uploads/", [scope(repo, "pull,push")], ok=(202,))
        resp.read()
        location = resp.getheader("Location", "")
    if not location:
        raise PushError("the registry gave no upload location")
    sep = "&" if "?" in location else "?"
    with store.content.open(desc.digest) as f:
        body = _Reading(f, progress, layer_id, desc.size)
        transport.request("PUT", f"{location}{sep}digest={desc.digest}", [scope(repo, "pull,push")],
                          {"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
                          body, ok=(201, 204)).read()
    progress.status("Pushed", layer_id)


def _exists(transport: Transport, base: str, digest: str, repo: reference.Reference) -> bool:
    resp = transport.request("HEAD", f"{base}/{digest}", [scope(repo, "pull,push")], ok=(200, 404))
    resp.read()
    return resp.status == 200


def push_tag(store: ImageStore, transport: Transport, ref: reference.Reference, progress: Progress,
             write_lock: AbstractContextManager[Any] | None = None) -> Pushed:
    """Push the image ref's tag names (recording the repo digest under write_lock, when given)."""
    image_id = store.resolve(str(ref))
    record = store.record(image_id)
    manifest_bytes = store.content.read(record.target.digest)
    manifest = parse_manifest(manifest_bytes, record.target.media_type)
    layers = store.layers(image_id)
    for layer in layers:
        progress.status("Preparing", short(layer.diff_id or layer.descriptor.digest))
    jobs = [(layer.descriptor, short(layer.diff_id or layer.descriptor.digest)) for layer in layers]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        futures = [pool.submit(push_blob, store, transport, ref, desc, progress, lid) for desc, lid in jobs]
        futures.append(pool.submit(push_blob, store, transport, ref, manifest.config, Progress(), ""))
        for future in futures:
            future.result()
    transport.request("PUT", f"/v2/{ref.path}/manifests/{ref.tag}", [scope(ref, "pull,push")],
                      {"Content-Type": record.target.media_type}, manifest_bytes, ok=(200, 201)).read()
    digest = digests.of_bytes(manifest_bytes)
    with write_lock or contextlib.nullcontext():
        store.meta.add_repo_digest(f"{ref.name}@{digest}", image_id)
    return Pushed(ref.tag or "", digest, len(manifest_bytes))


def push(store: ImageStore, name: str, credentials: Credentials | None = None, config: RegistryConfig | None = None,
         progress: Progress | None = None, write_lock: AbstractContextManager[Any] | None = None) -> list[Pushed]:
    """docker push: every tag name covers (all of the repository's without a tag)."""
    progress = progress or Progress()
    repo, refs = tags_to_push(store, name)
    progress.status(f"The push refers to repository [{repo}]")
    transport = Transport(repo.domain, credentials, config)
    out = []
    try:
        for ref in refs:
            pushed = push_tag(store, transport, ref, progress, write_lock)
            progress.status(f"{pushed.tag}: digest: {pushed.digest} size: {pushed.size}")
            progress.aux({"Tag": pushed.tag, "Digest": pushed.digest, "Size": pushed.size})
            out.append(pushed)
    except RegistryError as err:
        raise PushError(str(err), err.status if err.status in (401, 403, 404) else 500) from None
    except OSError as err:
        raise PushError(str(err)) from None
    finally:
        transport.close()
    return out
