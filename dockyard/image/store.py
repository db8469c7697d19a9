"""ImageStore: the image store facade: blobs, image records and names, unpacked layers, and
Docker's image operations (lookup, tag, rmi, prune, inspect, history, list, commit).

On disk, under ``root``::

    content/     ContentStore: blobs by digest (configs, manifests, layers)
    image.db     MetadataStore: images, tags, repo digests, blob references, leases
                 (its version table is ``schema_version``; the engine keeps its own database)
    snapshots/   the snapshotter: one committed snapshot per layer chain ID, plus containers'
                 active snapshots
    locks/       unpack locks (see unpack.py)

Adding an image (archive loading, bootstrap and commit all do it this way):

1. Put every layer blob into ``store.content`` (``ingest``/``writer``/``put``). Blobs younger
   than the GC grace period (an hour) survive without a reference; a longer operation should
   hold a lease (``store.meta.create_lease`` + ``add_lease_resource(lease, "content", digest)``).
2. Call ``store.add_image(config_bytes, layers, manifest_bytes=..., tags=..., repo_digests=...)``.
   ``layers`` lists the layer blobs bottom first, as ``Layer(descriptor, diff_id, size)`` or bare
   ``Descriptor``s; a diff ID or uncompressed size not given is measured by decompressing the blob
   once. With ``manifest_bytes`` the layers may be omitted (they are read from the manifest);
   without it an OCI manifest is built. add_image stores config and manifest, checks that every
   blob is present and that the diff IDs agree with the config's ``rootfs.diff_ids``, then,
   under the content store's reference lock and in one metadata transaction, records the blob
   references for GC, the image (ID = config digest) and its tags / repo digests (normalised:
   ``busybox`` → ``docker.io/library/busybox:latest``; a tag moves from the image that had it).

Internal facts about an image live in its metadata labels (``dockyard.image/...``): its parent
(set by commit, as Docker's image store keeps it) and the uncompressed size of each layer, which
is what ``Size`` sums (Docker's graphdriver store reports the layers' unpacked diff sizes).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.image import commit, reference, removal, views
from dockyard.image import digest as digests
from dockyard.image import mediatypes as mt
from dockyard.image.content import ContentStore
from dockyard.image.errors import InvalidImage, NoSuchImage
from dockyard.image.gc import DEFAULT_GRACE, GCReport, collect
from dockyard.image.layer_diff import write_layer
from dockyard.image.layer_size import dir_size, measure_layer
from dockyard.image.manifest import Descriptor, build_manifest, chain_ids, parse_config, parse_manifest
from dockyard.image.metadata import AmbiguousPrefix, ImageRecord, MetadataStore, Target
from dockyard.image.names import normalize_repo_digest, normalize_tag, stored_name
from dockyard.image.removal import InUse, UsedBy
from dockyard.image.snapshot import Mount, open_snapshotter
from dockyard.image.unpack import LayerRef, Unpacker

__all__ = ["DEFAULT_ROOT", "ImageStore", "InUse", "Layer", "UsedBy", "normalize_repo_digest", "normalize_tag"]

DEFAULT_ROOT = "/var/lib/dockyard/image-store"
LABEL_PARENT = "dockyard.image/parent"
# the layers' sizes as dockerd reports them (layer_size.py), null where not known yet; stores
# before it recorded the tars' lengths as "dockyard.image/layer-sizes", replaced on first use
LABEL_LAYER_SIZES = "dockyard.image/docker-layer-sizes"
OLD_LABEL_LAYER_SIZES = "dockyard.image/layer-sizes"


@dataclass(frozen=True)
class Layer:
    """One layer blob of an image: its descriptor (the blob in the content store), the sha256
    of its uncompressed tar (diff ID) and the layer's size as dockerd reports it, when known."""

    descriptor: Descriptor
    diff_id: str | None = None
    size: int | None = None


