"""Layer compression: detection by magic, streaming (de)compression, hashing while streaming.

gzip goes through `isal` (ISA-L's igzip, several times faster than zlib) when it is installed,
else through the stdlib's zlib; zstd through `zstandard`; bzip2 and xz through the stdlib.
`DecompressedChunks` decompresses in one worker thread and hashes in another (igzip, zstd and
hashlib release the GIL), so the consumer can write files while the next chunk is being inflated
and the previous ones hashed.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator

from dockyard.image import digest as digests

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from types import ModuleType
    from typing import BinaryIO

ALGORITHMS = ("gzip", "zstd", "bzip2", "xz", "none")
_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_HEAD_SIZE = 6
CHUNK_SIZE = 1 << 20


def _gzip() -> ModuleType:
    """isal's igzip, else the stdlib's gzip; imported on first use (plain layers never need it)."""
    try:
        from isal import igzip
    except ImportError:  # pragma: no cover - isal is a declared dependency
        import gzip as igzip
    return igzip


def detect(head: bytes) -> str:
    """The compression of a stream from its first bytes: gzip, zstd, bzip2, xz or none."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return "none"


class _Prefixed(io.RawIOBase):
    """A readable stream that replays bytes already read from `stream`, then continues it."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            return readinto(buf) or 0
        data = self._stream.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all if negative) straight from `stream` once the head is used up:
        no intermediate buffer, unlike RawIOBase.read (a copy) or a BufferedReader (another)."""
        head = self._head
        if not head:
            return self._stream.read(size)
        if 0 <= size < len(head):
            self._head = head[size:]
            return head[:size].tobytes()
        self._head = memoryview(b"")
        return head.tobytes() + (self._stream.read(size - len(head) if size >= 0 else -1) or b"")


def _read_head(stream: BinaryIO) -> bytes:
    head = b""
    while len(head) < _HEAD_SIZE:
        more = stream.read(_HEAD_SIZE - len(head))
        if not more:
            break
        head += more
    return head


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """A readable stream of `stream` decompressed according to its magic (bounded memory)."""
    reader = _decompressing_reader(stream)
    return io.BufferedReader(reader, CHUNK_SIZE) if isinstance(reader, _Prefixed) else reader


def _decompressing_reader(stream: BinaryIO) -> BinaryIO:
    """Like open_decompressed, but a plain stream comes back unbuffered: `read(n)` may be short."""
    head = _read_head(stream)
    algorithm = detect(head)
    raw = _Prefixed(head, stream)
    if algorithm == "gzip":
        return _gzip().GzipFile(fileobj=raw, mode="rb")
    if algorithm == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if algorithm == "bzip2":
        import bz2

        return bz2.BZ2File(raw, "rb")
    if algorithm == "xz":
        import lzma

        return lzma.LZMAFile(raw, "rb")
    return raw


class HashingWriter:
    """A write-only sink that hashes and counts what passes through to `out`."""

    def __init__(self, out: BinaryIO, algorithm: str = "sha256") -> None:
        self._out = out
        self._algorithm = algorithm
        self._hash = digests.hasher(algorithm)
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._hash.update(data)
        self._out.write(data)
        n = len(data)
        self.size += n
        return n

    def flush(self) -> None:
        self._out.flush()

    def digest(self) -> str:
        """The digest of everything written so far."""
        return f"{self._algorithm}:{self._hash.hexdigest()}"


def open_compressed(out, algorithm: str = "gzip", level: int | None = None):
    """A writer compressing into `out`; closing it finishes the stream but leaves `out` open.

    gzip levels 0-3 (or None) use igzip, other levels the stdlib's zlib. The gzip header
    carries no name and mtime 0, so equal input gives equal output."""
    if algorithm == "gzip":
        if level is None or 0 <= level <= 3:
            return _gzip().GzipFile(fileobj=out, mode="wb", compresslevel=2 if level is None else level, mtime=0)
        import gzip

        return gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level, mtime=0)
    if algorithm == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level).stream_writer(out, closefd=False)
    if algorithm == "bzip2":
        import bz2

        return bz2.BZ2File(out, "wb", compresslevel=9 if level is None else level)
    if algorithm == "xz":
        import lzma

        return lzma.LZMAFile(out, "wb", preset=level)
    raise ValueError(f"unsupported compression {algorithm!r} (expected one of {', '.join(ALGORITHMS[:-1])})")


