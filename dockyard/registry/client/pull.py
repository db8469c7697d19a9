"""Pulling an image into an ImageStore: resolve the reference to a manifest (an index's entry for
the wanted platform), fetch config and layers (several at once, resumed and retried, every blob
verified against its digest) and record the image with its tag and repo digest.

    image_id = pull(store, "127.0.0.1:5000/busybox:latest", credentials, config, progress)

`resolve` runs first on its own so a missing image fails before any progress is reported (the
daemon answers 404 then, as dockerd does)."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from dockyard.image import digest as digests
from dockyard.image import mediatypes as mt
from dockyard.image import reference
from dockyard.image.content import DigestMismatch, Locked, SizeMismatch, Writer
from dockyard.image.manifest import (
    Descriptor,
    Index,
    InvalidManifest,
    Manifest,
    Platform,
    parse_any,
    parse_config,
    parse_platform,
    select_platform,
)
from dockyard.image.store import ImageStore, Layer
from dockyard.registry.client.auth import Credentials
from dockyard.registry.client.endpoint import RegistryConfig
from dockyard.registry.client.progress import Progress
from dockyard.registry.client.transport import RegistryError, Transport

ACCEPT = ", ".join([mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
MANIFEST_LIMIT = 4 * 1024 * 1024
CONFIG_LIMIT = 8 * 1024 * 1024
CONCURRENCY = 4
RETRIES = 5
CHUNK = 1 << 20
WAIT_FOR_OTHER = 3600  # seconds a pull waits for a concurrent download of the same blob


class PullError(Exception):
    """A pull that failed; status is the HTTP status the daemon answers with."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Resolved:
    """What a reference resolved to: the manifest (after platform selection) and the digest the
    repo digest records (the index's when there is one)."""

    ref: reference.Reference
    transport: Transport
    digest: str
    manifest_bytes: bytes
    manifest: Manifest
    platform: Platform | None = None  # the platform asked for, when the image is not an index


def scope(ref: reference.Reference, actions: str = "pull") -> str:
    """The token scope for ref's repository."""
    return f"repository:{ref.path}:{actions}"


def fetch_manifest(transport: Transport, ref: reference.Reference, target: str) -> tuple[bytes, str, str]:
    """(bytes, media type, digest) of the manifest target (tag or digest) names, verified."""
    resp = transport.request("GET", f"/v2/{ref.path}/manifests/{target}", [scope(ref)], {"Accept": ACCEPT})
    length = resp.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > MANIFEST_LIMIT:
        resp.close()
        raise PullError(f"manifest for {ref} is larger than {MANIFEST_LIMIT} bytes")
    data = resp.read(MANIFEST_LIMIT + 1)
    if len(data) > MANIFEST_LIMIT:
        resp.close()
        raise PullError(f"manifest for {ref} is larger than {MANIFEST_LIMIT} bytes")
    wanted = target if ":" in target else resp.getheader("Docker-Content-Digest")
    algo = digests.split(wanted)[0] if wanted else "sha256"
    actual = digests.of_bytes(data, algo)
    if wanted and actual != wanted:
        raise PullError(f"manifest verification failed for digest {wanted}: content has digest {actual}")
    return data, resp.getheader("Content-Type", ""), actual if algo == "sha256" else digests.of_bytes(data)


def resolve(name: str, credentials: Credentials | None = None, config: RegistryConfig | None = None,
            platform: str | None = None) -> Resolved:
    """Find the image name refers to; PullError with docker's message when there is none."""
    ref = reference.parse_docker_ref(name)
    transport = Transport(ref.domain, credentials, config)
    target = ref.digest or ref.tag or reference.DEFAULT_TAG
    try:
        data, media_type, digest = fetch_manifest(transport, ref, target)
        doc = _parse(data, media_type, ref)
        top = digest
        wanted = parse_platform(platform) if platform else None
        while isinstance(doc, Index):
            entry = select_platform(doc, wanted)
            data, media_type, digest = fetch_manifest(transport, ref, entry.digest)
            doc = _parse(data, media_type, ref)
            wanted = None  # chosen by the index
    except RegistryError as err:
        raise pull_error(err, ref) from None
    except LookupError as err:  # NoMatchingPlatform
        raise PullError(str(err), 404) from None
    except ValueError as err:  # a --platform that does not parse
        raise PullError(str(err), 400) from None
    except OSError as err:
        raise PullError(str(err)) from None
    return Resolved(ref, transport, top, data, doc, wanted)


