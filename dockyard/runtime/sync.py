"""The message channel between the runtime and the processes it forks (JSON, one per line)."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from dockyard.runtime.errors import RuntimeFailure


class SyncChannel:
    """One end of a socketpair carrying small JSON messages."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple[SyncChannel, SyncChannel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(a), cls(b)

    def send(self, kind: str, **fields: Any) -> None:
        fields["type"] = kind
        self.sock.sendall(json.dumps(fields).encode() + b"\n")

    def recv(self) -> dict[str, Any]:
        """Next message; a closed peer reads as {'type': 'eof'}."""
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return {"type": "eof"}
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def expect(self, kind: str) -> dict[str, Any]:
        """Receive the next message; it must be `kind`, an error message is raised as one."""
        msg = self.recv()
        if msg["type"] == "error":
            raise RuntimeFailure(msg["message"])
        if msg["type"] != kind:
            raise RuntimeFailure(f"container process ended during set-up (expected {kind}, got {msg['type']})")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def report_and_exit(channel: SyncChannel, exc: BaseException) -> None:
    """In a forked child: send the failure to the runtime and leave without cleanup handlers."""
    msg = str(exc) if isinstance(exc, RuntimeFailure) else f"{type(exc).__name__}: {exc}"
    try:
        channel.send("error", message=msg)
    finally:
        os._exit(1)
