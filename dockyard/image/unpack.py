"""Unpacking image layers into committed snapshots named by their chain IDs, and container root
filesystems on top of them.

Each layer is extracted into a temporary active snapshot (key ``extract-<chain hex>-<random>``)
prepared on its parent chain, its diff ID checked, then committed under the chain ID, so the
committed snapshot either is complete and verified or does not exist.

Locks (flock files under ``<root>/locks``), always taken in this order:
  * ``snapshots.lock``: shared by unpacks and rootfs preparation, exclusive while snapshots that
    no image uses are removed, so a parent cannot vanish under a layer being extracted;
  * ``<chain hex>.lock``: exclusive while one chain ID is being extracted, so concurrent
    unpacks of images that share layers extract each layer once. A temporary snapshot whose
    chain lock is free belongs to a process that died; it is removed by the next extraction of
    that chain, by ``drop_stale_extracts()`` and by ``collect()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from dockyard.image import digest as digests
from dockyard.image.content import ContentStore
from dockyard.image.layer_apply import apply_layer
from dockyard.image.manifest import chain_ids
from dockyard.image.snapshot import Mount, NotFound, SnapshotError, Snapshotter

EXTRACT_PREFIX = "extract-"
LABEL_DIFF_ID = "dockyard.image/diff-id"
# the layer's size as dockerd reports it (images pulled unmeasured show it once unpacked); stores
# before it recorded the tar's length as "dockyard.image/size", which is not read any more
LABEL_SIZE = "dockyard.image/layer-size"


class LayerMismatch(ValueError):
    """A layer blob whose uncompressed content does not have the diff ID the config names."""


@dataclass(frozen=True)
class LayerRef:
    """What unpacking needs of one layer: its blob and the diff ID the config gives it."""

    blob: str
    diff_id: str


class Unpacker:
    """Layers of images as committed snapshots of `snapshots`, blobs read from `content`."""

    def __init__(self, content: ContentStore, snapshots: Snapshotter, lock_dir: str) -> None:
        self.content = content
        self.snapshots = snapshots
        self.lock_dir = lock_dir
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)

    # -- locks ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int) -> Iterator[bool]:
        fd = os.open(os.path.join(self.lock_dir, name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def using_snapshots(self) -> contextlib.AbstractContextManager[bool]:
        """Shared hold on the snapshots: no unused-snapshot removal meanwhile."""
        return self._flock("snapshots.lock", fcntl.LOCK_SH)

    def removing_snapshots(self) -> contextlib.AbstractContextManager[bool]:
        """Exclusive hold on the snapshots: no unpack or rootfs preparation meanwhile."""
        return self._flock("snapshots.lock", fcntl.LOCK_EX)

    def _chain_lock(self, chain: str, wait: bool = True) -> contextlib.AbstractContextManager[bool]:
        mode = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        return self._flock(digests.split(chain)[1] + ".lock", mode)

    # -- unpacking -----------------------------------------------------------------------------

    def whiteouts(self) -> str:
        """How apply_layer must treat whiteouts for this snapshotter."""
        return "overlay" if self.snapshots.diff_mode() == "overlay" else "naive"

    def is_committed(self, key: str) -> bool:
        """Whether a committed snapshot with this key exists."""
        try:
            return self.snapshots.stat(key).kind == "committed"
        except NotFound:
            return False

    def unpacked_size(self, chain: str) -> int | None:
        """Docker's size of the layer committed as chain, if it is unpacked (since layer sizes)."""
        try:
            return int(self.snapshots.stat(chain).labels[LABEL_SIZE])
        except (NotFound, KeyError, ValueError):
            return None

    def unpack(self, layers: list[LayerRef]) -> str | None:
        """Make sure every layer is a committed snapshot; the top chain ID (None without layers)."""
        with self.using_snapshots():
            return self._unpack(layers)

    def _unpack(self, layers: list[LayerRef]) -> str | None:
        parent = None
        for layer, chain in zip(layers, chain_ids([layer.diff_id for layer in layers]), strict=True):
            if not self.is_committed(chain):
                with self._chain_lock(chain):
                    if not self.is_committed(chain):
                        self._drop_extracts_of(chain)
                        self._extract(layer, chain, parent)
            parent = chain
        return parent

    def _extract(self, layer: LayerRef, chain: str, parent: str | None) -> None:
        key = f"{EXTRACT_PREFIX}{digests.split(chain)[1]}-{uuid.uuid4().hex[:12]}"
        self.snapshots.prepare(key, parent)
        try:
            with self.content.open(layer.blob) as blob:
                result = apply_layer(blob, self.snapshots.layer_dir(key), whiteouts=self.whiteouts())
            if result.diff_id != layer.diff_id:
                raise LayerMismatch(f"failed to extract layer {layer.blob}: wrong diff id calculated on "
                                    f"extraction {result.diff_id!r}, expected {layer.diff_id!r}")
            self.snapshots.commit(chain, key, {LABEL_DIFF_ID: layer.diff_id, LABEL_SIZE: str(result.layer_size)})
        except BaseException:
            self.snapshots.remove(key)
            raise

    def _drop_extracts_of(self, chain: str) -> None:
        """Remove temporary snapshots of chain left by dead processes (caller holds its lock)."""
        prefix = f"{EXTRACT_PREFIX}{digests.split(chain)[1]}-"
        for info in list(self.snapshots.walk()):
            if info.key.startswith(prefix):
                self.snapshots.remove(info.key)

    def drop_stale_extracts(self) -> int:
        """Remove every temporary snapshot whose extraction is no longer running; how many."""
        removed = 0
        for info in list(self.snapshots.walk()):
            if not info.key.startswith(EXTRACT_PREFIX):
                continue
            chain = "sha256:" + info.key[len(EXTRACT_PREFIX):].partition("-")[0]
            try:
                digests.validate(chain)
            except digests.InvalidDigest:
                self.snapshots.remove(info.key)
                removed += 1
                continue
            with self._chain_lock(chain, wait=False) as locked:
                if locked:
                    self.snapshots.remove(info.key)
                    removed += 1
        return removed

    # -- container root filesystems ------------------------------------------------------------

    def prepare_rootfs(self, key: str, layers: list[LayerRef]) -> list[Mount]:
        """Unpack the layers and create the active snapshot key on top; its mounts."""
        if key.startswith((EXTRACT_PREFIX, "sha256:")):
            raise SnapshotError(f"invalid container snapshot key {key!r}")
        with self.using_snapshots():
            return self.snapshots.prepare(key, self._unpack(layers))

    # -- removal -------------------------------------------------------------------------------

    def remove_chains(self, chains: Iterable[str], keep: Callable[[], set[str]]) -> list[str]:
        """Remove the committed snapshots of chains (top first) that are not in keep and have
        no children (keep() is read under the lock); the chain IDs no longer present afterwards
        (removed, or never unpacked)."""
        gone = []
        with self.removing_snapshots():
            used = keep()
            for chain in chains:
                if chain in used:
                    continue
                try:
                    self.snapshots.remove(chain)
                except SnapshotError:
                    continue
                gone.append(chain)
        return gone

    def collect(self, keep: Callable[[], set[str]]) -> list[str]:
        """Remove committed snapshots not in keep and not under any other snapshot, and every
        temporary extraction; active container snapshots stay. The keys removed."""
        removed = []
        with self.removing_snapshots():  # no extraction runs: every temporary snapshot is stale
            used = keep()
            for info in reversed(list(self.snapshots.walk())):  # children before their parents
                stale = info.key.startswith(EXTRACT_PREFIX)
                if stale or (info.kind == "committed" and info.key not in used):
                    try:
                        self.snapshots.remove(info.key)  # refused while it has children
                    except SnapshotError:
                        continue
                    removed.append(info.key)
        return removed
