"""The vfs snapshotter (containerd's "native"): each active snapshot is a full copy of its
parent's tree, so it works on any filesystem; the fallback when overlayfs is unavailable.

Mounts: active → bind of its fs/ (rw); view → read-only bind of the parent's fs/ (committed,
hence immutable: no copy needed) or of its own empty fs/ without a parent."""

from __future__ import annotations

import os
import shutil
import stat

from dockyard.image.snapshot.base import Record, Snapshotter
from dockyard.image.snapshot.mount import Mount


class VfsSnapshotter(Snapshotter):
    """Snapshots as full directory copies."""

    driver = "vfs"

    def diff_mode(self) -> str:
        return "compare"

    def parent_dir(self, key: str) -> str | None:
        with self._db() as db:
            rec = self._get(db, key)
        return self._fs(rec.parent_ids[0]) if rec.parent_ids else None

    def _populate(self, path: str, kind: str, parent: Record | None) -> None:
        if kind == "active" and parent is not None:
            copy_tree(self._fs(parent.id), os.path.join(path, "fs"))

    def _mounts(self, rec: Record) -> list[Mount]:
        if rec.kind == "active":
            return [Mount("bind", self._fs(rec.id), ["rbind", "rw"])]
        return [Mount("bind", self._fs(rec.parent_ids[0] if rec.parent_ids else rec.id), ["rbind", "ro"])]


def copy_tree(src: str, dst: str) -> None:
    """Copy the contents of directory src into the existing directory dst, and src's own
    attributes onto dst: modes, owners, xattrs, device nodes, fifos, sockets, symlinks as they
    are, hard links among files of the tree, timestamps."""
    _copy_children(src, dst, {})
    _copy_attributes(src, dst, os.lstat(src))


def _copy_children(src: str, dst: str, links: dict[tuple[int, int], str]) -> None:
    with os.scandir(src) as entries:
        for entry in entries:
            source, target = entry.path, os.path.join(dst, entry.name)
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(target, 0o700)
                _copy_children(source, target, links)
            else:
                inode = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and inode in links:
                    os.link(links[inode], target)
                    continue
                links[inode] = target
                _copy_node(source, target, st)
            _copy_attributes(source, target, st)


def _copy_node(source: str, target: str, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        shutil.copyfile(source, target, follow_symlinks=False)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), target)
    else:  # character / block devices, fifos, sockets
        os.mknod(target, st.st_mode, st.st_rdev)


def _copy_attributes(source: str, target: str, st: os.stat_result) -> None:
    """Owner first (chown clears set-id bits and file capabilities), then mode, xattrs, times."""
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))
    for name in os.listxattr(source, follow_symlinks=False):
        os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=False), follow_symlinks=False)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
