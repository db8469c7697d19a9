"""Apply a layer tar (possibly compressed) to a directory without ever touching anything outside it.

Paths are cleaned like Docker does (Go's filepath.Clean joined under the root): a leading "/" is
stripped, ".." in an absolute name stops at the root, ".." climbing out of a relative name is
refused. Every file operation goes through a directory fd opened component by component with
O_NOFOLLOW, and the last component of an entry is never followed. A symlink met among the
*parent* components is resolved inside `dest`, as if `dest` were "/" (Docker applies layers
chrooted into the layer directory, so this is what `a -> /etc` then `a/passwd` does there:
it writes `dest/etc/passwd`). Metadata is set through fds or with AT_SYMLINK_NOFOLLOW.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import namedtuple

from dockyard.image import tarstream
from dockyard.image.compression import DecompressedChunks, DecompressionError
from dockyard.image.layer_size import WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, LayerSize
from dockyard.image.tarstream import BLK, CHR, DIR, LINK, REG, SYMLINK, Entry, TarFormatError, TarReader

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import BinaryIO

OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIX = "trusted.overlay."

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_SYMLINKS = 40
_FD_CACHE = 256
_NODE_KINDS = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK}


class LayerApplyError(ValueError):
    """A layer that cannot be applied safely or is malformed; the message names the entry."""


ApplyResult = namedtuple("ApplyResult", "diff_id size layer_size")
ApplyResult.__doc__ = ("diff_id: sha256 of the uncompressed tar stream; size: its length in bytes; "
                       "layer_size: the layer's size as dockerd reports it (see layer_size.py).")


def _umask() -> int:
    """The process umask, read without changing it (0o777, "unknown", if /proc does not say)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line[6:], 8)
    except (OSError, ValueError):
        pass
    return 0o777


def clean_path(name: str, *, clamp_absolute: bool = True) -> str:
    """`name` relative to the layer root, cleaned; "" is the root itself.

    Raises LayerApplyError if ".." would climb above the root (for an absolute name only when
    clamp_absolute is false, as for hardlink targets, which Docker joins under the root)."""
    rest = name[2:] if name.startswith("./") else name
    if rest and rest[0] not in "/." and "/." not in rest and "//" not in rest:
        return rest[:-1] if rest[-1] == "/" else rest  # nothing to clean
    parts: list[str] = []
    for comp in name.split("/"):
        if comp == "" or comp == ".":
            continue
        if comp == "..":
            if parts:
                parts.pop()
            elif not (clamp_absolute and name.startswith("/")):
                raise LayerApplyError(f"{name!r} is outside of the layer root")
            continue
        parts.append(comp)
    return "/".join(parts)


class _DirFds:
    """Directory fds inside the root, opened component by component, never escaping the root."""

    def __init__(self, dest: str) -> None:
        self.root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._cache: dict[str, int] = {}
        self.setgid: set[int] = set()  # the open dir fds of setgid dirs: new files get their group
        self.mode_set(self.root, os.fstat(self.root).st_mode)
        self._stale: list[int] = []  # fds dropped from the cache, closed once the entry is done

    def get(self, path: str, create: bool = True) -> int:
        """The fd of directory `path` (missing directories created 0755 when `create`)."""
        if not path:
            return self.root
        fd = self._cache.get(path)
        if fd is not None:
            return fd
        parent, _, name = path.rpartition("/")
        try:
            fd = self._open(self.get(parent, create), name, create)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            fd = self._resolve(path, create)
        self.mode_set(fd, os.fstat(fd).st_mode)
        if len(self._cache) >= _FD_CACHE:
            self._stale.append(self._cache.pop(next(iter(self._cache))))
        self._cache[path] = fd
        return fd

    def mode_set(self, fd: int, mode: int) -> None:
        """Record that directory `fd` (the root, a cached or a stale one) now has `mode`."""
        if mode & stat.S_ISGID:
            self.setgid.add(fd)
        else:
            self.setgid.discard(fd)

    @staticmethod
    def _open(parent_fd: int, name: str, create: bool) -> int:
        try:
            return os.open(name, _O_DIR, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent_fd)
            fd = os.open(name, _O_DIR, dir_fd=parent_fd)
            os.fchmod(fd, 0o755)
            return fd

    def _resolve(self, path: str, create: bool) -> int:
        """Walk `path` following symlinks as if the root were "/" ('..' stops at the root)."""
        stack = [self.root]
        todo = path.split("/")[::-1]
        links = 0
        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                try:
                    stack.append(self._open(stack[-1], comp, create))
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                try:
                    target = os.readlink(comp, dir_fd=stack[-1])
                except OSError:
                    raise LayerApplyError(f"{path!r}: {comp!r} is not a directory") from None
                links += 1
                if links > _MAX_SYMLINKS:
                    raise LayerApplyError(f"{path!r}: too many levels of symbolic links")
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo.extend(target.split("/")[::-1])
            return stack.pop() if len(stack) > 1 else os.dup(self.root)
        finally:
            for fd in stack[1:]:
                os.close(fd)

    def invalidate(self) -> None:
        """Forget every cached fd (after a directory or symlink inside the root was removed)."""
        self._stale.extend(self._cache.values())
        self._cache.clear()

    def release(self) -> None:
        """Close fds dropped from the cache; call once no fd from `get` is in use."""
        while self._stale:
            fd = self._stale.pop()
            self.setgid.discard(fd)  # its number may be reused
            os.close(fd)

    def close(self) -> None:
        self.invalidate()
        self.release()
        os.close(self.root)