class _Sink:
    """A content Writer seen as a binary file for write_layer."""

    def __init__(self, writer: Any) -> None:
        self.write = writer.write

    def flush(self) -> None:
        """Nothing to flush: the writer fsyncs on commit."""


class ImageStore:
    """Images under root (see the module docstring for the layout and the add_image protocol)."""

    def __init__(self, root: str = DEFAULT_ROOT, snapshotter: str = "overlay") -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.content = ContentStore(os.path.join(self.root, "content"))
        self.meta = MetadataStore(os.path.join(self.root, "image.db"))
        self.snapshots = open_snapshotter(os.path.join(self.root, "snapshots"), snapshotter)
        self.unpacker = Unpacker(self.content, self.snapshots, os.path.join(self.root, "locks"))

    def close(self) -> None:
        """Close the database connections."""
        self.meta.close()

    def repair(self) -> None:
        """Start-up crash repair, before other use of the root: half-written blobs, orphan
        snapshot directories and temporary extractions of dead processes are removed."""
        self.content.cleanup()
        self.snapshots.cleanup()
        self.unpacker.drop_stale_extracts()

    # -- adding images ---------------------------------------------------------------------------

    def add_image(self, config_bytes: bytes, layers: Sequence[Layer | Descriptor] | None = None, *,
                  manifest_bytes: bytes | None = None, manifest_media_type: str = mt.OCI_MANIFEST,
                  tags: Iterable[str] = (), repo_digests: Iterable[str] = (), parent: str | None = None,
                  labels: dict[str, str] | None = None, measure_layers: bool = True) -> str:
        """Record an image whose layer blobs are in the content store; its ID (config digest).

        InvalidImage when the config, manifest and layers disagree or a blob is missing;
        reference.InvalidReference for a bad tag or repo digest. Without measure_layers the
        layers' diff IDs are taken from the config and checked when a layer is first unpacked
        (as containerd does: pull then costs no decompression), and their uncompressed sizes
        stay unknown (the blob sizes stand in)."""
        config = parse_config(config_bytes)
        config_id = digests.of_bytes(config_bytes)
        if manifest_bytes is not None:
            manifest = parse_manifest(manifest_bytes)
            manifest_media_type = manifest.media_type
            if manifest.config.digest != config_id:
                raise InvalidImage(f"manifest names config {manifest.config.digest}, not {config_id}")
            if layers is None:
                layers = manifest.layers
        specs = [layer if isinstance(layer, Layer) else Layer(layer) for layer in layers or ()]
        if manifest_bytes is not None and [s.descriptor.digest for s in specs] != [d.digest for d in manifest.layers]:
            raise InvalidImage("the layers given are not the manifest's layers")
        if len(specs) != len(config.diff_ids):
            raise InvalidImage(f"image config lists {len(config.diff_ids)} layers, {len(specs)} given")
        tag_names = [str(normalize_tag(t)) for t in tags]
        digest_names = [str(normalize_repo_digest(d)) for d in repo_digests]
        if parent is not None and self.meta.get_image(parent) is None:
            raise NoSuchImage(parent)
        sizes: list[int | None] = []
        for i, (spec, expected) in enumerate(zip(specs, config.diff_ids, strict=True)):
            if not measure_layers and spec.diff_id in (None, expected):
                sizes.append(spec.size)
                continue
            diff_id, size = self._measure(spec)
            if diff_id != expected:
                raise InvalidImage(f"invalid diffID for layer {i}: expected {expected!r}, got {diff_id!r}")
            sizes.append(size)
        self.content.put(config_bytes)
        if manifest_bytes is None:
            manifest_bytes = build_manifest(config_bytes, [s.descriptor for s in specs], manifest_media_type)
        manifest_digest = self.content.put(manifest_bytes)
        children = [config_id, *dict.fromkeys(s.descriptor.digest for s in specs)]
        with self.content.reference_lock():
            missing = [c for c in children if not self.content.exists(c)]
            if missing:
                raise InvalidImage(f"blob {missing[0]} is not in the content store")
            with self.meta.transaction():
                existing = self.meta.get_image(config_id)
                merged = {**(existing.labels if existing else {}), **(labels or {}),
                          LABEL_LAYER_SIZES: json.dumps(sizes)}
                merged.pop(OLD_LABEL_LAYER_SIZES, None)
                if parent is not None:
                    merged[LABEL_PARENT] = parent
                self.meta.set_refs(manifest_digest, children)
                self.meta.put_image(config_id, Target(manifest_media_type, manifest_digest, len(manifest_bytes)),
                                    config.created or None, merged)
                for name in tag_names:
                    self.meta.set_tag(name, config_id)
                for name in digest_names:
                    self.meta.add_repo_digest(name, config_id)
        return config_id

    def _measure(self, layer: Layer) -> tuple[str, int]:
        """(diff ID, Docker's size) of a layer blob: as given, or read from the blob."""
        if layer.diff_id is not None and layer.size is not None:
            return layer.diff_id, layer.size
        desc = layer.descriptor
        known = None
        with contextlib.suppress(ValueError):
            if mt.layer_compression(desc.media_type) == "" and desc.digest.startswith("sha256:"):
                known = desc.digest
        try:
            with self.content.open(desc.digest) as blob:
                return measure_layer(blob, known)
        except LookupError:
            raise InvalidImage(f"blob {desc.digest} is not in the content store") from None
        except (OSError, EOFError, ValueError) as err:
            raise InvalidImage(f"layer {desc.digest} cannot be read: {err}") from None

    def write_layer(self, src: str, *, mode: str = "compare", parent: str | None = None,
                    source_date_epoch: int | None = None, compression: str = "gzip") -> Layer:
        """Write the layer of directory src (see layer_diff.write_layer) into the content store
        as a gzip blob (or uncompressed with compression="none": its digest is then its diff
        ID); the Layer to pass to add_image."""
        writer = self.content.writer(f"layer-{uuid.uuid4().hex}")
        try:
            result = write_layer(src, _Sink(writer), mode=mode, parent=parent,
                                 source_date_epoch=source_date_epoch, compression=compression)
            blob = writer.commit()
        except BaseException:
            writer.abort()
            raise
        media_type = mt.OCI_LAYER_GZIP if compression == "gzip" else mt.OCI_LAYER
        return Layer(Descriptor(media_type, blob, result.size), result.diff_id, result.layer_size)

    # -- looking images up -----------------------------------------------------------------------

    def resolve(self, ref_or_id: str) -> str:
        """The ID of the image that ref_or_id names, looked up as Docker does: an ID or digest,
        then a tag or repo digest, then an ID prefix. NoSuchImage, or InvalidReference."""
        ref = reference.parse_any(ref_or_id)
        if not ref.path:
            if self.meta.get_image(ref.digest or "") is not None:
                return ref.digest  # type: ignore[return-value]
            raise NoSuchImage(ref)
        found = self.meta.resolve_tag(str(stored_name(ref)))
        if found is None:
            try:
                found = self.meta.images_by_prefix(ref_or_id)
            except AmbiguousPrefix:
                found = None
        if found is None:
            raise NoSuchImage(ref)
        return found

    def record(self, image_id: str) -> ImageRecord:
        """The metadata record of an image; NoSuchImage if it is gone."""
        rec = self.meta.get_image(image_id)
        if rec is None:
            raise NoSuchImage(image_id)
        return rec

    def config(self, image_id: str) -> dict[str, Any]:
        """The image config document."""
        return json.loads(self.content.read(image_id))

    def layers(self, image_id: str, measure_pulled: bool = False) -> list[Layer]:
        """The image's layers, bottom first, with diff IDs and Docker's sizes. A layer pulled
        without measuring (pull does not decompress) and not unpacked has its blob's size, unless
        measure_pulled (what size reports ask: dockerd knows them once pulled), which measures its
        blob once and saves the size."""
        rec = self.record(image_id)
        manifest = parse_manifest(self.content.read(rec.target.digest), rec.target.media_type)
        diff_ids = self.config(image_id).get("rootfs", {}).get("diff_ids") or []
        sizes = json.loads(rec.labels.get(LABEL_LAYER_SIZES, "null"))
        if sizes is None or None in sizes:
            sizes = self._complete_sizes(rec, sizes, manifest.layers, chain_ids(diff_ids), measure_pulled)
        return [Layer(d, i, d.size if s is None else s) for d, i, s in zip(manifest.layers, diff_ids, sizes, strict=True)]

    def _complete_sizes(self, rec: ImageRecord, sizes: list[int | None] | None, blobs: list[Descriptor],
                        chains: list[str], measure_pulled: bool) -> list[int | None]:
        """Fill in the sizes still unknown: from unpacked layers' snapshots, else measured from the
        blob where an older version left none (images recorded before sizes were kept: their
        label held tar lengths, null for layers pulled unmeasured; snapshots it unpacked have no
        size) or measure_pulled, saved. Other layers pulled unmeasured and not unpacked stay unknown."""
        old = None
        if sizes is None:
            old = json.loads(rec.labels.get(OLD_LABEL_LAYER_SIZES, "null")) or [None] * len(blobs)
            sizes = [None] * len(blobs)
        out: list[int | None] = []
        for i, (size, blob, chain) in enumerate(zip(sizes, blobs, chains, strict=True)):
            if size is None:
                size = self.unpacker.unpacked_size(chain)
            if size is None and (measure_pulled or (old is not None and old[i] is not None)
                                 or self.unpacker.is_committed(chain)):
                with contextlib.suppress(InvalidImage):
                    size = self._measure(Layer(blob))[1]
            out.append(size)
        if old is not None or out != sizes:
            self.meta.set_image_labels(rec.id, {LABEL_LAYER_SIZES: json.dumps(out), OLD_LABEL_LAYER_SIZES: None})
        return out

    def chain_ids(self, image_id: str) -> list[str]:
        """Chain IDs of the image's layers, bottom first."""
        return chain_ids(self.config(image_id).get("rootfs", {}).get("diff_ids") or [])

    def size(self, image_id: str) -> int:
        """Docker's image Size: the sum of the layers' uncompressed sizes (pulled ones measured)."""
        return sum(layer.size or 0 for layer in self.layers(image_id, measure_pulled=True))

    def parent(self, image_id: str) -> str | None:
        """The image this one was committed from, if it is still in the store."""
        parent = self.record(image_id).labels.get(LABEL_PARENT)
        return parent if parent and self.meta.get_image(parent) is not None else None

    def children(self, image_id: str) -> list[str]:
        """Images committed from this one."""
        return [r.id for r in self.meta.list_images() if r.labels.get(LABEL_PARENT) == image_id]

    def references(self, image_id: str) -> list[reference.Reference]:
        """The image's tags and repo digests, sorted as Docker's reference store lists them."""
        names = sorted(self.meta.tags_of(image_id) + self.meta.repo_digests_of(image_id))
        return [reference.parse_normalized(name) for name in names]

    def graph_driver(self, image_id: str) -> dict[str, Any]:
        """The inspect "GraphDriver": the snapshotter, and for unpacked overlay images the dirs."""
        chains = self.chain_ids(image_id)
        data = None
        if self.snapshots.driver == "overlay" and chains and all(map(self.unpacker.is_committed, chains)):
            dirs = [self.snapshots.layer_dir(c) for c in reversed(chains)]
            data = {"UpperDir": dirs[0]}
            if len(dirs) > 1:
                data["LowerDir"] = ":".join(dirs[1:])
        return {"Name": self.snapshots.driver, "Data": data}

    # -- names -----------------------------------------------------------------------------------

    def tag(self, source: str, target: str) -> str:
        """docker tag: point target (normalised, "latest" by default) at the image source names;
        the image ID."""
        image_id = self.resolve(source)
        self.meta.set_tag(str(normalize_tag(target)), image_id)
        return image_id

    def untag(self, name: str) -> str:
        """Remove a tag or repo digest; the image it named. NoSuchImage if there is none."""
        ref = stored_name(reference.parse_normalized(name))
        image_id = self.meta.remove_tag(str(ref))
        if image_id is None:
            raise NoSuchImage(ref)
        return image_id

    # -- layers and root filesystems -------------------------------------------------------------

    def _layer_refs(self, image_id: str) -> list[LayerRef]:
        return [LayerRef(layer.descriptor.digest, layer.diff_id or "") for layer in self.layers(image_id)]

    def unpack(self, image_id: str) -> str | None:
        """Unpack the image's layers into snapshots; the top chain ID (None for no layers)."""
        return self.unpacker.unpack(self._layer_refs(image_id))

    def prepare_rootfs(self, container_key: str, image_id: str | None) -> list[Mount]:
        """A writable snapshot for a container on the image (None: scratch); its mounts."""
        return self.unpacker.prepare_rootfs(container_key, self._layer_refs(image_id) if image_id else [])

    def rootfs_size(self, container_key: str) -> int:
        """Docker's SizeRw of a container's writable snapshot: its layer's size as layer_size.py
        counts it (vfs: the full copy compared with its parent, as a diff written nowhere).
        snapshot NotFound if there is none."""
        layer = self.snapshots.layer_dir(container_key)
        if self.snapshots.diff_mode() != "compare":
            return dir_size(layer)
        with open(os.devnull, "wb") as nowhere:
            return write_layer(layer, nowhere, mode="compare", parent=self.snapshots.parent_dir(container_key)).layer_size

    def remove_rootfs(self, container_key: str) -> None:
        """Delete a container's snapshot (unmounted by the caller); no error if it is gone."""
        self.snapshots.remove(container_key)

    def commit_container(self, container_key: str, config_changes: dict[str, Any] | None = None,
                         **options: Any) -> str:
        """docker commit: see commit.commit_container for the options."""
        return commit.commit_container(self, container_key, config_changes, **options)

    def _chains_in_use(self) -> set[str]:
        return {c for rec in self.meta.list_images() for c in self.chain_ids(rec.id)}

    def release_chains(self, chains: list[str]) -> list[str]:
        """Remove the snapshots of chains (bottom first) that no image uses any more; the chain
        IDs gone (Docker reports them as deleted layers), top first."""
        return self.unpacker.remove_chains(reversed(chains), self._chains_in_use)

    def gc(self, grace: float = DEFAULT_GRACE) -> GCReport:
        """Remove snapshots and blobs no image (nor lease, nor container snapshot) uses."""
        self.unpacker.collect(self._chains_in_use)
        return collect(self.content, self.meta, grace=grace)

    # -- Docker's image operations ---------------------------------------------------------------

    def remove(self, ref_or_id: str, force: bool = False, prune_children: bool = True,
               in_use: InUse | None = None) -> list[dict[str, str]]:
        """docker rmi (DELETE /images/{name}): Docker's response items and conflicts."""
        return removal.delete(self, ref_or_id, force, prune_children, in_use)

    def prune(self, dangling_only: bool = True, filters: dict[str, Any] | None = None,
              in_use: InUse | None = None, grace: float = DEFAULT_GRACE) -> dict[str, Any]:
        """docker image prune (POST /images/prune), then garbage collection."""
        return removal.prune(self, dangling_only, filters, in_use, grace)

    def inspect(self, ref: str) -> dict[str, Any]:
        """GET /images/{name}/json."""
        return views.inspect(self, ref)

    def history(self, ref: str) -> list[dict[str, Any]]:
        """GET /images/{name}/history."""
        return views.history(self, ref)

    def list(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """GET /images/json."""
        return views.list_images(self, all, filters)
