"""`docker export`: a container's merged root filesystem as one tar.

The tree is walked through directory fds without following symlinks, entries sorted within
each directory (a directory before its contents), numeric owners, whole-second mtimes, xattrs
kept (overlay's trusted.overlay.* dropped). A merged overlay mount shows no whiteouts, so
none are written; nothing outside mounted_root is read."""

from __future__ import annotations

from typing import BinaryIO

from dockyard.image.layer_diff import write_layer


def export_rootfs(mounted_root: str, out: BinaryIO) -> int:
    """Write the filesystem under mounted_root to out as a tar; the number of bytes written."""
    return write_layer(mounted_root, out, mode="compare").size
