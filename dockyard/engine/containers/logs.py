"""Reading a container's json-file log (with its rotated files): filters, tail and follow."""

from __future__ import annotations

import calendar
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

POLL_INTERVAL = 0.05


@dataclass
class LogOptions:
    """GET /containers/{id}/logs query options (since/until in seconds since the epoch, 0 = unset)."""

    stdout: bool = True
    stderr: bool = True
    since: float = 0
    until: float = 0
    tail: int | None = None  # None: all
    timestamps: bool = False
    follow: bool = False


def parse_time(stamp: str) -> int:
    """RFC 3339 (UTC, "Z") with optional fraction -> nanoseconds since the epoch."""
    main, _, frac = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


def format_time(ns: int) -> str:
    """Docker's fixed-width RFC3339Nano (always nine fraction digits)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def _files(path: str) -> list[str]:
    """Rotated files oldest first, then the live one."""
    rotated = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        rotated.append(f"{path}.{n}")
        n += 1
    return rotated[::-1] + [path]


class _Filter:
    def __init__(self, opts: LogOptions) -> None:
        self.opts = opts
        self.since = int(opts.since * 1e9)
        self.until = int(opts.until * 1e9)

    @staticmethod
    def parse(line: bytes) -> dict[str, Any] | None:
        """One log line's record, or None if malformed."""
        try:
            return json.loads(line)
        except ValueError:
            return None

    def select(self, obj: dict[str, Any]) -> tuple[str, bytes] | None:
        """(stream, payload) of a record, or None if the streams or times asked leave it out."""
        stream = obj.get("stream", "stdout")
        if (stream == "stdout" and not self.opts.stdout) or (stream == "stderr" and not self.opts.stderr):
            return None
        ns = parse_time(obj["time"])
        if (self.since and ns < self.since) or (self.until and ns > self.until):
            return None
        payload = obj.get("log", "").encode()
        if self.opts.timestamps:
            payload = format_time(ns).encode() + b" " + payload
        return stream, payload

    def entry(self, line: bytes) -> tuple[str, bytes] | None:
        """(stream, payload) of one log line, or None if filtered out or malformed."""
        obj = self.parse(line)
        return None if obj is None else self.select(obj)


def read_logs(path: str, opts: LogOptions, running: Callable[[], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield (stream, bytes) entries; with follow, keep yielding new ones until running() is false.
    As dockerd's json-file reader, tail takes the last lines of the log whatever their stream
    or time; the streams and since/until asked for then choose among them."""
    filt = _Filter(opts)
    records: deque | list = deque(maxlen=opts.tail) if opts.tail is not None else []
    offset, inode = 0, None
    for name in _files(path):
        try:
            with open(name, "rb") as f:
                for line in f:
                    if (obj := filt.parse(line)) is not None:
                        records.append(obj)
                if name == path:
                    offset, inode = f.tell(), os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            continue
    if opts.tail == 0:
        records.clear()
    for obj in records:
        if (entry := filt.select(obj)) is not None:
            yield entry
    if opts.follow:
        yield from _follow(path, offset, inode, filt, running)


def _follow(path: str, offset: int, inode: int | None, filt: _Filter,
            running: Callable[[], bool]) -> Iterator[tuple[str, bytes]]:
    pending = b""
    while True:
        alive = running()
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != inode or st.st_size < offset:  # rotated: start the new file from the top
                    inode, offset, pending = st.st_ino, 0, b""
                f.seek(offset)
                data = f.read()
                offset += len(data)
        except FileNotFoundError:
            data = b""
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if (entry := filt.entry(line)) is not None:
                yield entry
        if filt.until and time.time_ns() > filt.until:
            return
        if not alive and not data:
            return
        if not data:
            time.sleep(POLL_INTERVAL)
