"""The userland proxy: it serves a reserved host port and copies bytes to the container's address,
for what kernel NAT does not divert (127.0.0.1 with the userland proxy on, as in Docker's default
configuration; [::1]; everything with --iptables=false). TCP: one epoll loop per port relaying
every connection with splice(2) in the C extension `_splice`, off the GIL (without it, a pair of
threads per connection, splicing); UDP: one upstream socket per client address, dropped after a
minute of silence."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time

try:
    from dockyard.network import _splice
except ImportError:  # not built (no compiler): the threads relay
    _splice = None

UDP_IDLE = 60.0
BUFFER = 1 << 16
F_SETPIPE_SZ = 1031
SPLICED = _splice is not None


class Proxy:
    """Serves one bound socket, forwarding to (ip, port) until close()."""

    def __init__(self, sock: socket.socket, proto: str, target: tuple[str, int], spliced: bool = SPLICED) -> None:
        self.sock, self.proto, self.target = sock, proto, target
        self._closed = threading.Event()
        self._stop = -1  # the eventfd that ends the splice loop
        if proto == "tcp":
            sock.listen(socket.SOMAXCONN)  # as docker-proxy: bursts of connects are not dropped
        if proto == "tcp" and spliced:
            self._stop = os.eventfd(0, os.EFD_CLOEXEC)
            serve = self._splice
        else:
            serve = self._tcp if proto == "tcp" else self._udp
        self._thread = threading.Thread(target=serve, name=f"proxy-{sock.getsockname()[1]}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving (the splice loop also closes the connections it relays; the threads'
        finish theirs). The socket stays open: its owner releases it. A second call does nothing."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._stop >= 0:
            os.eventfd_write(self._stop, 1)
        else:
            with contextlib.suppress(OSError):  # wakes the blocked accept/recvfrom (UDP: then ENOTCONN)
                self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join()
        if self._stop >= 0:
            os.close(self._stop)

    def _splice(self) -> None:
        ip, port = self.target
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        _splice.serve_tcp(self.sock.fileno(), family, ip, port, self._stop)

    def _tcp(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        client.settimeout(None)
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        replies = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        replies.start()
        _pipe(client, upstream)
        replies.join()
        client.close()
        upstream.close()

    def _udp(self) -> None:
        peers: dict[tuple[str, int], tuple[socket.socket, list[float]]] = {}
        while not self._closed.is_set():
            try:
                data, addr = self.sock.recvfrom(BUFFER)
            except OSError:
                break
            if self._closed.is_set():
                break
            now = time.monotonic()
            for key, (upstream, seen) in list(peers.items()):
                if now - seen[0] > UDP_IDLE:
                    _close(upstream)
                    del peers[key]
            if addr not in peers:
                upstream = socket.socket(socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET, socket.SOCK_DGRAM)
                upstream.connect(self.target)
                peers[addr] = (upstream, [now])
                threading.Thread(target=self._udp_replies, args=(upstream, addr), daemon=True).start()
            upstream, seen = peers[addr]
            seen[0] = now
            with contextlib.suppress(OSError):
                upstream.send(data)
        for upstream, _ in peers.values():
            _close(upstream)

    def _udp_replies(self, upstream: socket.socket, addr: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(BUFFER):
                self.sock.sendto(data, addr)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy src → dst until EOF (through a pipe with splice(2): no copy to user space), then
    half-close dst."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, F_SETPIPE_SZ, BUFFER * 16)
        with contextlib.suppress(OSError):
            while size := os.splice(src.fileno(), write_end, BUFFER * 16):
                while size:
                    size -= os.splice(read_end, dst.fileno(), size)
    finally:
        os.close(read_end)
        os.close(write_end)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _close(sock: socket.socket) -> None:
    """Close a socket another thread may be blocked reading (shutdown wakes it first)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
