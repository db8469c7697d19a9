"""Produce a layer tar from a directory: an overlay upper dir, or the changes between two trees.

Output is deterministic: entries in depth-first order with names sorted within each directory
(a directory before its contents), numeric owners with empty user/group names, mtimes in whole
seconds (clamped to source_date_epoch when given), a PAX header only when a value does not fit
ustar (long names, xattrs, large numbers), whiteouts with fixed metadata, no record padding.
Files are read through directory fds with O_NOFOLLOW, so a symlink in the tree is archived as a
symlink and never followed.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.image.compression import HashingWriter, open_compressed
from dockyard.image.layer_apply import OVERLAY_OPAQUE_XATTR
from dockyard.image.layer_size import WHITEOUT_OPAQUE, WHITEOUT_PREFIX, LayerSize
from dockyard.image.tarstream import BLK, CHR, DIR, FIFO, LINK, REG, SYMLINK, Entry, TarWriter

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_SKIPPED_XATTR_PREFIX = "trusted.overlay."
_NS = 1_000_000_000


@dataclass(frozen=True)
class DiffResult:
    """diff_id: sha256 of the tar; digest and size: of the bytes written (compressed or not);
    layer_size: the layer's size as dockerd reports it (see layer_size.py)."""

    diff_id: str
    digest: str
    size: int
    layer_size: int


def _whiteout(path: str) -> Entry:
    return Entry(path, REG, mode=0)


def _read_xattrs(dir_fd: int, name: str) -> dict[str, bytes]:
    path = f"/proc/self/fd/{dir_fd}/{name}"
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        raise
    return {k: os.getxattr(path, k, follow_symlinks=False) for k in sorted(keys)}


