"""OCI image layouts (image-spec ``image-layout.md``): write images as a directory or a tar,
read one (or an archive holding one) into the store.

A layout is ``oci-layout`` ({"imageLayoutVersion": "1.0.0"}), ``index.json`` naming each image
with ``org.opencontainers.image.ref.name`` (the tag, as Docker and skopeo write it) and
``io.containerd.image.name`` (the full reference), and ``blobs/<alg>/<hex>``. Blobs are written
as the store holds them, so a manifest keeps its digest; reading verifies every blob against
its digest and every layer against the config's diff_ids before anything is recorded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from dockyard.image import digest as digests
from dockyard.image import mediatypes as mt
from dockyard.image import reference
from dockyard.image.archive.ingest import NewImage, check_layers, check_tags, record_images
from dockyard.image.archive.tario import (
    MAX_DOCUMENT,
    ArchiveError,
    ArchiveFile,
    Scan,
    Source,
    scan,
    write_dir,
    write_tar,
)
from dockyard.image.content import ContentStore, DigestMismatch, SizeMismatch
from dockyard.image.errors import NoSuchImage
from dockyard.image.manifest import (
    Descriptor,
    InvalidManifest,
    NoMatchingPlatform,
    Platform,
    parse_any,
    parse_config,
    parse_index,
    select_platform,
)

IMAGE_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = b'{"imageLayoutVersion": "1.0.0"}'
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class ExportImage:
    """One image as it goes into an archive: its manifest, the blobs it needs, its names."""

    image_id: str
    config: bytes
    manifest: bytes
    manifest_type: str
    layers: list[Descriptor]
    blobs: dict[str, Source]  # digest → where to read it
    refs: list[reference.Reference] = field(default_factory=list)


# ---- choosing images -------------------------------------------------------------------------

def resolve(store: Any, ref: str) -> tuple[str, reference.Reference | None]:
    """(image ID, the tag that named it, or None for an ID) of a reference as `docker save`
    takes it: a name[:tag], a full or short image ID."""
    image_id = store.resolve(ref)
    try:
        tag = reference.with_default_tag(reference.parse_normalized(ref))
    except reference.InvalidReference:
        return image_id, None
    named = not tag.digest and store.meta.resolve_tag(str(tag)) == image_id
    return image_id, tag if named else None


def _manifest_of(store: Any, image_id: str) -> tuple[bytes, Descriptor]:
    record = store.meta.get_image(image_id)
    if record is None:
        raise NoSuchImage(image_id)
    desc = Descriptor(record.target.media_type, record.target.digest, record.target.size)
    while mt.is_index(desc.media_type):
        desc = select_platform(parse_index(store.content.read(desc.digest), desc.media_type),
                               parse_config(store.content.read(image_id)).platform)
    return store.content.read(desc.digest), desc


def stored_image(store: Any, image_id: str, refs: list[reference.Reference]) -> ExportImage:
    """An image with its blobs as the store holds them."""
    content: ContentStore = store.content
    manifest_bytes, desc = _manifest_of(store, image_id)
    manifest = parse_any(manifest_bytes, desc.media_type)
    config = content.read(image_id)
    blobs: dict[str, Source] = {image_id: config, desc.digest: manifest_bytes}
    blobs.update((layer.digest, content.path(layer.digest)) for layer in manifest.layers)
    return ExportImage(image_id, config, manifest_bytes, manifest.media_type, list(manifest.layers), blobs, refs)


def _repository(ref: str) -> reference.Reference | None:
    """The repository ref names when it is a name without tag or digest."""
    try:
        named = reference.parse_normalized(ref)
    except reference.InvalidReference:
        return None
    return named if named.is_name_only else None


def _named_by(store: Any, ref: str) -> list[tuple[str, reference.Reference | None]]:
    """(image ID, tag) pairs one `docker save` argument stands for: a repository name all its
    tags (or an image ID prefix when it has none), a tag its image, an ID its image untagged."""
    repository = _repository(ref)
    if repository is None:
        return [resolve(store, ref)]
    tagged = store.meta.tags_in(repository.name)
    if tagged:
        return [(image_id, reference.parse_normalized(name)) for name, image_id in tagged]
    try:
        return [resolve(store, ref)]
    except NoSuchImage:
        raise NoSuchImage(ref) from None  # named as given, without ":latest"


def gather(store: Any, refs: list[str]) -> list[tuple[str, list[reference.Reference]]]:
    """Image IDs to export, in first-named order, each with the tags that named it."""
    chosen: dict[str, list[reference.Reference]] = {}
    for ref in refs:
        for image_id, tag in _named_by(store, ref):
            tags = chosen.setdefault(image_id, [])
            if tag is not None and tag not in tags:
                tags.append(tag)
    return list(chosen.items())


# ---- writing ---------------------------------------------------------------------------------

def go_json(doc: Any) -> bytes:
    """Compact JSON, as Go's encoding/json writes it (field order is the caller's)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _platform(config: bytes) -> dict[str, str]:
    p = parse_config(config)
    out = {"architecture": p.architecture, "os": p.os}
    if p.os_version:
        out["os.version"] = p.os_version
    if p.variant:
        out["variant"] = p.variant
    return out


