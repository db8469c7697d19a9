"""The message channel between the runtime and the processes it forks.

Two pipes (one per direction) carrying length-prefixed marshal records: both ends are the
same program, and neither pipes nor marshal cost an import at start-up."""

from __future__ import annotations

import marshal

from dockyard.runtime import oslite as os
from dockyard.runtime.errors import RuntimeFailure

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any


class SyncChannel:
    """One end: reads from one pipe, writes to the other."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.turn_fd = -1  # a pipe whose writers must all be gone before this end speaks first

    def _wait_turn(self) -> None:
        fd, self.turn_fd = self.turn_fd, -1
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)

    @classmethod
    def pair(cls) -> tuple[SyncChannel, SyncChannel]:
        """(runtime end, child end)."""
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        return cls(up_r, down_w), cls(down_r, up_w)

    def send(self, kind: str, **fields: Any) -> None:
        if self.turn_fd >= 0:
            self._wait_turn()
        fields["type"] = kind
        data = marshal.dumps(fields)
        data = len(data).to_bytes(4, "little") + data
        try:
            while data:
                data = data[os.write(self.wfd, data):]
        except BrokenPipeError:
            self._raise_peer_failure(kind)

    def _raise_peer_failure(self, kind: str) -> None:
        """The peer is gone: raise the error it reported before it went, if it did."""
        while (msg := self.recv())["type"] != "eof":
            if msg["type"] == "error":
                raise RuntimeFailure(msg["message"])
        raise RuntimeFailure(f"container process ended during set-up (sending {kind})")

    def _read_exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = os.read(self.rfd, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv(self) -> dict[str, Any]:
        """Next message; a closed peer reads as {'type': 'eof'}."""
        head = self._read_exact(4)
        body = self._read_exact(int.from_bytes(head, "little")) if head else None
        return marshal.loads(body) if body is not None else {"type": "eof"}

    def expect(self, kind: str) -> dict[str, Any]:
        """Receive the next message; it must be `kind`, an error message is raised as one."""
        msg = self.recv()
        if msg["type"] == "error":
            raise RuntimeFailure(msg["message"])
        if msg["type"] != kind:
            raise RuntimeFailure(f"container process ended during set-up (expected {kind}, got {msg['type']})")
        return msg

    def close(self) -> None:
        for fd in (self.rfd, self.wfd, self.turn_fd):
            if fd < 0:
                continue
            try:
                os.close(fd)
            except OSError:
                pass
        self.rfd = self.wfd = self.turn_fd = -1


def report_and_exit(channel: SyncChannel, exc: BaseException) -> None:
    """In a forked child: send the failure to the runtime and leave without cleanup handlers."""
    msg = str(exc) if isinstance(exc, RuntimeFailure) else f"{type(exc).__name__}: {exc}"
    try:
        channel.send("error", message=msg)
    finally:
        os._exit(1)
