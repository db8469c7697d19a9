"""`docker save` / `docker load` archives.

save writes what Docker 25+ writes: an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/...``) with Docker's ``manifest.json`` and ``repositories`` beside it, layers as
uncompressed tars named by their diff ID, all in one deterministic tar (sorted names, mtime 0,
root-owned), so saving twice gives the same bytes. ``oci=False`` writes the layout of Docker
before 25 (``<id>/layer.tar``, ``<id>/json``, ``<config hex>.json``).

load reads Docker 25+ archives, older Docker archives, archives written by skopeo and plain
OCI layout tarballs, gzip/zstd/xz-compressed or not, streaming (see tario.scan). Layer blobs
are stored as the archive carries them: Docker's are uncompressed tars, so the stored blob's
digest is its diff ID and nothing is recompressed (Docker's own store keeps uncompressed
diffs too); compressed ones (OCI layouts) are kept compressed so their manifest keeps its
digest. Every layer is checked against the config's rootfs.diff_ids and every config against
its name before any image or tag is recorded; a failure records nothing.
"""

from __future__ import annotations

import posixpath
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.image import digest as digests
from dockyard.image import mediatypes as mt
from dockyard.image import reference
from dockyard.image.archive.ingest import NewImage, Recorded, check_layers, check_tags, record_images
from dockyard.image.archive.oci_layout import (
    ExportImage,
    gather,
    go_json,
    images_from_index,
    layout_files,
    stored_image,
)
from dockyard.image.archive.tario import ArchiveError, Scan, Source, scan, write_tar
from dockyard.image.compression import detect, open_decompressed
from dockyard.image.manifest import Descriptor, chain_ids, parse_any, parse_config

_LAYER_TYPES = {"none": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}
_HEX_LEN = 64


# ---- save ------------------------------------------------------------------------------------

def save(store: Any, refs: list[str], out: BinaryIO, *, oci: bool = True) -> list[str]:
    """Write the images refs name (tags, repositories or IDs) to out as `docker save` does;
    their IDs."""
    with tempfile.TemporaryDirectory(prefix="dockyard-save-") as tmp:
        images = [_uncompressed(store, stored_image(store, image_id, tags), Path(tmp))
                  for image_id, tags in gather(store, refs)]
        write_tar(out, _docker_files(images) if oci else _legacy_files(images))
    return [image.image_id for image in images]


def _uncompressed(store: Any, image: ExportImage, tmp: Path) -> ExportImage:
    """The image as Docker saves it: an OCI manifest over uncompressed layers."""
    diff_ids = parse_config(image.config).diff_ids
    layers, blobs = [], {image.image_id: image.config}
    for diff_id, layer in zip(diff_ids, image.layers, strict=True):
        source = _layer_tar(store, layer, tmp)
        size = source.stat().st_size
        layers.append(Descriptor(mt.OCI_LAYER, diff_id, size))
        blobs[diff_id] = source
    manifest = go_json({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": image.image_id, "size": len(image.config)},
        "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size} for d in layers],
    })
    blobs[digests.of_bytes(manifest)] = manifest
    return ExportImage(image.image_id, image.config, manifest, mt.OCI_MANIFEST, layers, blobs, image.refs)


def _layer_tar(store: Any, layer: Descriptor, tmp: Path) -> Path:
    """A file holding the layer's uncompressed tar: the stored blob itself when it is one."""
    with store.content.open(layer.digest) as raw:
        if detect(raw.read(8)) == "none":
            return store.content.path(layer.digest)
        raw.seek(0)
        target = tmp / digests.split(layer.digest)[1]
        with open(target, "wb") as out:
            reader = open_decompressed(raw)
            while chunk := reader.read(1 << 20):
                out.write(chunk)
    return target


def _encode(doc: Any) -> bytes:
    """JSON as Go's json.Encoder writes it: compact, with a trailing newline."""
    return go_json(doc) + b"\n"


def _repositories(images: list[ExportImage], top_layer: list[str]) -> dict[str, dict[str, str]]:
    """The `repositories` file: repository -> tag -> top layer, keys sorted (a Go map's JSON)."""
    repos: dict[str, dict[str, str]] = {}
    for image, top in zip(images, top_layer, strict=True):
        for ref in image.refs:
            repos.setdefault(ref.familiar_name(), {})[ref.tag or "latest"] = top
    return {name: dict(sorted(tags.items())) for name, tags in sorted(repos.items())}


def _manifest_item(config: str, image: ExportImage, layers: list[str]) -> dict[str, Any]:
    return {"Config": config, "RepoTags": [r.familiar() for r in image.refs] or None, "Layers": layers}


def _docker_files(images: list[ExportImage]) -> dict[str, Source]:
    files = layout_files(images)
    items = [_manifest_item(f"blobs/sha256/{digests.split(i.image_id)[1]}", i,
                            [f"blobs/sha256/{digests.split(d.digest)[1]}" for d in i.layers]) for i in images]
    files["manifest.json"] = _encode(items)
    repos = _repositories(images, [digests.split(i.layers[-1].digest)[1] for i in images])
    if repos:
        files["repositories"] = _encode(repos)
    return files


def _v1_ids(diff_ids: tuple[str, ...]) -> list[str]:
    """Stable legacy layer IDs: each derived from its chain ID and its parent's ID."""
    ids: list[str] = []
    for chain in chain_ids(list(diff_ids)):
        ids.append(digests.split(digests.of_bytes(f"{chain} {ids[-1] if ids else ''}".encode()))[1])
    return ids


