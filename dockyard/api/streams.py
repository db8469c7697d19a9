"""Moving bytes between the event loop and worker threads without buffering whole bodies.

A worker thread reads an upload through `BodyReader` (each read waits for the next chunk of the
request body on the loop: aiohttp's flow control bounds what is buffered) and writes a streamed
response through `response_writer` (each write waits until the loop has handed the bytes to the
transport, so a slow client slows the producer instead of filling memory)."""

from __future__ import annotations

import asyncio
import io

from aiohttp import StreamReader, web

WRITE_BUFFER = 256 * 1024


class BodyReader(io.RawIOBase):
    """A blocking, read-only file over a request body, for use in a worker thread."""

    def __init__(self, content: StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        self._content = content
        self._loop = loop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        data = asyncio.run_coroutine_threadsafe(self._content.read(len(view)), self._loop).result()
        view[:len(data)] = data
        return len(data)


class _ResponseSink(io.RawIOBase):
    """Raw writes of a worker thread onto a prepared StreamResponse."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._response = response
        self._loop = loop

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        chunk = bytes(data)
        asyncio.run_coroutine_threadsafe(self._response.write(chunk), self._loop).result()
        return len(chunk)


def response_writer(response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> io.BufferedWriter:
    """A buffered binary file that a worker thread writes a streamed response through."""
    return io.BufferedWriter(_ResponseSink(response, loop), buffer_size=WRITE_BUFFER)


def body_file(request: web.Request) -> io.BufferedReader:
    """The request body as a buffered binary file for a worker thread."""
    return io.BufferedReader(BodyReader(request.content, asyncio.get_running_loop()), buffer_size=WRITE_BUFFER)


async def drain(request: web.Request) -> None:
    """Read and drop what is left of a request body (before answering an error to an upload)."""
    while await request.content.read(WRITE_BUFFER):
        pass
