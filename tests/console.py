"""Test support: a console socket server (like runc's recvtty) that receives a pty master."""

from __future__ import annotations

import os
import select
import socket
import time
from pathlib import Path


class ConsoleServer:
    """Listen on a unix socket; the runtime connects and sends the pty master with SCM_RIGHTS."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.master: int | None = None

    def receive(self, timeout: float = 10) -> int:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        assert fds, "no fd received on the console socket"
        self.master = fds[0]
        return self.master

    def read_until_eof(self, timeout: float = 10) -> bytes:
        assert self.master is not None
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every slave end is closed
                break
            if not chunk:
                break
            out += chunk
        return out

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
        self.sock.close()
