"""Build cache export and import (--cache-to / --cache-from): `type=local` writes the step images
as an OCI layout whose index entries carry their cache keys; `type=inline` records, in the
built image's config, each step's config so a copy of the image elsewhere (a registry) brings
its whole cached chain back (the step configs over the image's own layers). Also the image of
an OCI layout for `--build-context name=oci-layout://PATH[:TAG]`."""

from __future__ import annotations

import base64
import json
from typing import Any

from dockyard.build.imageconfig import INLINE_CACHE_FIELD
from dockyard.image import digest as digests
from dockyard.image.archive.ingest import record_images
from dockyard.image.archive.oci_layout import (
    DirSource,
    go_json,
    images_from_index,
    index_entries,
    layout_files,
    stored_image,
)
from dockyard.image.archive.tario import ArchiveError, write_dir
from dockyard.image.store import ImageStore

KEY_ANNOTATION = "dockyard.build.cache-key"


class CacheIOError(Exception):
    """A cache source or destination that cannot be used."""


def parse_spec(spec: str) -> dict[str, str]:
    """`type=local,dest=DIR` → {"type": "local", "dest": DIR}; a bare reference is type=registry."""
    if "=" not in spec.split(",", 1)[0]:
        return {"type": "registry", "ref": spec}
    out = dict(part.partition("=")[::2] for part in spec.split(",") if part)
    out.setdefault("type", "local")
    return out


def export_local(store: ImageStore, steps: list[tuple[str, str]], dest: str) -> None:
    """Write the (cache key, image) steps as an OCI layout in directory dest (its index replaced)."""
    images = {image: stored_image(store, image, []) for _key, image in steps}
    files = layout_files(list(images.values()))
    entries = []
    for key, image in steps:
        entry = index_entries(images[image])[0]
        entry["annotations"] = {KEY_ANNOTATION: key}
        entries.append(entry)
    files["index.json"] = go_json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                   "manifests": entries})
    try:
        write_dir(dest, {k: v for k, v in files.items() if k != "index.json"})
        write_dir(dest, {"index.json": files["index.json"]})
    except OSError as e:
        raise CacheIOError(f"cannot write the cache to {dest}: {e.strerror}") from None


def import_local(store: ImageStore, src: str) -> dict[str, str]:
    """The cache key → image ID map of a layout export_local wrote (its images loaded)."""
    try:
        source = DirSource(store.content, src)
        doc = source.document("index.json") or {}
        keys = [(e.get("annotations") or {}).get(KEY_ANNOTATION) for e in doc.get("manifests") or []]
        recorded = record_images(store, images_from_index(source))
    except (OSError, ArchiveError) as e:
        raise CacheIOError(f"cannot read the cache in {src}: {e}") from None
    return {key: r.image_id for key, r in zip(keys, recorded, strict=True) if key}


def layout_image(store: ImageStore, spec: str) -> str:
    """The image an `oci-layout://PATH[:TAG]` names, loaded into the store untagged (a layout
    holding one image needs no tag); its ID."""
    path = spec.removeprefix("oci-layout://")
    if "@" in path:
        raise CacheIOError(f"{spec}: name the image of the layout by tag, not by digest")
    head, colon, tag = path.rpartition(":")
    if colon and "/" not in tag:
        path = head
    else:
        tag = ""
    try:
        images = images_from_index(DirSource(store.content, path), tag or None)
    except (OSError, ArchiveError) as e:
        raise CacheIOError(f"cannot read the OCI layout {path}: {e}") from None
    if len(images) != 1:
        raise CacheIOError(f"the OCI layout {path} holds {len(images)} images: name one with :TAG")
    image = images[0]
    return store.add_image(image.config, image.layers, manifest_bytes=image.manifest,
                           manifest_media_type=image.manifest_type)


def inline_records(store: ImageStore, steps: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The inline cache of a chain of (cache key, image) steps: each key with its image config."""
    return [{"key": key, "config": base64.b64encode(store.content.read(image)).decode()} for key, image in steps]


def import_inline(store: ImageStore, image: str) -> dict[str, str]:
    """The cache key → image ID map an image's inline cache describes; its step images are
    recorded over the image's own layers (same configs, so the same IDs as where it was built)."""
    records: list[dict[str, Any]] = store.config(image).get(INLINE_CACHE_FIELD) or []
    layers = store.layers(image)
    found: dict[str, str] = {}
    parent: str | None = None
    for record in records:
        try:
            config = base64.b64decode(record["config"])
            n = len((json.loads(config).get("rootfs") or {}).get("diff_ids") or [])
        except (KeyError, TypeError, ValueError):
            continue
        if n > len(layers):
            continue
        step = digests.of_bytes(config)
        try:
            store.resolve(step)
        except (LookupError, ValueError):
            step = store.add_image(config, layers[:n], parent=parent)
        found[record["key"]] = parent = step
    return found
