"""The userland proxy on its own, over real loopback sockets: its splice loop (the C extension)
and its threaded fallback relay bytes both ways with half-closes, many connections at once, close
clients whose container does not answer, and leak no descriptor."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from dockyard.network.ports import PortAllocator
from dockyard.network.proxy import SPLICED, Proxy

MODES = [pytest.param(True, id="spliced", marks=pytest.mark.skipif(not SPLICED, reason="_splice not built")),
         pytest.param(False, id="threads")]


class Echo:
    """A TCP server on 127.0.0.1 answering each connection with what it reads, then EOF."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.address = self.sock.getsockname()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


@pytest.fixture
def published(request: pytest.FixtureRequest, echo: Echo) -> Iterator[tuple[tuple[str, int], Proxy]]:
    """A reserved 127.0.0.1 port proxied to the echo server; the proxy's mode is the test's parameter."""
    ports = PortAllocator()
    ip, port, sock = ports.reserve("tcp", "127.0.0.1", "")
    proxy = Proxy(sock, "tcp", echo.address, spliced=request.param)
    yield (ip, port), proxy
    proxy.close()
    ports.release("tcp", ip, port)


def exchange(address: tuple[str, int], payload: bytes) -> bytes:
    """Send payload, half-close, and read everything back."""
    with socket.create_connection(address, timeout=10) as client:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        got = bytearray()
        while data := client.recv(1 << 16):
            got += data
        return bytes(got)


@pytest.mark.parametrize("published", MODES, indirect=True)
def test_bulk_both_ways_with_half_close(published: tuple[tuple[str, int], Proxy]) -> None:
    payload = os.urandom(8 << 20)
    assert exchange(published[0], payload) == payload


@pytest.mark.parametrize("published", MODES, indirect=True)
def test_many_connections_at_once(published: tuple[tuple[str, int], Proxy]) -> None:
    results: dict[int, bytes] = {}

    def one(n: int) -> None:
        results[n] = exchange(published[0], b"%d:" % n * (1000 + n))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {n: b"%d:" % n * (1000 + n) for n in range(64)}


@pytest.mark.parametrize("spliced", MODES)
def test_unreachable_upstream_closes_the_client(spliced: bool) -> None:
    with socket.socket() as dead:  # a port nothing listens on
        dead.bind(("127.0.0.1", 0))
        target = dead.getsockname()
        ports = PortAllocator()
        ip, port, sock = ports.reserve("tcp", "127.0.0.1", "")
        proxy = Proxy(sock, "tcp", target, spliced=spliced)
        try:
            with socket.create_connection((ip, port), timeout=10) as client:
                assert client.recv(10) == b""  # closed, not left hanging
        except ConnectionResetError:
            pass
        finally:
            proxy.close()
            ports.release("tcp", ip, port)


@pytest.mark.skipif(not SPLICED, reason="_splice not built")
@pytest.mark.parametrize("published", MODES[:1], indirect=True)
def test_close_ends_relayed_connections_and_leaks_nothing(published: tuple[tuple[str, int], Proxy]) -> None:
    address, proxy = published
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        assert exchange(address, b"x") == b"x"
    client = socket.create_connection(address, timeout=10)
    client.sendall(b"ping")
    assert client.recv(4) == b"ping"
    deadline = time.monotonic() + 5
    live = 8  # the client, the proxy's two sockets and two pipes, the echo server's socket
    while len(os.listdir("/proc/self/fd")) > before + live and time.monotonic() < deadline:
        time.sleep(0.01)  # the echo server's side of the last exchanges may still be closing
    assert len(os.listdir("/proc/self/fd")) == before + live
    proxy.close()
    assert client.recv(4) == b""
    client.close()
    deadline = time.monotonic() + 5
    while len(os.listdir("/proc/self/fd")) > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(os.listdir("/proc/self/fd")) <= before


@pytest.mark.parametrize("spliced", MODES)
def test_the_container_may_speak_first(spliced: bool) -> None:
    """A server that greets on accept (SSH, SMTP, MySQL): the greeting reaches a client that waits
    for it before sending anything."""
    server = socket.create_server(("127.0.0.1", 0))

    def greet() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"220 hello\r\n")
            conn.sendall(conn.recv(100).upper())

    thread = threading.Thread(target=greet)
    thread.start()
    ports = PortAllocator()
    ip, port, sock = ports.reserve("tcp", "127.0.0.1", "")
    proxy = Proxy(sock, "tcp", server.getsockname(), spliced=spliced)
    try:
        with socket.create_connection((ip, port), timeout=10) as client:
            assert client.recv(100) == b"220 hello\r\n"
            client.sendall(b"quit")
            assert client.recv(100) == b"QUIT"
    finally:
        thread.join(10)
        proxy.close()
        ports.release("tcp", ip, port)
        server.close()