def index_entries(image: ExportImage) -> list[dict[str, Any]]:
    """The index.json descriptors naming an image: one per tag (none untagged, as Docker)."""
    base = {"mediaType": image.manifest_type, "digest": digests.of_bytes(image.manifest),
            "size": len(image.manifest)}
    platform = _platform(image.config)
    if not image.refs:
        return [{**base, "platform": platform}]
    return [{**base, "annotations": {IMAGE_NAME: str(ref), REF_NAME: ref.tag or "latest"}, "platform": platform}
            for ref in image.refs]


def layout_files(images: list[ExportImage], keep: list[dict[str, Any]] | None = None) -> dict[str, Source]:
    """Every file of a layout holding images (after the index entries in keep)."""
    files: dict[str, Source] = {"oci-layout": LAYOUT_FILE}
    entries = list(keep or ())
    for image in images:
        for dgst, source in image.blobs.items():
            algo, hexpart = digests.split(dgst)
            files[f"blobs/{algo}/{hexpart}"] = source
        entries += index_entries(image)
    files["index.json"] = go_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries})
    return files


def _existing_entries(dest: str, replaced: set[str]) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(dest, "index.json"), "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise ArchiveError(f"{dest}/index.json: {exc}") from None
    return [e for e in doc.get("manifests", [])
            if (e.get("annotations") or {}).get(REF_NAME) not in replaced]


def write_layout(store: Any, refs: list[str], dest: str | BinaryIO) -> None:
    """Write the images refs name as an OCI layout: into directory dest (added to a layout
    already there; an image takes over the ref names it carries) or as a tar to a stream."""
    images = [stored_image(store, image_id, tags) for image_id, tags in gather(store, refs)]
    if not isinstance(dest, str):
        write_tar(dest, layout_files(images))
        return
    names = {ref.tag or "latest" for image in images for ref in image.refs}
    files = layout_files(images, _existing_entries(dest, names))
    write_dir(dest, {k: v for k, v in files.items() if k != "index.json"})
    write_dir(dest, {"index.json": files["index.json"]})


# ---- reading ---------------------------------------------------------------------------------

class DirSource:
    """A layout directory read like a Scan: blobs are verified into the content store on
    first use; no symlink is followed anywhere in the layout."""

    def __init__(self, content: ContentStore, path: str) -> None:
        self.content = content
        self.path = path
        self._found: dict[str, ArchiveFile] = {}

    def _open(self, *parts: str) -> int:
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                flags = (os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC) if last else _O_DIR
                try:
                    nxt = os.open(part, flags, dir_fd=fd)
                except OSError as exc:
                    if exc.errno == 40:  # ELOOP: a symlink
                        raise ArchiveError(f"{self.path}: {'/'.join(parts)} is a symlink") from None
                    raise
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    def document(self, name: str) -> Any:
        """A top-level JSON document, parsed; None when absent."""
        try:
            fd = self._open(name)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_DOCUMENT + 1)
        if len(data) > MAX_DOCUMENT:
            raise ArchiveError(f"{self.path}/{name} is too large")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ArchiveError(f"{self.path}/{name}: {exc}") from None

    def blob(self, dgst: str) -> ArchiveFile | None:
        """The blob, verified into the content store; None when the layout lacks it."""
        if dgst in self._found:
            return self._found[dgst]
        algo, hexpart = digests.split(dgst)
        try:
            fd = self._open("blobs", algo, hexpart)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            try:
                self.content.ingest(f, dgst, size)
            except (DigestMismatch, SizeMismatch) as exc:
                raise ArchiveError(f"{self.path}/blobs/{algo}/{hexpart}: {exc}") from None
        self._found[dgst] = ArchiveFile(f"blobs/{algo}/{hexpart}", dgst, size)
        return self._found[dgst]