def compress_stream(
    src: BinaryIO, dst: BinaryIO, algorithm: str = "gzip", level: int | None = None
) -> tuple[str, int]:
    """Compress `src` into `dst`; returns (digest, size) of the compressed output.

    algorithm "none" copies the stream unchanged."""
    sink = HashingWriter(dst)
    writer = sink if algorithm == "none" else open_compressed(sink, algorithm, level)
    while chunk := src.read(CHUNK_SIZE):
        writer.write(chunk)
    if writer is not sink:
        writer.close()
    return sink.digest(), sink.size


_DONE = object()


class DecompressionError(ValueError):
    """The layer stream could not be read or decompressed (corrupt or truncated)."""


class DecompressedChunks:
    """Iterate over the decompressed chunks of `stream`, read in one worker thread, hashed in another.

    Use as a context manager; after the iteration ends, `digest` and `size` describe the whole
    uncompressed stream. The reader hands each chunk to the consumer and to the hasher, which may
    lag behind: the consumer never waits for hashing (a big file is written faster than sha256
    runs) but the digest is final before the iteration ends. Memory is bounded by `depth` chunks
    queued for the consumer plus `hash_lag` queued for the hasher, of `chunk_size` bytes each."""

    def __init__(self, stream: BinaryIO, *, chunk_size: int = CHUNK_SIZE, depth: int = 8,
                 hash_lag: int = 16) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._queue: queue.Queue = queue.Queue(depth)
        self._hash_queue: queue.Queue = queue.Queue(hash_lag)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="layer-decompress", daemon=True)
        self._hasher = threading.Thread(target=self._hash, name="layer-hash", daemon=True)
        self._finished = False
        self.digest = ""
        self.size = 0

    def __enter__(self) -> DecompressedChunks:
        self._hasher.start()
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread, q in ((self._reader, self._queue), (self._hasher, self._hash_queue)):
            while thread.is_alive():  # unblock it: make room in (or end) the queue it waits on
                try:
                    if q is self._queue:
                        q.get(timeout=0.05)
                    else:
                        q.put(_DONE, timeout=0.05)
                except (queue.Empty, queue.Full):
                    pass
            thread.join()

    def _put(self, q: queue.Queue, item: object) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        put, consumer, hasher = self._put, self._queue, self._hash_queue
        try:
            read, chunk_size = _decompressing_reader(self._stream).read, self._chunk_size
            while not self._stop.is_set():
                chunk = read(chunk_size)
                if not chunk:
                    break
                if not (put(hasher, chunk) and put(consumer, chunk)):
                    return
            if put(hasher, _DONE):
                put(consumer, _DONE)
        except Exception as exc:  # handed to the consumer, which re-raises it
            wrapped = DecompressionError(f"cannot read the layer stream: {exc or type(exc).__name__}")
            wrapped.__cause__ = exc
            put(consumer, wrapped)

    def _hash(self) -> None:
        h = digests.hasher("sha256")
        size = 0
        get, update = self._hash_queue.get, h.update
        while (chunk := get()) is not _DONE:
            if self._stop.is_set():
                return
            update(chunk)
            size += len(chunk)
        self.digest, self.size = f"sha256:{h.hexdigest()}", size

    def __iter__(self) -> Iterator[bytes]:
        get = self._queue.get
        while not self._finished:
            item = get()
            if item is _DONE:
                self._hasher.join()  # the digest of the whole stream is ready
                self._finished = True
                return
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            yield item

    def drain(self) -> None:
        """Read (and hash) the rest of the stream, e.g. the padding after a tar's end marker."""
        for _ in self:
            pass
