"""Archive tars: a hostile-safe streaming reader that files every blob into the content store,
and a deterministic writer.

Reading never holds a layer in memory: each regular file is streamed into the content store
(verified against its name when it lives under ``blobs/<alg>/<hex>``); only the small
top-level documents (manifest.json, index.json, oci-layout, repositories) are kept in memory.
Names are checked as they arrive: absolute names, ``..`` components, duplicates, links that
leave the archive or that stand in for a document or a blob are refused, as are entries
larger than the free space of the store and documents larger than MAX_DOCUMENT.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.image import digest as digests
from dockyard.image.compression import open_decompressed
from dockyard.image.content import ContentStore, DigestMismatch, SizeMismatch
from dockyard.image.tarstream import DIR, REG, Entry, TarWriter

DOCUMENTS = ("manifest.json", "index.json", "oci-layout", "repositories")
MAX_DOCUMENT = 8 << 20  # bytes of a JSON document read into memory
MAX_ENTRIES = 1 << 20
_MAX_LINK_HOPS = 40

Source = bytes | Path  # what an archive file is written from: its bytes, or a file to copy


class ArchiveError(ValueError):
    """A malformed or hostile archive; the message says what is wrong with it."""


@dataclass(frozen=True)
class ArchiveFile:
    """A regular file of the archive, now a blob in the content store."""

    path: str
    digest: str
    size: int


def clean_name(name: str) -> str:
    """An archive member name as a relative path; ArchiveError if it is absolute or climbs out."""
    if name.startswith("/"):
        raise ArchiveError(f"invalid archive: absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"invalid archive: path {name!r} escapes the archive")
    return "/".join(parts)


def _protected(path: str) -> bool:
    return path in DOCUMENTS or path == "blobs" or path.startswith("blobs/")


class Scan:
    """What an archive held: documents in memory, files as content blobs, links to resolve."""

    def __init__(self, content: ContentStore) -> None:
        self.content = content
        self.documents: dict[str, bytes] = {}
        self.files: dict[str, ArchiveFile] = {}
        self.links: dict[str, str] = {}

    def resolve(self, path: str) -> ArchiveFile:
        """The file at an archive path (e.g. a manifest.json entry), following links that stay
        inside the archive; ArchiveError when it is missing or leads outside."""
        current = clean_name(path)
        for _ in range(_MAX_LINK_HOPS):
            if current in self.files:
                return self.files[current]
            if current not in self.links:
                raise ArchiveError(f"invalid archive: {path!r} is not in the archive")
            current = self.links[current]
        raise ArchiveError(f"invalid archive: too many links resolving {path!r}")

    def read(self, path: str) -> bytes:
        """The content of a small file (a config, a manifest) at an archive path."""
        found = self.resolve(path)
        if found.size > MAX_DOCUMENT:
            raise ArchiveError(f"invalid archive: {path!r} is too large ({found.size} bytes) for a JSON document")
        return self.content.read(found.digest)

    def document(self, name: str) -> Any:
        """A top-level JSON document, parsed; None when absent."""
        data = self.documents.get(name)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ArchiveError(f"invalid archive: {name}: {exc}") from None

    def blob(self, dgst: str) -> ArchiveFile | None:
        """The blob an OCI layout keeps at blobs/<alg>/<hex>, if the archive had it."""
        algo, hexpart = digests.split(dgst)
        return self.files.get(f"blobs/{algo}/{hexpart}")


def _link_target(path: str, member: tarfile.TarInfo) -> str:
    base = "" if member.islnk() else posixpath.dirname(path)
    if member.linkname.startswith("/"):
        raise ArchiveError(f"invalid archive: link {path!r} points outside the archive")
    target = posixpath.normpath(posixpath.join(base, member.linkname))
    if target == ".." or target.startswith("../") or target.startswith("/"):
        raise ArchiveError(f"invalid archive: link {path!r} points outside the archive")
    return target


def _check_room(content: ContentStore, path: str, size: int) -> None:
    st = os.statvfs(content.root)
    free = st.f_bavail * st.f_frsize
    if size > free:
        raise ArchiveError(f"invalid archive: {path!r} claims {size} bytes, more than the {free} bytes free")


def _blob_digest(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    try:
        return digests.validate(f"{parts[1]}:{parts[2]}")
    except digests.InvalidDigest:
        raise ArchiveError(f"invalid archive: {path!r} is not a valid blob name") from None


def scan(content: ContentStore, stream: BinaryIO) -> Scan:
    """Read a (possibly compressed) archive tar from stream into a Scan."""
    result = Scan(content)
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=open_decompressed(stream), mode="r|") as tar:
            for count, member in enumerate(tar):
                if count >= MAX_ENTRIES:
                    raise ArchiveError(f"invalid archive: more than {MAX_ENTRIES} entries")
                path = clean_name(member.name)
                if not path or member.isdir():
                    continue
                if path in seen:
                    raise ArchiveError(f"invalid archive: {path!r} appears twice")
                seen.add(path)
                if member.issym() or member.islnk():
                    if _protected(path):
                        raise ArchiveError(f"invalid archive: {path!r} must be a regular file, not a link")
                    result.links[path] = _link_target(path, member)
                elif member.isreg():
                    _take_file(result, tar, member, path)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"invalid archive: {exc}") from None
    return result


def _take_file(result: Scan, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
    data = tar.extractfile(member)
    assert data is not None
    if path in DOCUMENTS:
        if member.size > MAX_DOCUMENT:
            raise ArchiveError(f"invalid archive: {path} is too large ({member.size} bytes)")
        result.documents[path] = data.read()
        return
    _check_room(result.content, path, member.size)
    expected = _blob_digest(path)
    try:
        dgst = result.content.ingest(data, expected, member.size)
    except DigestMismatch as exc:
        raise ArchiveError(f"invalid archive: {path!r} does not match its digest (content is {exc.actual})") from None
    except SizeMismatch as exc:
        raise ArchiveError(f"invalid archive: {path!r} is truncated: {exc}") from None
    result.files[path] = ArchiveFile(path, dgst, member.size)


# ---- writing ----------------------------------------------------------------------------

def _source_fd(source: Source) -> tuple[int, int]:
    """(fd, size) to read a source from; the caller closes the fd."""
    if isinstance(source, Path):
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        return fd, os.fstat(fd).st_size
    fd = os.memfd_create("archive-entry", os.MFD_CLOEXEC)
    os.write(fd, source)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd, len(source)


def _with_parents(names: list[str]) -> list[str]:
    dirs = {"/".join(n.split("/")[:i]) + "/" for n in names for i in range(1, n.count("/") + 1)}
    return sorted(dirs | set(names))


def write_tar(out: BinaryIO, files: dict[str, Source], mtime: int = 0) -> None:
    """Write files (archive path → source) as a deterministic tar: names sorted with their
    directories first, root-owned, fixed mtime, ustar headers."""
    writer = TarWriter(out.write)
    for name in _with_parents(list(files)):
        if name.endswith("/"):
            writer.add(Entry(name, DIR, mode=0o755, mtime=mtime * 1_000_000_000))
            continue
        fd, size = _source_fd(files[name])
        try:
            writer.add(Entry(name, REG, mode=0o644, size=size, mtime=mtime * 1_000_000_000), fd)
        finally:
            os.close(fd)
    writer.close()
    out.flush()


def write_dir(dest: str, files: dict[str, Source]) -> None:
    """Write files (path → source) under directory dest, each atomically (write + rename)."""
    for name in sorted(files):
        target = os.path.join(dest, *name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.tmp-{os.getpid()}"
        source = files[name]
        if isinstance(source, Path):
            shutil.copyfile(source, tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(source)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)