class _Differ:
    """Walks the new tree (and, comparing, the old one in step) and writes the entries."""

    def __init__(self, writer: TarWriter, overlay: bool, source_date_epoch: int | None) -> None:
        self.writer = writer
        self.layer_size = LayerSize()
        self.overlay = overlay
        self.epoch = source_date_epoch
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) of emitted files -> their name
        self.pending: list[Entry] = []  # unchanged ancestors, written before a changed descendant

    def emit(self, entry: Entry, fd: int | None = None) -> None:
        if self.pending:
            for ancestor in self.pending:
                self.writer.add(ancestor)
                self.layer_size.add(ancestor)
            self.pending.clear()
        self.writer.add(entry, fd)
        self.layer_size.add(entry)

    def walk(self, new_fd: int, old_fd: int | None, prefix: str) -> None:
        """Emit the entries of directory `new_fd` (relative path `prefix`) and its subtree."""
        new_names = os.listdir(new_fd)
        old_names = set(os.listdir(old_fd)) if old_fd is not None else set()
        present = set(new_names)
        for name in sorted(present | old_names):
            if name not in present:
                self.emit(_whiteout(prefix + WHITEOUT_PREFIX + name))
                continue
            st = os.stat(name, dir_fd=new_fd, follow_symlinks=False)
            old_st = os.stat(name, dir_fd=old_fd, follow_symlinks=False) if name in old_names else None
            self.entry(new_fd, name, prefix + name, st, old_fd, old_st)

    def _changed(self, new_fd: int, old_fd: int | None, name: str, st: os.stat_result,
                 old: os.stat_result | None, xattrs: dict[str, bytes]) -> bool:
        if old is None or self.overlay:
            return True
        if (st.st_mode, st.st_uid, st.st_gid) != (old.st_mode, old.st_uid, old.st_gid):
            return True
        if not stat.S_ISDIR(st.st_mode) and (
            (st.st_size, st.st_mtime_ns, st.st_rdev) != (old.st_size, old.st_mtime_ns, old.st_rdev)
        ):
            return True
        if stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=new_fd) != os.readlink(name, dir_fd=old_fd):
            return True
        return _filtered(_read_xattrs(old_fd, name)) != xattrs

    def entry(self, dir_fd: int, name: str, rel: str, st: os.stat_result,
              old_fd: int | None, old_st: os.stat_result | None) -> None:
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return  # sockets cannot be archived (Docker skips them too)
        if self.overlay and stat.S_ISCHR(mode) and st.st_rdev == 0:
            self.emit(_whiteout(rel[: len(rel) - len(name)] + WHITEOUT_PREFIX + name))
            return
        raw_xattrs = _read_xattrs(dir_fd, name)
        xattrs = _filtered(raw_xattrs)
        changed = self._changed(dir_fd, old_fd, name, st, old_st, xattrs)
        seconds = st.st_mtime_ns // _NS
        if self.epoch is not None and seconds > self.epoch:
            seconds = self.epoch
        e = Entry(rel, REG, mode=mode & 0o7777, uid=st.st_uid, gid=st.st_gid, mtime=seconds * _NS,
                  xattrs=xattrs or None)
        if stat.S_ISDIR(mode):
            e.name, e.type = rel + "/", DIR
            self._directory(e, dir_fd, name, rel, old_fd, old_st, changed,
                            self.overlay and raw_xattrs.get(OVERLAY_OPAQUE_XATTR) == b"y")
            return
        if not changed:
            return
        if stat.S_ISREG(mode):
            self._file(e, dir_fd, name, st)
            return
        if stat.S_ISLNK(mode):
            e.type, e.linkname = SYMLINK, os.readlink(name, dir_fd=dir_fd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            e.type = CHR if stat.S_ISCHR(mode) else BLK
            e.devmajor, e.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            e.type = FIFO
        self.emit(e)

    def _directory(self, e: Entry, dir_fd: int, name: str, rel: str, old_fd: int | None,
                   old_st: os.stat_result | None, changed: bool, opaque: bool) -> None:
        if changed:
            self.emit(e)
        else:
            self.pending.append(e)
        if opaque:
            self.emit(_whiteout(f"{rel}/{WHITEOUT_OPAQUE}"))
        sub = os.open(name, _O_DIR, dir_fd=dir_fd)
        old_sub = None
        try:
            if old_st is not None and stat.S_ISDIR(old_st.st_mode):
                old_sub = os.open(name, _O_DIR, dir_fd=old_fd)
            self.walk(sub, old_sub, rel + "/")
        finally:
            os.close(sub)
            if old_sub is not None:
                os.close(old_sub)
        if self.pending and self.pending[-1] is e:
            self.pending.pop()

    def _file(self, e: Entry, dir_fd: int, name: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                e.type, e.linkname = LINK, first
                self.emit(e)
                return
            self.links[key] = e.name
        fd = os.open(name, _O_FILE, dir_fd=dir_fd)
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or fst.st_ino != st.st_ino:
                raise RuntimeError(f"{e.name!r} changed while it was being archived")
            e.size = fst.st_size
            self.emit(e, fd)
        finally:
            os.close(fd)


def _filtered(xattrs: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in xattrs.items() if not k.startswith(_SKIPPED_XATTR_PREFIX)}


def write_layer(src: str, out: BinaryIO, *, mode: str = "overlay", parent: str | None = None,
                source_date_epoch: int | None = None, compression: str = "none") -> DiffResult:
    """Write the layer tar of directory `src` to `out`, compressed with `compression`.

    mode="overlay": src is an overlay upper dir (0/0 char devices become `.wh.NAME`, opaque
    directories get `.wh..wh..opq`). mode="compare": emit what differs in src from `parent`
    (an empty tree when None) — added and changed entries, their directories, and whiteouts for
    deletions. Equal trees give byte-identical output."""
    if mode not in ("overlay", "compare"):
        raise ValueError(f"mode must be 'overlay' or 'compare', not {mode!r}")
    if parent is not None and mode != "compare":
        raise ValueError("parent is only used with mode='compare'")
    sink = HashingWriter(out)
    compressor = None if compression == "none" else open_compressed(sink, compression)
    tar_sink = sink if compressor is None else HashingWriter(compressor)
    writer = TarWriter(tar_sink.write)
    differ = _Differ(writer, mode == "overlay", source_date_epoch)
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    parent_fd = None
    try:
        if parent is not None:
            parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if differ.overlay and _read_xattrs(src_fd, ".").get(OVERLAY_OPAQUE_XATTR) == b"y":
            differ.emit(_whiteout(WHITEOUT_OPAQUE))
        differ.walk(src_fd, parent_fd, "")
        writer.close()
        if compressor is not None:
            compressor.close()
    finally:
        os.close(src_fd)
        if parent_fd is not None:
            os.close(parent_fd)
    return DiffResult(tar_sink.digest(), sink.digest(), sink.size, differ.layer_size.total)


def write_tree(path: str, out: BinaryIO, name: str) -> None:
    """Write an uncompressed tar of the file or directory tree at `path` (a symlink is archived as
    a symlink), its entries named `name` and `name/...` (docker cp's archives)."""
    writer = TarWriter(out.write)
    parent, base = os.path.split(os.path.abspath(path))
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.stat(base or ".", dir_fd=parent_fd, follow_symlinks=False)
        _Differ(writer, False, None).entry(parent_fd, base or ".", name, st, None, None)
        writer.close()
    finally:
        os.close(parent_fd)
