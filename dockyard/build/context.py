"""Build contexts: packing a directory as Docker's CLI does, unpacking a received tar safely."""

from __future__ import annotations

import io
import os
import stat

from dockyard.build.ignore import PatternMatcher, read_ignore

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    import tarfile
    from collections.abc import Iterator
    from typing import IO, Any


EXTERNAL_DOCKERFILE = ".dockerfile.external"  # dockyard's CLI: a Dockerfile from stdin or outside the context


class ContextError(ValueError):
    """A context that cannot be used (hostile paths, unreadable archive)."""


def ignore_patterns(root: str, dockerfile: str = "Dockerfile") -> list[str]:
    """The patterns of `<dockerfile>.dockerignore` beside the Dockerfile, else `.dockerignore`."""
    for path in (dockerfile + ".dockerignore", os.path.join(root, ".dockerignore")):
        try:
            with open(path, "rb") as f:
                return read_ignore(f.read())
        except (FileNotFoundError, NotADirectoryError):
            continue
    return []


def drop_ignored(root: str, dockerfile: str) -> None:
    """As dockerd's classic builder does with an uploaded context once the Dockerfile is read:
    .dockerignore and the Dockerfile leave it when the context's .dockerignore matches them
    (docker-py lists both there when it adds a Dockerfile from outside the context)."""
    try:
        with open(os.path.join(root, ".dockerignore"), "rb") as f:
            matcher = PatternMatcher(read_ignore(f.read()))
    except (FileNotFoundError, NotADirectoryError):
        return
    from dockyard.build import fsops  # re and shutil: kept off the CLI's path
    for name in (".dockerignore", os.path.normpath(dockerfile).lstrip("/")):
        if matcher.matches(name):
            try:
                os.unlink(fsops.resolve(root, name, follow_last=False))  # parents' links stay inside root
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                pass


def hidden_from_copies(root: str, dockerfile: str) -> list[str]:
    """What BuildKit keeps out of `COPY .` although dockyard's CLI sends it: the Dockerfile it
    put in the context from stdin or elsewhere, and the Dockerfile and .dockerignore when the
    context's ignore file excludes them (the CLI sends both whatever the patterns say)."""
    if dockerfile == EXTERNAL_DOCKERFILE:
        return [EXTERNAL_DOCKERFILE]
    matcher = PatternMatcher(ignore_patterns(root, os.path.join(root, dockerfile)))
    return [name for name in (".dockerignore", os.path.normpath(dockerfile).lstrip("/")) if matcher.matches(name)]


def walk(root: str, matcher: PatternMatcher, keep: tuple[str, ...] = ()) -> Iterator[str]:
    """Relative paths under root not excluded by matcher (sorted, parents first); an excluded
    directory is entered only when an exclusion pattern starts with it, as Docker's tar does."""
    def visit(rel: str) -> Iterator[str]:
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            excluded = matcher.matches(path) and path not in keep
            is_dir = entry.is_dir(follow_symlinks=False)
            if excluded and not (is_dir and matcher.may_include_below(path)):
                continue
            if not excluded:
                yield path
            if is_dir:
                yield from visit(path)
    yield from visit("")


def context_paths(root: str, dockerfile: str = "Dockerfile", patterns: list[str] | None = None) -> list[str]:
    """The paths of root a context holds: .dockerignore applied, the Dockerfile and .dockerignore
    always kept."""
    if patterns is None:
        patterns = ignore_patterns(root, os.path.join(root, dockerfile))
    return list(walk(root, PatternMatcher(patterns), (dockerfile, ".dockerignore")))


def manifest(root: str, paths: list[str]) -> list[list]:
    """[path, type, size, mtime_ns, mode, link] of each path (relative to root), from lstat: what
    dockyard's CLI sends first for an incremental context (contextsync.py)."""
    out = []
    for rel in paths:
        st = os.lstat(os.path.join(root, rel))
        kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
        link = os.readlink(os.path.join(root, rel)) if kind == "l" else ""
        out.append([rel, kind, st.st_size if kind == "f" else 0, st.st_mtime_ns, stat.S_IMODE(st.st_mode), link])
    return out


def pack(root: str, out: IO[bytes], dockerfile: str = "Dockerfile", patterns: list[str] | None = None,
         paths: list[str] | None = None) -> None:
    """Write root (or only paths of it) as an uncompressed tar, the CLI's context."""
    import tarfile
    if paths is None:
        paths = context_paths(root, dockerfile, patterns)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        add_paths(tar, root, paths)