def _parse(data: bytes, media_type: str, ref: reference.Reference) -> Manifest | Index:
    try:
        return parse_any(data, media_type or None)
    except InvalidManifest as err:
        raise PullError(f"invalid manifest for {ref}: {err}") from None


def pull_error(err: RegistryError, ref: reference.Reference) -> PullError:
    """Docker's message (and status) for a registry error while resolving ref."""
    if err.status == 404:
        return PullError(f"manifest for {ref.familiar()} not found: {err}", 404)
    if err.status in (401, 403):
        return PullError(f"pull access denied for {ref.trim().familiar()}, repository does not exist or may "
                         f"require 'docker login': {err}", 404 if err.status == 401 else 403)
    return PullError(f"Get {err.url or ref}: {err}", 500)


def short(digest: str) -> str:
    """The 12-character ID docker shows for a layer."""
    return digests.split(digest)[1][:12]


def download_blob(store: ImageStore, transport: Transport, ref: reference.Reference, desc: Descriptor,
                  progress: Progress) -> Layer:
    """Fetch one blob into the content store (resuming a partial ingest, retrying with backoff),
    verified against desc's digest and size."""
    layer_id = short(desc.digest)
    ingest_ref = f"pull-{desc.digest}"
    for attempt in range(RETRIES):
        writer = _writer(store, ingest_ref, desc)
        if writer is None:  # another pull fetched it meanwhile
            progress.status("Download complete", layer_id)
            return Layer(desc)
        try:
            headers = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
            resp = transport.request("GET", f"/v2/{ref.path}/blobs/{desc.digest}", [scope(ref)], headers,
                                     ok=(200, 206))
            if writer.offset and resp.status == 200:  # no range support: start over
                writer.abort()
                writer = store.content.writer(ingest_ref, desc.digest, desc.size)
            progress.update("Downloading", layer_id, writer.offset, desc.size, force=True)
            buffer = memoryview(bytearray(CHUNK))  # reused: every consumer is done with it before the next read
            while count := resp.readinto(buffer):
                chunk = buffer[:count]
                writer.write(chunk)
                progress.update("Downloading", layer_id, writer.offset, desc.size)
            progress.status("Verifying Checksum", layer_id)
            writer.commit()
            progress.status("Download complete", layer_id)
            return Layer(desc)
        except (DigestMismatch, SizeMismatch) as err:
            writer.abort()
            raise PullError(f"filesystem layer verification failed for digest {desc.digest}: {err}") from None
        except RegistryError as err:
            writer.close()
            if err.status < 500 and err.status != 429 or attempt == RETRIES - 1:
                raise PullError(f"failed to fetch blob {desc.digest}: {err}", err.status) from None
        except OSError as err:
            writer.close()
            transport.close()
            if attempt == RETRIES - 1:
                raise PullError(f"failed to fetch blob {desc.digest}: {err}") from None
        progress.status(f"Retrying in {attempt + 1} second{'s' if attempt else ''}", layer_id)
        time.sleep(attempt + 1)
    raise AssertionError("unreachable")


def _writer(store: ImageStore, ingest_ref: str, desc: Descriptor) -> Writer | None:
    """The ingest for desc's blob; when another pull holds it, wait for that one (None once the
    blob is stored, or the ingest once it is free again)."""
    deadline = time.monotonic() + WAIT_FOR_OTHER
    while True:
        if store.content.exists(desc.digest):
            return None
        try:
            return store.content.writer(ingest_ref, desc.digest, desc.size)
        except Locked:
            if time.monotonic() > deadline:
                raise PullError(f"timed out waiting for another download of {desc.digest}") from None
            time.sleep(0.1)


