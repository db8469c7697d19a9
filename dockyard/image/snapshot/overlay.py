"""The overlay snapshotter: each snapshot's fs/ is one layer; a container's root is an overlay
of its committed parents (lower dirs, nearest first) under its own fs/ (upper dir).

Mounts (as containerd's overlayfs snapshotter):
  active, no parent      bind of its fs/ (rw)
  active, with parents   overlay: lowerdir=<parent fs dirs>, upperdir=fs, workdir=work
  view, no parent        bind of its (empty) fs/ (ro)
  view, one parent       bind of the parent's fs/ (ro)
  view, more parents     overlay with lower dirs only (ro)
Option strings longer than a page (100+ layers) are mounted by Mount.mount() (see mount.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from dockyard.image.snapshot.base import Record, Snapshotter
from dockyard.image.snapshot.mount import Mount, unmount


class OverlaySnapshotter(Snapshotter):
    """Snapshots as overlayfs layers."""

    driver = "overlay"

    def diff_mode(self) -> str:
        return "overlay"

    def parent_dir(self, key: str) -> str | None:
        self.stat(key)
        return None

    def _populate(self, path: str, kind: str, parent: Record | None) -> None:
        if kind == "active":
            os.mkdir(os.path.join(path, "work"), 0o700)

    def _mounts(self, rec: Record) -> list[Mount]:
        lowers = [self._fs(i) for i in rec.parent_ids]
        own = self._fs(rec.id)
        if rec.kind == "active":
            if not lowers:
                return [Mount("bind", own, ["rbind", "rw"])]
            work = os.path.join(self._dir(rec.id), "work")
            return [Mount("overlay", "overlay", ["index=off", f"workdir={work}", f"upperdir={own}",
                                                 "lowerdir=" + ":".join(lowers)])]
        if len(lowers) <= 1:
            return [Mount("bind", lowers[0] if lowers else own, ["rbind", "ro"])]
        return [Mount("overlay", "overlay", ["ro", "index=off", "lowerdir=" + ":".join(lowers)])]


def overlay_supported(root: str) -> bool:
    """Whether an overlay with two lower dirs and an upper dir on root's filesystem mounts and
    takes a write (probed in a temporary directory in root/tmp, removed afterwards; cleanup()
    removes what a crash leaves)."""
    tmp = os.path.join(root, "tmp")
    os.makedirs(tmp, mode=0o700, exist_ok=True)
    probe = tempfile.mkdtemp(prefix="overlay-probe-", dir=tmp)
    try:
        dirs = {name: os.path.join(probe, name) for name in ("l1", "l2", "upper", "work", "merged")}
        for path in dirs.values():
            os.mkdir(path)
        data = f"index=off,lowerdir={dirs['l1']}:{dirs['l2']},upperdir={dirs['upper']},workdir={dirs['work']}"
        try:
            Mount("overlay", "overlay", data.split(",")).mount(dirs["merged"])
        except OSError:
            return False
        try:
            with open(os.path.join(dirs["merged"], "probe"), "w") as f:
                f.write("ok")
        except OSError:
            return False
        finally:
            unmount(dirs["merged"])
        return os.path.exists(os.path.join(dirs["upper"], "probe"))
    finally:
        shutil.rmtree(probe, ignore_errors=True)
