"""The content store: blobs addressed by digest, written through verified, resumable ingests.

On disk, under ``root``::

    blobs/<algo>/<hex>      committed blobs (read-only files), visible only once verified
    ingest/<sha256 of ref>/ one in-progress write: ``data``, ``meta.json`` (ref, expected
                            digest/size, started), ``lock`` (flock held by the live writer)
    gc.lock                 flock: shared while a blob is made visible or referenced,
                            exclusive while garbage collection marks and sweeps

A commit fsyncs the data, checks size and digest, then renames the data into ``blobs/``, so a
kill -9 at any instant leaves either no blob or a complete verified one. What a crash can leave
behind is an ingest: resumable by reopening its ref, dropped by ``cleanup()`` when it cannot be
resumed (anonymous, already committed, or half-created) and by ``abort_stale()`` when old.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.image import digest as digests
from dockyard.image import writeback

CHUNK = 1 << 20  # bytes read or hashed at a time: memory use stays bounded by this
WRITEBACK_STEP = 8 << 20  # a writer starts the disk writes every this many bytes (commit's fsync then waits little)
LOCK_RETRY = (0.01, 0.02, 0.04)  # brief waits before a held ingest lock counts as Locked
ANONYMOUS_PREFIX = "anonymous-"


class NotFound(LookupError):
    """No blob with this digest in the store."""


class Locked(Exception):
    """Another live writer holds this ingest ref."""


class SizeMismatch(ValueError):
    """The written content does not have the expected size."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"unexpected commit size {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


class DigestMismatch(ValueError):
    """The written content does not have the expected digest."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"unexpected commit digest {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class IngestStatus:
    """One in-progress ingest, as found on disk."""

    ref: str
    offset: int
    expected: str | None
    size: int | None
    started: float
    updated: float


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_ingest(directory: Path, create: bool, what: str) -> int | None:
    """Take the exclusive flock of an ingest directory; its fd, or None when the directory is gone.

    The lock file's inode is checked after locking: a remover unlinks it while holding the
    lock, and whoever locked the unlinked inode must start over. Raises Locked when a live
    holder keeps it past a few brief retries."""
    lock_path = directory / "lock"
    for _ in range(100):
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            if not create:
                return None
            continue  # removed between mkdir and open: try again
        if not _flock_with_retry(fd):
            if _same_inode(fd, lock_path):
                os.close(fd)
                raise Locked(f"ingest {what} is locked by another writer")
            os.close(fd)
            continue
        if _same_inode(fd, lock_path):
            return fd
        os.close(fd)
        if not create and not directory.exists():
            return None
    raise Locked(f"ingest {what}: could not take its lock")


def _flock_with_retry(fd: int) -> bool:
    for delay in (*LOCK_RETRY, 0.0):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(delay)
    return False


def _same_inode(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


class ContentStore:
    """Blobs by digest under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.ingests_dir = self.root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingests_dir.mkdir(parents=True, exist_ok=True)

    # -- blobs ---------------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        algo, hexpart = digests.split(digest)
        return self.blobs / algo / hexpart

    def exists(self, digest: str) -> bool:
        """Whether the blob is in the store."""
        return self.path(digest).is_file()

    def _stat(self, digest: str) -> os.stat_result:
        try:
            return os.stat(self.path(digest))
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def size(self, digest: str) -> int:
        """Size in bytes of a blob; NotFound if absent."""
        return self._stat(digest).st_size

    def modified(self, digest: str) -> float:
        """When the blob was last committed (mtime, refreshed by idempotent commits)."""
        return self._stat(digest).st_mtime

    def open(self, digest: str) -> BinaryIO:
        """A binary reader of the blob; NotFound if absent."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read(self, digest: str) -> bytes:
        """The whole blob (for small blobs: manifests, configs)."""
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> None:
        """Remove a blob; NotFound if absent."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def list(self) -> Iterator[tuple[str, int]]:
        """(digest, size) of every committed blob."""
        for algo, length in digests.ALGORITHMS.items():
            directory = self.blobs / algo
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                if len(entry.name) != length:
                    continue
                try:
                    yield digests.validate(f"{algo}:{entry.name}"), entry.stat().st_size
                except (digests.InvalidDigest, FileNotFoundError):
                    continue

    # -- writing -------------------------------------------------------------------------------

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store a byte string; returns its digest. DigestMismatch if it does not match expected."""
        algo = digests.split(expected)[0] if expected else "sha256"
        actual = digests.of_bytes(data, algo)
        if expected and actual != expected:
            raise DigestMismatch(expected, actual)
        if self._touch(actual):
            return actual
        with self.writer(ANONYMOUS_PREFIX + uuid.uuid4().hex, actual, len(data)) as w:
            w.write(data)
            return w.commit()

    def writer(self, ref: str, expected: str | None = None, size: int | None = None) -> Writer:
        """Open (or resume) the ingest named ref. Locked if another live writer holds it.

        Resuming keeps the data already written (``Writer.offset``) unless the expected digest
        or size given now contradicts what the ingest was started with; then it starts over."""
        if not ref:
            raise ValueError("ingest ref must not be empty")
        if expected is not None:
            digests.validate(expected)
        if size is not None and size < 0:
            raise ValueError(f"invalid size {size}")
        directory = self._ingest_dir(ref)
        fd = _lock_ingest(directory, True, f"ref {ref!r}")
        assert fd is not None
        try:
            return Writer(self, directory, fd, ref, expected, size)
        except BaseException:
            os.close(fd)
            raise

    def ingest(self, stream: BinaryIO, expected: str | None = None, size: int | None = None,
               ref: str | None = None) -> str:
        """Copy a binary stream (the content from its first byte) into the store; its digest.

        Memory use is bounded by CHUNK. With a ref the ingest is resumable: data already
        written under that ref is skipped in the stream (seeked over, or read and dropped),
        and a failure of the stream leaves the partial ingest for a later call. Without a
        ref a failure removes everything."""
        if expected is not None and self._touch(expected):
            return expected  # already stored and verified: no need to read the stream again
        anonymous = ref is None
        w = self.writer(ref or ANONYMOUS_PREFIX + uuid.uuid4().hex, expected, size)
        try:
            _skip(stream, w.offset)
            while chunk := stream.read(CHUNK):
                w.write(chunk)
            return w.commit()
        except BaseException:
            if anonymous:
                w.abort()
            raise
        finally:
            w.close()

    def _touch(self, digest: str) -> bool:
        """Refresh an existing blob's mtime (its GC grace period) under the reference lock."""
        with self.reference_lock():
            try:
                os.utime(self.path(digest))
                return True
            except FileNotFoundError:
                return False

    # -- ingests -------------------------------------------------------------------------------

    def _ingest_dir(self, ref: str) -> Path:
        return self.ingests_dir / hashlib.sha256(ref.encode()).hexdigest()

    def ingests(self) -> Iterator[IngestStatus]:
        """Every ingest on disk with readable metadata."""
        for entry in os.scandir(self.ingests_dir):
            status = _read_status(Path(entry.path))
            if status is not None:
                yield status

    def abort_ingest(self, ref: str) -> bool:
        """Remove the ingest named ref unless a live writer holds it; whether it was removed."""
        return self._remove_ingest_if_idle(self._ingest_dir(ref))

    def abort_stale(self, older_than: float) -> int:
        """Remove ingests not written to for ``older_than`` seconds, unless a live writer
        holds them. Returns how many were removed."""
        removed = 0
        cutoff = time.time() - older_than
        for entry in os.scandir(self.ingests_dir):
            status = _read_status(Path(entry.path))
            updated = status.updated if status else entry.stat().st_mtime
            if updated <= cutoff and self._remove_ingest_if_idle(Path(entry.path)):
                removed += 1
        return removed

    def cleanup(self) -> None:
        """Start-up repair: drop ingests nobody can resume (anonymous, already committed,
        half-created) and stray files; keep resumable ones for their owners."""
        for entry in os.scandir(self.ingests_dir):
            directory = Path(entry.path)
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(directory)
                continue
            status = _read_status(directory)
            if (status is None or status.ref.startswith(ANONYMOUS_PREFIX)
                    or not (directory / "data").exists()):
                self._remove_ingest_if_idle(directory)
        for algo, length in digests.ALGORITHMS.items():
            directory = self.blobs / algo
            if directory.is_dir():
                for entry in os.scandir(directory):
                    if len(entry.name) != length or not entry.is_file(follow_symlinks=False):
                        _remove_path(Path(entry.path))

    def _remove_ingest_if_idle(self, directory: Path) -> bool:
        try:
            fd = _lock_ingest(directory, False, directory.name)
        except Locked:
            return False
        if fd is None:
            return False
        try:
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            os.close(fd)
        return True

    # -- locking -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reference_lock(self) -> Iterator[None]:
        """Shared side of the GC lock: hold it while making a blob visible or while recording
        a reference to a blob that already exists, so a collection cannot sweep it meanwhile."""
        with self._gc_flock(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def gc_lock(self) -> Iterator[None]:
        """Exclusive side of the GC lock, held by a collection for its mark and sweep."""
        with self._gc_flock(fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def _gc_flock(self, mode: int) -> Iterator[None]:
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _read_meta(directory: Path) -> dict | None:
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("ref"), str) else None


def _read_status(directory: Path) -> IngestStatus | None:
    meta = _read_meta(directory)
    if meta is None:
        return None
    try:
        st = os.stat(directory / "data")
        offset, updated = st.st_size, st.st_mtime
    except FileNotFoundError:
        offset, updated = 0, meta.get("started", 0.0)
    return IngestStatus(meta["ref"], offset, meta.get("expected"), meta.get("size"),
                        meta.get("started", 0.0), updated)


def _write_meta(directory: Path, meta: dict) -> None:
    tmp = directory / "meta.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, directory / "meta.json")


def _skip(stream: BinaryIO, count: int) -> None:
    """Advance a stream by count bytes: seek when it can, else read and drop."""
    if count == 0:
        return
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and seekable():
        stream.seek(count, os.SEEK_CUR)
        return
    while count:
        chunk = stream.read(min(count, CHUNK))
        if not chunk:
            return
        count -= len(chunk)


class Writer:
    """An open ingest holding its lock. Write, then commit (or abort); close keeps it resumable."""

    def __init__(self, store: ContentStore, directory: Path, lock_fd: int, ref: str,
                 expected: str | None, size: int | None) -> None:
        self._store = store
        self._dir = directory
        self._lock_fd: int | None = lock_fd
        self.ref = ref
        meta = _read_meta(directory)
        if meta is not None and meta["ref"] == ref and _compatible(meta, expected, size):
            expected = expected or meta.get("expected")
            size = size if size is not None else meta.get("size")
            fresh = False
        else:
            fresh = True
        self.expected = expected
        self.size = size
        self._hash = digests.hasher(digests.split(expected)[0] if expected else "sha256")
        data_path = directory / "data"
        if fresh:
            data_path.unlink(missing_ok=True)
            _write_meta(directory, {"ref": ref, "expected": expected, "size": size, "started": time.time()})
        elif meta != {**meta, "expected": expected, "size": size}:
            _write_meta(directory, {**meta, "expected": expected, "size": size})
        self._file = open(data_path, "a+b")
        self._file.seek(0)
        self.offset = 0
        while chunk := self._file.read(CHUNK):
            self._hash.update(chunk)
            self.offset += len(chunk)
        self._written_back = self.offset

    def write(self, data: bytes) -> int:
        """Append bytes to the ingest."""
        if self._lock_fd is None:
            raise ValueError(f"ingest {self.ref!r} is closed")
        if self.size is not None and self.offset + len(data) > self.size:
            # Refuse at once: a stream longer than announced must not fill the disk first.
            self.abort()
            raise SizeMismatch(self.size, self.offset + len(data))
        self._file.write(data)
        self._hash.update(data)
        self.offset += len(data)
        if self.offset - self._written_back >= WRITEBACK_STEP:
            self._file.flush()
            writeback.start(self._file.fileno(), self._written_back, self.offset - self._written_back)
            self._written_back = self.offset
        return len(data)

    def digest(self) -> str:
        """Digest of what was written so far."""
        return f"{self._hash.name}:{self._hash.hexdigest()}"

    def commit(self) -> str:
        """Verify size and digest, then make the blob visible atomically; returns its digest.

        On a mismatch the ingest is removed and SizeMismatch / DigestMismatch raised.
        Committing content the store already has just drops the ingest."""
        if self._lock_fd is None:
            raise ValueError(f"ingest {self.ref!r} is closed")
        self._file.flush()
        os.fsync(self._file.fileno())
        actual = self.digest()
        try:
            if self.size is not None and self.offset != self.size:
                raise SizeMismatch(self.size, self.offset)
            if self.expected is not None and actual != self.expected:
                raise DigestMismatch(self.expected, actual)
        except ValueError:
            self.abort()
            raise
        target = self._store.path(actual)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._store.reference_lock():
            try:
                os.utime(target)  # already there: only its grace period restarts
            except FileNotFoundError:
                os.rename(self._dir / "data", target)
                os.fchmod(self._file.fileno(), 0o444)
                _fsync_dir(target.parent)
        self.abort()
        return actual

    def abort(self) -> None:
        """Remove the ingest and release it."""
        if self._lock_fd is None:
            return
        shutil.rmtree(self._dir, ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Release the ingest, keeping its data for a later resume."""
        if self._lock_fd is None:
            return
        self._file.close()
        os.close(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def _compatible(meta: dict, expected: str | None, size: int | None) -> bool:
    """Whether new expectations agree with those an ingest was started with."""
    if expected and meta.get("expected") and expected != meta["expected"]:
        return False
    return not (size is not None and meta.get("size") is not None and size != meta["size"])