class _Applier:
    """Creates the entries of one layer under a root; one instance per apply."""

    def __init__(self, dest: str, naive: bool, same_owner: bool, replace_kind: bool = True) -> None:
        self.dirs = _DirFds(dest)
        self.naive = naive
        self.same_owner = same_owner
        self.replace_kind = replace_kind
        self.owner = (os.geteuid(), os.getegid())  # what a new file gets (outside setgid dirs)
        self.chmod_bits = ~0o777 | _umask()  # mode bits a new file cannot get from open()
        self.unpacked: set[str] = set()  # naive mode: paths this layer created (kept by opaque dirs)
        self.dir_times: dict[str, tuple[int, int]] = {}  # set last, once directories are complete
        fast = tarstream._tarfast  # the C accelerator, if built (read here so tests can swap it)
        self.write_file = fast.write_file if fast is not None else None

    def apply(self, e: Entry, reader: TarReader) -> None:
        """Create entry `e` (its data read from `reader`)."""
        path = clean_path(e.name)
        parent, _, base = path.rpartition("/")
        if (not path or WHITEOUT_PREFIX in path) and self._special(e, path, parent, base):
            return
        pfd = self.dirs.get(parent)
        if not self.replace_kind:
            self._check_kind(e, pfd, base)
        if self.naive:
            self._mark(path)
        typ = e.type
        if typ == DIR:
            self._dir(e, pfd, base, path)
            return
        self.dir_times.pop(path, None)
        if typ == REG:
            self._file(e, pfd, base, reader)
        elif typ == SYMLINK:
            self._symlink(e, pfd, base)
        elif typ == LINK:
            self._hardlink(e, pfd, base)
        else:
            self._node(e, pfd, base)

    def _special(self, e: Entry, path: str, parent: str, base: str) -> bool:
        """The root itself and names with ".wh." in them; False if `e` is an ordinary entry after all."""
        if not path:
            if e.type != DIR:
                raise LayerApplyError(f"entry {e.name!r} would replace the layer root")
            self._dir_meta(self.dirs.root, e)
            self.dir_times[""] = _times(e)
            return True
        if path.startswith(WHITEOUT_META_PREFIX) and path != WHITEOUT_OPAQUE:
            return True  # AUFS metadata (.wh..wh.plnk etc.), skipped like Docker does
        if any(c.startswith(WHITEOUT_PREFIX) for c in parent.split("/")):
            raise LayerApplyError(f"entry {e.name!r}: a whiteout name cannot be a directory")
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(e, parent, base)
            return True
        return False

    @staticmethod
    def _check_kind(e: Entry, pfd: int, base: str) -> None:
        """Refuse to replace a directory with a non-directory or the other way round."""
        try:
            is_dir = stat.S_ISDIR(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return
        if is_dir and e.type != DIR:
            raise LayerApplyError(f'cannot overwrite directory "{e.name}" with non-directory "{e.name}"')
        if not is_dir and e.type == DIR:
            raise LayerApplyError(f'cannot overwrite non-directory "{e.name}" with directory "{e.name}"')

    def _mark(self, path: str) -> None:
        unpacked = self.unpacked
        while path and path not in unpacked:
            unpacked.add(path)
            path = path.rpartition("/")[0]

    # --- removal -------------------------------------------------------------------------

    def _remove(self, pfd: int, name: str) -> None:
        """Remove `name` in directory `pfd` (recursively, never following symlinks); absent is fine."""
        try:
            mode = os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            import shutil  # rarely needed: not imported up front

            shutil.rmtree(name, dir_fd=pfd)
            self.dirs.invalidate()
        else:
            os.unlink(name, dir_fd=pfd)
            if stat.S_ISLNK(mode):
                self.dirs.invalidate()

    def _whiteout(self, e: Entry, parent: str, base: str) -> None:
        if base == WHITEOUT_OPAQUE:
            self._opaque(parent)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise LayerApplyError(f"invalid whiteout {e.name!r}")
        try:
            pfd = self.dirs.get(parent, create=not self.naive)
        except FileNotFoundError:
            return  # naive mode: nothing below to delete
        self._remove(pfd, name)
        self.dir_times.pop(f"{parent}/{name}" if parent else name, None)
        if not self.naive:
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
            if self.same_owner:
                os.chown(name, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False)

    def _opaque(self, path: str) -> None:
        fd = self.dirs.get(path)
        if not self.naive:
            os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            return
        self._prune(fd, path)

    def _prune(self, fd: int, prefix: str) -> None:
        """Naive opaque dir: remove what lower layers put under `prefix`, keep this layer's."""
        for name in os.listdir(fd):
            rel = f"{prefix}/{name}" if prefix else name
            if rel not in self.unpacked:
                self._remove(fd, name)
                continue
            try:
                sub = os.open(name, _O_DIR, dir_fd=fd)
            except OSError:
                continue  # not a directory
            try:
                self._prune(sub, rel)
            finally:
                os.close(sub)

    # --- creation ------------------------------------------------------------------------

    def _dir(self, e: Entry, pfd: int, base: str, path: str) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
                self._remove(pfd, base)
                os.mkdir(base, 0o700, dir_fd=pfd)
        self._dir_meta(self.dirs.get(path), e)
        self.dir_times[path] = _times(e)

    def _file(self, e: Entry, pfd: int, base: str, reader: TarReader) -> None:
        write_file = self.write_file
        if write_file is not None and e.xattrs is None and (span := reader.data_span()) is not None:
            # The same calls as below, made in C: open, write, chown/chmod when needed, times, close.
            uid, gid, mode = e.uid, e.gid, e.mode
            chown = self.same_owner and not (uid == self.owner[0] and gid == self.owner[1]
                                             and pfd not in self.dirs.setgid)
            atime, mtime = (e.mtime, e.mtime) if e.atime is None else _times(e)
            args = (pfd, base, _O_NEWFILE, mode & 0o777, *span, chown, uid, gid,
                    mode if mode & self.chmod_bits else -1, atime, mtime)
            try:
                done = write_file(*args)
            except FileExistsError:
                self._remove(pfd, base)
                done = write_file(*args)
            if done:
                reader.data_done()
                return
            # a value beyond the C types (nothing was done): Python's calls raise what they raise
        try:
            fd = os.open(base, _O_NEWFILE, e.mode & 0o777, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, base)
            fd = os.open(base, _O_NEWFILE, e.mode & 0o777, dir_fd=pfd)
        try:
            if e.size:
                reader.copy_data(fd)
            self._fd_meta(fd, e, pfd)
            os.utime(fd, ns=(e.mtime, e.mtime) if e.atime is None else _times(e))
        finally:
            os.close(fd)

    def _symlink(self, e: Entry, pfd: int, base: str) -> None:
        try:
            os.symlink(e.linkname, base, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, base)
            os.symlink(e.linkname, base, dir_fd=pfd)
        self._path_meta(pfd, base, e, chmod=False)

    def _hardlink(self, e: Entry, pfd: int, base: str) -> None:
        target = clean_path(e.linkname, clamp_absolute=False)
        if not target:
            raise LayerApplyError(f"invalid hardlink {e.name!r} -> {e.linkname!r}: target is the root")
        tparent, _, tbase = target.rpartition("/")
        try:
            tfd = self.dirs.get(tparent, create=False)
            try:
                os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileExistsError:
                self._remove(pfd, base)
                tfd = self.dirs.get(tparent, create=False)
                os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            raise LayerApplyError(
                f"invalid hardlink {e.name!r} -> {e.linkname!r}: not a linkable file of the layer ({exc.strerror})"
            ) from None

    def _node(self, e: Entry, pfd: int, base: str) -> None:
        kind = _NODE_KINDS.get(e.type, stat.S_IFIFO)
        dev = os.makedev(e.devmajor, e.devminor) if kind != stat.S_IFIFO else 0
        try:
            os.mknod(base, kind | 0o600, dev, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, base)
            os.mknod(base, kind | 0o600, dev, dir_fd=pfd)
        self._path_meta(pfd, base, e, chmod=True)

    # --- metadata ------------------------------------------------------------------------

    def _fd_meta(self, fd: int, e: Entry, new_in: int | None = None) -> None:
        """Owner, then mode (chown clears setuid bits), then xattrs (chown clears capabilities).

        `new_in`: `fd` is a file just created in that directory fd with mode `e.mode & 0o777`;
        a chown or chmod that would not change anything is then skipped."""
        new = new_in is not None
        if self.same_owner and not (new and (e.uid, e.gid) == self.owner and new_in not in self.dirs.setgid):
            os.fchown(fd, e.uid, e.gid)
        if not new or e.mode & self.chmod_bits:
            os.fchmod(fd, e.mode)
        if e.xattrs:
            _set_xattrs(fd, e)

    def _dir_meta(self, fd: int, e: Entry) -> None:
        """Metadata of directory `fd`, keeping track of whether it is setgid."""
        self._fd_meta(fd, e)
        self.dirs.mode_set(fd, e.mode)

    def _path_meta(self, pfd: int, base: str, e: Entry, *, chmod: bool) -> None:
        """Metadata of a symlink or node just created as `base` in `pfd`, never following it."""
        if self.same_owner:
            os.chown(base, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False)
        if chmod:  # a node this call just created: not a symlink
            os.chmod(base, e.mode, dir_fd=pfd)
        if e.xattrs:
            _set_xattrs(f"/proc/self/fd/{pfd}/{base}", e)
        os.utime(base, ns=_times(e), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Set directory times, now that nothing more is created inside them."""
        dirs = self.dirs
        for path, times in self.dir_times.items():
            parent, _, base = path.rpartition("/")
            try:
                if path:
                    os.utime(base, ns=times, dir_fd=dirs.get(parent, create=False), follow_symlinks=False)
                else:
                    os.utime(dirs.root, ns=times)
            except (FileNotFoundError, NotADirectoryError, LayerApplyError):
                pass  # replaced or removed by a later entry
            dirs.release()

    def close(self) -> None:
        self.dirs.close()


def _times(e: Entry) -> tuple[int, int]:
    atime = e.atime if e.atime is not None and e.atime > e.mtime else e.mtime
    return atime, e.mtime


def _set_xattrs(target: int | str, e: Entry) -> None:
    for key, value in e.xattrs.items():
        if key.startswith(_OVERLAY_XATTR_PREFIX):
            continue  # overlayfs metadata is never taken from a tar (whiteouts say what is needed)
        try:
            os.setxattr(target, key, value, follow_symlinks=isinstance(target, int))
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise  # like Docker: a filesystem without (that kind of) xattrs is not an error


def apply_layer(stream: BinaryIO, dest: str, *, whiteouts: str = "overlay", same_owner: bool = True,
                replace_kind: bool = True) -> ApplyResult:
    """Extract a layer tar (gzip/zstd/bzip2/xz/plain, detected) from `stream` into directory `dest`.

    whiteouts="overlay": dest is an overlay layer dir; `.wh.NAME` becomes a 0/0 char device and
    `.wh..wh..opq` sets trusted.overlay.opaque=y. whiteouts="naive": dest holds the parent's
    files; whiteouts delete, and an opaque marker removes what lower layers put in the directory.
    dest itself must not be a symlink. same_owner=False leaves files owned by the caller. replace_kind=False refuses an entry that would
    replace a directory with a non-directory or the other way round (docker cp's
    noOverwriteDirNonDir). Raises LayerApplyError for malformed or
    hostile archives; nothing outside dest is created, modified or deleted in any case."""
    if whiteouts not in ("overlay", "naive"):
        raise ValueError(f"whiteouts must be 'overlay' or 'naive', not {whiteouts!r}")
    applier = _Applier(dest, whiteouts == "naive", same_owner, replace_kind)
    try:
        with DecompressedChunks(stream) as chunks:
            reader = TarReader(chunks)
            release = applier.dirs.release
            layer_size = LayerSize()
            try:
                for entry in reader:
                    layer_size.add(entry)
                    try:
                        applier.apply(entry, reader)
                    except OSError as exc:
                        exc.add_note(f"while applying layer entry {entry.name!r}")
                        raise
                    release()
                applier.finish()  # while the worker still hashes the end of the stream
                chunks.drain()
            except (TarFormatError, DecompressionError) as exc:
                raise LayerApplyError(str(exc)) from exc
        return ApplyResult(chunks.digest, chunks.size, layer_size.total)
    finally:
        applier.close()
