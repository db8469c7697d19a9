"""Snapshotters: where unpacked layers live and how container root filesystems are assembled
(containerd's overlayfs and native snapshotters). See base.py for the model and on-disk layout."""

from __future__ import annotations

from dockyard.image.snapshot.base import (
    AlreadyExists,
    Info,
    NotFound,
    SnapshotError,
    Snapshotter,
    recorded_driver,
)
from dockyard.image.snapshot.mount import Mount, mount_all, unmount
from dockyard.image.snapshot.overlay import OverlaySnapshotter, overlay_supported
from dockyard.image.snapshot.vfs import VfsSnapshotter

DRIVERS: dict[str, type[Snapshotter]] = {"overlay": OverlaySnapshotter, "vfs": VfsSnapshotter}

__all__ = ["DRIVERS", "AlreadyExists", "Info", "Mount", "NotFound", "OverlaySnapshotter", "SnapshotError",
           "Snapshotter", "VfsSnapshotter", "mount_all", "open_snapshotter", "unmount"]


def open_snapshotter(root: str, prefer: str = "overlay") -> Snapshotter:
    """The snapshotter for root: the one that already owns it; else overlay when preferred and
    the kernel and root's filesystem support it (probed once, when root is new); else vfs."""
    if prefer not in DRIVERS:
        raise SnapshotError(f"unknown snapshotter {prefer!r} (known: {', '.join(DRIVERS)})")
    driver = recorded_driver(root)
    if driver is None:
        driver = "overlay" if prefer == "overlay" and overlay_supported(root) else "vfs"
    return DRIVERS[driver](root)
