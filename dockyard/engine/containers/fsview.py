"""A stopped container's files as `docker cp` and export see them: its rootfs (mounted for the
occasion if it is not) with each volume and bind mount bound at its destination below it. The
destinations are walked inside the rootfs with the runtime's descriptor walk, so a symlink in the
container cannot place such a bind outside it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from dockyard.image.snapshot import mount_all, unmount
from dockyard.image.snapshot.mount import mounts_under
from dockyard.runtime import syscalls as s
from dockyard.runtime.paths import open_in_root


@contextlib.contextmanager
def bound(rootfs: str, layers: Callable[[], list[Any]], points: list[dict[str, Any]]) -> Iterator[str]:
    """rootfs with points' volumes and binds mounted below it (private, read-only where the
    mount is), all undone on exit; yields rootfs."""
    own_root = not mounts_under(rootfs)
    if own_root:
        mount_all(layers(), rootfs)
    done: list[str] = []
    try:
        for p in sorted(points, key=lambda p: p["Destination"].count("/")):
            if p["Type"] not in ("volume", "bind") or not os.path.exists(p["Source"]):
                continue
            fd = open_in_root(rootfs, p["Destination"], "dir" if os.path.isdir(p["Source"]) else "file")
            try:
                s.mount(p["Source"], f"/proc/self/fd/{fd}", None, s.MS_BIND | s.MS_REC)
                dest = os.readlink(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            done.append(dest)
            s.mount(None, dest, None, s.MS_PRIVATE | s.MS_REC)
            if not p["RW"]:
                s.mount(None, dest, None, s.MS_BIND | s.MS_REMOUNT | s.MS_RDONLY)
        yield rootfs
    finally:
        for dest in reversed(done):
            unmount(dest)
        if own_root:
            unmount(rootfs)