def fetch(store: ImageStore, resolved: Resolved, progress: Progress | None = None,
          tag: bool = True, write_lock: AbstractContextManager[Any] | None = None) -> tuple[str, bool]:
    """Download what the store lacks and record the image; (image ID, whether the name is new
    or now names another image: docker's "Downloaded newer image"). The store's metadata is
    written under write_lock (the daemon's one-writer lock), when given."""
    progress = progress or Progress()
    ref, transport, manifest = resolved.ref, resolved.transport, resolved.manifest
    try:
        config_bytes = _fetch_config(store, transport, ref, manifest.config)
        config = parse_config(config_bytes)
        _check_platform(resolved, Platform(config.os, config.architecture, config.variant).normalized())
        if len(config.diff_ids) != len(manifest.layers):
            raise PullError(f"invalid image {ref}: its config lists {len(config.diff_ids)} layers, "
                            f"its manifest {len(manifest.layers)}")
        layers: list[Layer | None] = []
        missing: list[int] = []
        known = store.meta.get_image(manifest.config.digest) is not None  # docker then lists no layers
        for i, desc in enumerate(manifest.layers):
            if mt.is_nondistributable(desc.media_type) and desc.urls:
                raise PullError(f"foreign layer {desc.digest} is not supported")
            if store.content.exists(desc.digest):
                if not known:
                    progress.status("Already exists", short(desc.digest))
                layers.append(Layer(desc))
            else:
                progress.status("Pulling fs layer", short(desc.digest))
                layers.append(None)
                missing.append(i)
        for i in missing[CONCURRENCY:]:
            progress.status("Waiting", short(manifest.layers[i].digest))
        if missing:
            with ThreadPoolExecutor(min(CONCURRENCY, len(missing))) as pool:
                futures = {i: pool.submit(download_blob, store, transport, ref, manifest.layers[i], progress)
                           for i in missing}
                for i, future in futures.items():
                    layers[i] = future.result()
                    progress.status("Pull complete", short(manifest.layers[i].digest))
    except InvalidManifest as err:
        raise PullError(f"invalid image config for {ref}: {err}") from None
    finally:
        transport.close()
    tags = [str(ref)] if tag and ref.tag is not None else []
    repo_digest = f"{ref.name}@{resolved.digest}"
    with write_lock or contextlib.nullcontext():
        before = store.meta.resolve_tag(tags[0] if tags else repo_digest)
        # diff IDs are checked when a layer is unpacked (blob digests were checked on the way in)
        image_id = store.add_image(config_bytes, [layer for layer in layers if layer is not None],
                                   manifest_bytes=resolved.manifest_bytes, tags=tags, repo_digests=[repo_digest],
                                   measure_layers=False)
    return image_id, before != image_id


def _check_platform(resolved: Resolved, actual: Platform) -> None:
    """Docker's refusal of a single-platform image that is not the --platform asked for."""
    wanted = resolved.platform
    if wanted is None or ((wanted.os, wanted.architecture) == (actual.os, actual.architecture)
                          and wanted.variant in ("", actual.variant)):
        return
    raise PullError(f"image with reference {resolved.ref.familiar()} was found but does not match the "
                    f"specified platform: wanted {wanted}, actual: {actual}", 404)


def _fetch_config(store: ImageStore, transport: Transport, ref: reference.Reference, desc: Descriptor) -> bytes:
    if desc.size > CONFIG_LIMIT:
        raise PullError(f"image config {desc.digest} is larger than {CONFIG_LIMIT} bytes")
    if not store.content.exists(desc.digest):
        download_blob(store, transport, ref, desc, Progress())
    return store.content.read(desc.digest)


def pull(store: ImageStore, name: str, credentials: Credentials | None = None,
         config: RegistryConfig | None = None, progress: Progress | None = None,
         platform: str | None = None, write_lock: AbstractContextManager[Any] | None = None) -> str:
    """Pull name into store (docker pull): the image ID. PullError on failure."""
    return fetch(store, resolve(name, credentials, config, platform), progress, write_lock=write_lock)[0]
