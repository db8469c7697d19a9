"""How archive code records images: layer checks, then ``ImageStore.add_image`` (the single
way an image enters the store) for each image, after every image of the archive has been
verified, so a bad archive records nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.image import mediatypes as mt
from dockyard.image.archive.tario import ArchiveError
from dockyard.image.compression import detect
from dockyard.image.content import ContentStore
from dockyard.image.layer_size import measure_layer
from dockyard.image.manifest import Descriptor, parse_config
from dockyard.image.store import Layer, normalize_tag


class LayerMismatch(ArchiveError):
    """A layer whose content does not match the config's diff_ids."""


@dataclass
class NewImage:
    """A verified image about to be recorded: config, layers (blobs already in the content
    store, with diff IDs and sizes measured), the manifest to keep (built when None), tags."""

    config: bytes
    layers: list[Layer]
    manifest: bytes | None = None
    manifest_type: str = mt.OCI_MANIFEST
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Recorded:
    """What record_images did for one image: its ID, and each tag set with the image it was
    taken from (None when the tag was new or already pointed there)."""

    image_id: str
    tags: list[tuple[str, str | None]]


def measure(content: ContentStore, layer: Descriptor) -> Layer:
    """The layer with the digest of its uncompressed tar and Docker's size of it, streamed from
    the blob; the compression is told by the blob's magic bytes, whatever its media type says."""
    with content.open(layer.digest) as raw:
        plain = detect(raw.read(8)) == "none" and layer.digest.startswith("sha256:")
        raw.seek(0)
        try:
            diff_id, size = measure_layer(raw, layer.digest if plain else None)
        except (OSError, EOFError, ValueError) as exc:
            raise LayerMismatch(f"layer {layer.digest} cannot be read: {exc}") from None
    return Layer(layer, diff_id, size)


def check_layers(content: ContentStore, config: bytes, layers: list[Descriptor], what: str) -> list[Layer]:
    """The layers, measured, after checking them against the config's rootfs.diff_ids."""
    diff_ids = parse_config(config).diff_ids
    if len(diff_ids) != len(layers):
        raise LayerMismatch(f"{what}: the config lists {len(diff_ids)} layers but {len(layers)} were given")
    measured = []
    for i, (want, layer) in enumerate(zip(diff_ids, layers, strict=True)):
        found = measure(content, layer)
        if found.diff_id != want:
            raise LayerMismatch(f"{what}: layer {i} has diff ID {found.diff_id}, the config expects {want}")
        measured.append(found)
    return measured


def check_tags(tags: list[Any], what: str) -> list[str]:
    """Tags normalised ("busybox" → "docker.io/library/busybox:latest"); ArchiveError if invalid."""
    out = []
    for tag in tags:
        try:
            out.append(str(normalize_tag(tag)))
        except (ValueError, TypeError):
            raise ArchiveError(f"{what}: invalid tag {tag!r}") from None
    return out


def record_images(store: Any, images: list[NewImage]) -> list[Recorded]:
    """Add verified images to the store with their tags, in order."""
    out = []
    for image in images:
        before = {tag: store.meta.resolve_tag(tag) for tag in image.tags}
        image_id = store.add_image(image.config, image.layers, manifest_bytes=image.manifest,
                                   manifest_media_type=image.manifest_type, tags=image.tags)
        out.append(Recorded(image_id, [(t, before[t] if before[t] not in (None, image_id) else None)
                                       for t in image.tags]))
    return out