LayoutSource = Scan | DirSource


def _read(source: LayoutSource, desc: Descriptor) -> bytes:
    found = _present(source, desc)
    if found.size > MAX_DOCUMENT:
        raise ArchiveError(f"blob {desc.digest} is too large ({found.size} bytes) for a JSON document")
    return source.content.read(desc.digest)


def _present(source: LayoutSource, desc: Descriptor) -> ArchiveFile:
    found = source.blob(desc.digest)
    if found is None:
        raise ArchiveError(f"invalid layout: blob {desc.digest} is missing")
    if found.size != desc.size:
        raise ArchiveError(f"invalid layout: blob {desc.digest} has {found.size} bytes, its descriptor says {desc.size}")
    return found


def _matches(entry: Descriptor, ref: str) -> bool:
    annotations = entry.annotations or {}
    if annotations.get(REF_NAME) == ref:
        return True
    try:
        full = check_tags([ref], "ref")[0]
    except ArchiveError:
        return False
    return full in (annotations.get(IMAGE_NAME), annotations.get(REF_NAME))


def _tags(entry: Descriptor, name: str | None) -> list[str]:
    annotations = entry.annotations or {}
    if IMAGE_NAME in annotations:
        return [annotations[IMAGE_NAME]]
    ref_name = annotations.get(REF_NAME)
    if not ref_name:
        return []
    if ":" in ref_name or "/" in ref_name:
        return [ref_name]
    return [f"{name}:{ref_name}"] if name else []


def images_from_index(source: LayoutSource, ref: str | None = None, platform: Platform | str | None = None,
                      name: str | None = None) -> list[NewImage]:
    """The images a layout's index.json names (only those matching ref, when given), with
    every blob present and verified; platform picks from nested indexes (default: this host)."""
    doc = source.document("index.json")
    if doc is None:
        raise ArchiveError("invalid layout: no index.json")
    try:
        index = parse_index(json.dumps(doc))
        entries = [e for e in index.manifests if ref is None or _matches(e, ref)]
        if not entries:
            raise ArchiveError(f"no image named {ref!r} in the layout" if ref else "the layout holds no image")
        return [_image(source, entry, platform, name) for entry in entries]
    except (InvalidManifest, NoMatchingPlatform) as exc:
        raise ArchiveError(f"invalid layout: {exc}") from None


def _image(source: LayoutSource, entry: Descriptor, platform: Platform | str | None, name: str | None) -> NewImage:
    desc = entry
    while mt.is_index(desc.media_type):
        desc = select_platform(parse_index(_read(source, desc), desc.media_type), platform)
    manifest_bytes = _read(source, desc)
    manifest = parse_any(manifest_bytes, desc.media_type)
    if mt.is_index(manifest.media_type):
        raise ArchiveError(f"invalid layout: {desc.digest} is an index where a manifest was expected")
    config = _read(source, manifest.config)
    for layer in manifest.layers:
        _present(source, layer)
    what = f"image {digests.of_bytes(config)}"
    layers = check_layers(source.content, config, list(manifest.layers), what)
    return NewImage(config, layers, manifest_bytes, manifest.media_type, check_tags(_tags(entry, name), what))


def load_layout(store: Any, src: str | BinaryIO, ref: str | None = None, platform: Platform | str | None = None,
                name: str | None = None) -> list[str]:
    """Read a layout (a directory, or a possibly compressed tar stream) into the store; the IDs
    of the images recorded. name tags entries whose ref name is only a tag (name:tag)."""
    source = DirSource(store.content, src) if isinstance(src, str) else scan(store.content, src)
    images = images_from_index(source, ref, platform, name)
    return [r.image_id for r in record_images(store, images)]