def add_paths(tar: tarfile.TarFile, root: str, paths: list[str], prefix: str = "") -> None:
    """Add root's paths to tar (named prefix + path), owners zeroed as `docker build` sends them."""
    for rel in paths:
        info = tar.gettarinfo(os.path.join(root, rel), arcname=prefix + rel)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if info.isreg():
            with open(os.path.join(root, rel), "rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)


def _safe_name(name: str) -> str:
    parts = []
    for part in name.split("/"):  # a backslash is part of a name, as on any Linux
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ContextError(f"context archive entry {name!r} points outside the context")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _parent_fd(dest_fd: int, rel: str) -> tuple[int, str]:
    """A descriptor of rel's parent directory inside dest (created as needed, never through a
    symlink) and rel's last component."""
    parts = rel.split("/")
    fd = os.dup(dest_fd)
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except (NotADirectoryError, OSError) as e:
                raise ContextError(f"context archive entry {rel!r} goes through a non-directory") from e
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _remove_existing(fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        return
    os.unlink(name, dir_fd=fd)


def extract(stream: IO[bytes], dest: str, whiteouts: bool = False,
            digests: dict[str, str] | None = None) -> None:
    """Unpack a context tar (plain or compressed) into the directory dest: entries are
    written through directory descriptors without following symlinks, `..` cannot leave dest,
    symlinks are created as they are (never followed), hard links only to earlier entries.
    With whiteouts (image layers), `.wh.NAME` removes NAME and `.wh..wh..opq` empties its directory.
    digests, when given, receives the sha256 of each regular file (path → hex), computed on the way."""
    import tarfile

    from dockyard.image.compression import detect
    root_is_root = os.geteuid() == 0
    dest_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    head = stream.read(512)
    tail = _UnfinishedTar(head, stream, detect(head) == "none")
    data_end = 0  # where the last member's data ends
    try:
        try:
            tar = tarfile.open(fileobj=tail, mode="r|*")
        except tarfile.TarError as e:
            raise ContextError(f"the build context is not a tar archive: {e}") from None
        with tar:
            for member in tar:
                data_end = member.offset_data + (member.size if member.isreg() else 0)
                rel = _safe_name(member.name)
                if not rel:
                    continue
                fd, name = _parent_fd(dest_fd, rel)
                try:
                    if whiteouts and name.startswith(".wh."):
                        _whiteout(fd, name[4:])
                        continue
                    digest = _extract_member(tar, member, fd, name, rel, dest_fd)
                    if digests is not None and digest is not None:
                        digests[rel] = digest
                    if member.isdir():
                        dirs.append((rel, member))
                    elif not member.issym() and not member.islnk():
                        _set_meta(fd, name, member, root_is_root)
                    elif root_is_root:
                        os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
                finally:
                    os.close(fd)
        if tail.truncated(data_end):
            raise tarfile.ReadError("unexpected end of data")
        for rel, member in reversed(dirs):
            fd, name = _parent_fd(dest_fd, rel)
            try:
                _set_meta(fd, name, member, root_is_root)
            finally:
                os.close(fd)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ContextError(f"cannot unpack the build context: {e}") from None
    finally:
        os.close(dest_fd)


class _UnfinishedTar(io.RawIOBase):
    """A tar stream read on (after its first bytes, head); a plain one may end right after
    its last file's data, as the docker CLI's context with `-f -` does (no padding, no end
    blocks, which Go's tar reader does without): zeros stand in for them. A stream cut inside
    a file's data or a header is still truncated (the caller asks, knowing where data ended)."""

    def __init__(self, head: bytes, stream: IO[bytes], plain: bool) -> None:
        self.head, self.stream, self.plain = head, stream, plain
        self.read_so_far = 0
        self.ended_at: int | None = None
        self.zeros = 0
        self.recent = b""  # the last real bytes (up to a block)

    def truncated(self, data_end: int) -> bool:
        """Whether the real stream ended before data_end, or in the middle of a header after it."""
        if self.ended_at is None:
            return False
        partial = self.ended_at % 512
        after_padding = self.ended_at > data_end + (-data_end) % 512
        return self.ended_at < data_end or bool(after_padding and partial and self.recent[-partial:].strip(b"\0"))

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = len(buf)
        if self.head:
            data, self.head = self.head[:n], self.head[n:]
        elif self.ended_at is None:
            data = self.stream.read(n)
            if not data and self.plain:
                self.ended_at = self.read_so_far
                self.zeros = (-self.read_so_far) % 512 + 1024
        else:
            data = b""
        if not data and self.zeros:
            data = bytes(min(n, self.zeros))
            self.zeros -= len(data)
        if self.ended_at is None:
            self.recent = (self.recent + data)[-512:]
        self.read_so_far += len(data)
        buf[:len(data)] = data
        return len(data)


def _whiteout(fd: int, name: str) -> None:
    if name == ".wh..opq":
        for entry in os.listdir(fd):
            _remove_tree(fd, entry)
    else:
        _remove_tree(fd, name)


def _remove_tree(fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=fd)
        return
    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    try:
        for entry in os.listdir(sub):
            _remove_tree(sub, entry)
    finally:
        os.close(sub)
    os.rmdir(name, dir_fd=fd)


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int, name: str, rel: str,
                    dest_fd: int) -> str | None:
    if member.isdir():
        try:
            os.mkdir(name, 0o755, dir_fd=fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=fd)
                os.mkdir(name, 0o755, dir_fd=fd)
        return None
    _remove_existing(fd, name)
    if member.isreg():
        src = tar.extractfile(member)
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
        import hashlib
        h = hashlib.sha256()
        with os.fdopen(out, "wb") as f:
            assert src is not None
            while chunk := src.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
        return h.hexdigest()
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=fd)
    elif member.islnk():
        target = _safe_name(member.linkname)
        tfd, tname = _parent_fd(dest_fd, target)
        try:
            if not stat.S_ISREG(os.stat(tname, dir_fd=tfd, follow_symlinks=False).st_mode):
                raise ContextError(f"hard link {rel!r} must point to a regular file")
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(tfd)
    elif member.isfifo():
        os.mkfifo(name, 0o600, dir_fd=fd)
    # devices are not part of build contexts: skipped
    return None


def _set_meta(fd: int, name: str, member: tarfile.TarInfo, as_root: bool) -> None:
    if as_root:
        os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
    os.chmod(name, member.mode & 0o7777, dir_fd=fd, follow_symlinks=False)
    os.utime(name, (member.mtime, member.mtime), dir_fd=fd, follow_symlinks=False)


def looks_like_tar(head: bytes) -> bool:
    """Whether the first bytes of a body are an archive (tar or compressed), not a Dockerfile."""
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[:4] == b"\x28\xb5\x2f\xfd":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def single_file_context(dockerfile: bytes) -> io.BytesIO:
    """A context tar holding only a Dockerfile (`docker build - < Dockerfile`)."""
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(dockerfile))
    buf.seek(0)
    return buf