def _legacy_files(images: list[ExportImage]) -> dict[str, Source]:
    files: dict[str, Source] = {}
    items, tops = [], []
    for image in images:
        config = parse_config(image.config)
        ids = _v1_ids(config.diff_ids)
        for i, (v1_id, layer) in enumerate(zip(ids, image.layers, strict=True)):
            v1: dict[str, Any] = {"id": v1_id}
            if i:
                v1["parent"] = ids[i - 1]
            v1["created"] = config.created if i == len(ids) - 1 and config.created else "1970-01-01T00:00:00Z"
            if i == len(ids) - 1:
                v1.update(config=config.config, architecture=config.architecture)
            v1["os"] = config.os
            files[f"{v1_id}/VERSION"] = b"1.0"
            files[f"{v1_id}/json"] = go_json(v1)
            files[f"{v1_id}/layer.tar"] = image.blobs[layer.digest]
        config_name = f"{digests.split(image.image_id)[1]}.json"
        files[config_name] = image.config
        items.append(_manifest_item(config_name, image, [f"{v}/layer.tar" for v in ids]))
        tops.append(ids[-1])
    files["manifest.json"] = _encode(items)
    repos = _repositories(images, tops)
    if repos:
        files["repositories"] = _encode(repos)
    return files


# ---- load ------------------------------------------------------------------------------------

def load(store: Any, stream: BinaryIO) -> list[str]:
    """Load every image of an archive; the lines `docker load` prints."""
    source = scan(store.content, stream)
    if "manifest.json" in source.documents:
        images = _from_manifest(source)
    elif "index.json" in source.documents:
        images = images_from_index(source)
    else:
        raise ArchiveError("invalid archive: it has neither manifest.json nor index.json")
    return report(record_images(store, images))


def report(recorded: list[Recorded]) -> list[str]:
    """Docker's load output lines for recorded images."""
    lines = []
    for image in recorded:
        for tag, previous in image.tags:
            familiar = reference.parse_normalized(tag).familiar()
            if previous:
                lines.append(f"The image {familiar} already exists, renaming the old one with ID "
                             f"{previous} to empty string")
            lines.append(f"Loaded image: {familiar}")
        if not image.tags:
            lines.append(f"Loaded image ID: {image.image_id}")
    return lines


def _from_manifest(source: Scan) -> list[NewImage]:
    doc = source.document("manifest.json")
    if not isinstance(doc, list):
        raise ArchiveError("invalid archive: manifest.json must be a JSON list")
    known = _index_manifests(source)
    return [_docker_image(source, item, f"manifest.json[{i}]", known) for i, item in enumerate(doc)]


def _field(item: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = item.get(key)
    if value is None and kind is list:
        return []
    if not isinstance(value, kind):
        raise ArchiveError(f"invalid archive: {where}.{key} must be a {'list' if kind is list else 'string'}")
    return value


def _docker_image(source: Scan, item: Any, where: str, known: dict[tuple[str, ...], bytes]) -> NewImage:
    if not isinstance(item, dict):
        raise ArchiveError(f"invalid archive: {where} must be an object")
    config_path = _field(item, "Config", str, where)
    config_file = source.resolve(config_path)
    stem = posixpath.basename(config_path).removesuffix(".json")
    if len(stem) == _HEX_LEN and config_file.digest != f"sha256:{stem}":
        raise ArchiveError(f"invalid archive: {config_path} has digest {config_file.digest}, not the one its name says")
    config = source.read(config_path)
    layers = [_layer(source, p, where) for p in _field(item, "Layers", list, where)]
    tags = check_tags(_field(item, "RepoTags", list, where), f"invalid archive: {where}")
    manifest = known.get((config_file.digest, *(d.digest for d in layers)))
    return NewImage(config, check_layers(source.content, config, layers, where), manifest, tags=tags)


def _layer(source: Scan, path: Any, where: str) -> Descriptor:
    if not isinstance(path, str):
        raise ArchiveError(f"invalid archive: {where}.Layers must list paths")
    found = source.resolve(path)
    with source.content.open(found.digest) as f:
        compression = detect(f.read(8))
    if compression not in _LAYER_TYPES:
        raise ArchiveError(f"invalid archive: layer {path} is {compression}-compressed, which images cannot carry")
    return Descriptor(_LAYER_TYPES[compression], found.digest, found.size)


def _index_manifests(source: Scan) -> dict[tuple[str, ...], bytes]:
    """OCI manifests of a Docker 25+ archive's index.json by (config, *layers): reused so a
    loaded image keeps the manifest digest it was saved with."""
    doc = source.document("index.json")
    found: dict[tuple[str, ...], bytes] = {}
    for entry in doc.get("manifests", []) if isinstance(doc, dict) else []:
        try:
            blob = source.blob(entry["digest"])
            if blob is None or blob.size != entry.get("size") or not mt.is_manifest(entry.get("mediaType", "")):
                continue
            data = source.read(blob.path)
            manifest = parse_any(data, entry["mediaType"])
        except (KeyError, TypeError, ValueError):
            continue
        if mt.is_manifest(manifest.media_type) and manifest.media_type == mt.OCI_MANIFEST:
            found[(manifest.config.digest, *(d.digest for d in manifest.layers))] = data
    return found
