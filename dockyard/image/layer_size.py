"""A layer's size as dockerd reports it, counted from its tar entries.

dockerd's overlay2 driver measures a layer by walking its diff directory (moby's
pkg/directory.Size): the lstat size of every non-directory (regular files, and symlinks: the
length of their target), each inode once, so hard links count once and whiteouts (0/0 char
devices), devices, fifos and directories count nothing. `LayerSize` gets the same number from
the entries of the layer tar in order, without touching a filesystem: an entry replaces what the
layer put at its path before, a whiteout removes it (with what was below it)."""

from __future__ import annotations

import functools
import os
import posixpath
import stat
from collections.abc import Iterable
from typing import BinaryIO

from dockyard.image.compression import CHUNK_SIZE, DecompressedChunks
from dockyard.image.tarstream import DIR, LINK, REG, SYMLINK, Entry, TarReader

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"


def dir_size(path: str) -> int:
    """dockerd's size of a directory tree (pkg/directory.Size, a layer's or a volume's): the lstat
    sizes of what is not a directory, each inode once, symlinks never followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:  # a symlink to a directory is listed in dirs, not walked
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue  # gone meanwhile
            if not stat.S_ISDIR(st.st_mode) and st.st_size and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _clean(name: str) -> str:
    """The entry name relative to the layer root ("" for the root); ".." stops at the root."""
    if name and name[0] not in "/." and "/." not in name and "//" not in name:
        return name[:-1] if name[-1] == "/" else name  # nothing to clean
    return posixpath.normpath("/" + name).lstrip("/")


class LayerSize:
    """Docker's size of one layer, fed its tar entries in order (`add`); the bytes in `total`."""

    def __init__(self) -> None:
        self.total = 0
        self._inode: dict[str, int] = {}  # path -> inode (a counter) of what the layer has there
        self._inodes: dict[int, list[int]] = {}  # inode -> [size, links]
        self._dirs: set[str] = {""}  # directories the layer has (their subtrees go with them)
        self._last = 0  # the last inode number given

    def add(self, e: Entry) -> None:
        """Count one tar entry of the layer."""
        path = _clean(e.name)
        parent, _, base = path.rpartition("/")
        if not path or path.startswith(WHITEOUT_META_PREFIX):
            return  # the root, or AUFS metadata (skipped as by dockerd)
        if base.startswith(WHITEOUT_PREFIX):
            if not base.startswith(WHITEOUT_META_PREFIX):  # opaque markers remove nothing of this layer
                name = base[len(WHITEOUT_PREFIX):]
                self._remove(f"{parent}/{name}" if parent else name)
            return
        if parent not in self._dirs:  # parents the tar does not list are created all the same
            self._add_dirs(parent)
        if e.type == DIR:
            self._unlink(path)
            self._dirs.add(path)
            return
        self._remove(path)
        if e.type == LINK:
            inode = self._inode.get(_clean(e.linkname))
            if inode is not None:  # otherwise an empty file (or one the layer does not have)
                self._inode[path] = inode
                self._inodes[inode][1] += 1
            return
        size = e.size if e.type == REG else len(os.fsencode(e.linkname)) if e.type == SYMLINK else 0
        if size:
            self._last += 1
            inode = self._last
            self._inode[path] = inode
            self._inodes[inode] = [size, 1]
            self.total += size

    def _add_dirs(self, path: str) -> None:
        while path and path not in self._dirs:
            self._unlink(path)  # a file of the layer there is replaced by the directory
            self._dirs.add(path)
            path = path.rpartition("/")[0]

    def _unlink(self, path: str) -> None:
        inode = self._inode.pop(path, None)
        if inode is not None:
            node = self._inodes[inode]
            node[1] -= 1
            if not node[1]:
                self.total -= node[0]
                del self._inodes[inode]

    def _remove(self, path: str) -> None:
        self._unlink(path)
        if path in self._dirs:
            prefix = path + "/"
            for below in [p for p in self._inode if p.startswith(prefix)]:
                self._unlink(below)
            self._dirs = {d for d in self._dirs if d != path and not d.startswith(prefix)}


def tar_size(entries: Iterable[Entry]) -> int:
    """Docker's size of the layer whose tar has these entries."""
    size = LayerSize()
    for entry in entries:
        size.add(entry)
    return size.total


def measure_layer(blob: BinaryIO, diff_id: str | None = None) -> tuple[str, int]:
    """(diff ID, Docker's size) of a layer blob, compressed or not. A caller that knows the diff
    ID (a plain tar stored under its sha256) passes it: the tar is then only parsed, not hashed.
    Raises ValueError (TarFormatError, DecompressionError) or OSError for a broken blob."""
    if diff_id is not None:
        return diff_id, tar_size(TarReader(iter(functools.partial(blob.read, CHUNK_SIZE), b"")))
    with DecompressedChunks(blob) as chunks:
        size = tar_size(TarReader(chunks))
        chunks.drain()
    return chunks.digest, size
