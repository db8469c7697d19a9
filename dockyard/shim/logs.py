"""Container logs in Docker's json-file format, with size-based rotation."""

from __future__ import annotations

import json
import os
import time

PARTIAL_LIMIT = 16 * 1024  # a line longer than this is written in pieces, like Docker's copier
_HTML_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def rfc3339nano(ns: int | None = None) -> str:
    """UTC time as Go's time.RFC3339Nano prints it (fraction without trailing zeros)."""
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def encode_entry(chunk: bytes, stream: str, stamp: str) -> bytes:
    """One json-file line: {"log":..., "stream":..., "time":...} and a newline."""
    text = json.dumps(chunk.decode("utf-8", "replace"), ensure_ascii=False)
    for char, escape in _HTML_ESCAPES:
        text = text.replace(char, escape)
    return f'{{"log":{text},"stream":"{stream}","time":"{stamp}"}}\n'.encode()


class LineSplitter:
    """Cuts a byte stream into messages: whole lines, or PARTIAL_LIMIT pieces of a long line."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add data; return the messages that are complete now."""
        self._buf += data
        out: list[bytes] = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl < 0 or nl - start >= PARTIAL_LIMIT:
                if len(self._buf) - start >= PARTIAL_LIMIT:
                    out.append(bytes(self._buf[start:start + PARTIAL_LIMIT]))
                    start += PARTIAL_LIMIT
                    continue
                break
            out.append(bytes(self._buf[start:nl + 1]))
            start = nl + 1
        del self._buf[:start]
        return out

    def flush(self) -> list[bytes]:
        """Return what is left (at EOF), without adding a newline."""
        rest = bytes(self._buf)
        self._buf.clear()
        return [rest] if rest else []


class JsonFileWriter:
    """Appends json-file entries to FILE, rotating to FILE.1 ... FILE.<max_file-1> past max_size."""

    def __init__(self, path: str, max_size: int = -1, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self._fd = self._open(os.O_APPEND)
        self._size = os.fstat(self._fd).st_size

    def _open(self, extra: int) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | extra, 0o640)

    def write(self, stream: str, chunk: bytes, stamp: str) -> None:
        """Write one message (rotating first if the file already reached max_size)."""
        if 0 < self.max_size <= self._size:
            self._rotate()
        view = memoryview(encode_entry(chunk, stream, stamp))
        while view:
            n = os.write(self._fd, view)
            self._size += n
            view = view[n:]

    def _rotate(self) -> None:
        if self.max_file == 1:
            os.ftruncate(self._fd, 0)
        else:
            for i in range(self.max_file - 1, 1, -1):
                older = f"{self.path}.{i - 1}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{i}")
            os.replace(self.path, f"{self.path}.1")
            os.close(self._fd)
            self._fd = self._open(os.O_APPEND | os.O_TRUNC)
        self._size = 0

    def close(self) -> None:
        """Close the current file."""
        os.close(self._fd)
