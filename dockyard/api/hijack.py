"""Hijacked connections (attach, exec start): after Docker's upgrade answer the HTTP connection
carries raw bytes both ways.

The client's `Connection: Upgrade` + `Upgrade: tcp` gets dockerd's `101 UPGRADED` with exactly
Content-Type, Connection and Upgrade; a client that did not ask gets `200 OK` with the raw-stream
content type. The head is written straight onto the transport, which is then moved to a plain
asyncio stream protocol, so aiohttp parses nothing more on it. A half-close by the client (its
stdin ended) ends the reader but keeps the connection open for output."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import struct
import termios
import time
from collections.abc import AsyncIterator

from aiohttp import web

from dockyard.api.server import long_poll

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def _wants_upgrade(request: web.Request) -> bool:
    connection = {v.strip().lower() for v in request.headers.get("Connection", "").split(",")}
    return "upgrade" in connection and request.headers.get("Upgrade", "").lower() == "tcp"


def _head(upgrade: bool) -> bytes:
    if upgrade:
        return (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {RAW_STREAM}\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n").encode()
    return f"HTTP/1.1 200 OK\r\nContent-Type: {RAW_STREAM}\r\nConnection: close\r\n\r\n".encode()


class _Protocol(asyncio.StreamReaderProtocol):
    """The stream protocol that takes over the transport; tells aiohttp's protocol once the
    connection is gone, so the server forgets it."""

    def __init__(self, reader: asyncio.StreamReader, previous: asyncio.BaseProtocol) -> None:
        super().__init__(reader)
        self._previous = previous

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._previous.connection_lost(exc)


@contextlib.asynccontextmanager
async def hijack(request: web.Request,
                 head_first: bool = False) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Answer request with the upgrade head and yield the connection as (reader, writer);
    the connection is closed when the block ends. The handler then returns `done()`. With
    head_first (attach: output may be there at once), yield once the client has read the head."""
    await request.read()  # the request body (exec start's options) is consumed already
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client went away")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2 ** 20)
    protocol = _Protocol(reader, transport.get_protocol())
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    writer.write(_head(_wants_upgrade(request)))
    try:
        with long_poll(request):
            if head_first:
                await _head_read(transport)
            yield reader, writer
            with contextlib.suppress(ConnectionError):
                await writer.drain()
    finally:
        writer.close()


async def _head_read(transport: asyncio.BaseTransport, limit: float = 0.2) -> None:
    """Wait (up to limit seconds) until the client has read the answer's head: docker-py reads
    the head through a buffered file, then the raw socket, so stream bytes that arrived with the
    head would be lost to it (attach's log replay comes at once). On a unix socket the send queue
    (SIOCOUTQ) empties only as the peer reads; on TCP, as it acknowledges."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            return
        if queued == 0 and not transport.get_write_buffer_size():  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.0005)


def done() -> web.StreamResponse:
    """What a hijacking handler returns: aiohttp sends nothing on the taken-over connection."""
    response = web.Response(status=101)
    response.force_close()
    return response
