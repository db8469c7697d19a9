"""A small HTTP/1.1 client over unix or TCP sockets (stdlib only): one request per connection,
Content-Length, chunked and read-to-close bodies, streamed JSON, and connection hijack for
attach/exec with Docker's 8-byte stream frames.

Every CLI command starts here, so it imports little: the _socket and _json C modules instead
of socket (enum, selectors) and json (re), which cost ~10 ms of a command's start on a small VM."""

from __future__ import annotations

import _socket

from dockyard.runtime import jsonfast as json

TYPE_CHECKING = False  # typing costs 5 ms to import; annotations only
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any


DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
CHUNK = 64 * 1024


class ConnectError(OSError):
    """The daemon's socket cannot be reached."""


def split_host(host: str) -> tuple[int, str | tuple[str, int]]:
    """'unix:///path' / 'tcp://h:p' / 'h:p' → (address family, address)."""
    if host.startswith("unix://"):
        return _socket.AF_UNIX, host[len("unix://"):]
    rest = host.removeprefix("tcp://").removeprefix("http://").rstrip("/")
    name, _, port = rest.rpartition(":")
    if not name:
        name, port = rest, "2375"
    return _socket.AF_INET6 if name.startswith("[") else _socket.AF_INET, (name.strip("[]"), int(port))


class TLSOptions:
    """The client's TLS settings (docker's --tls, --tlsverify, --tlscacert, --tlscert, --tlskey)
    for tcp:// hosts; a context is made on first use (ssl is imported only then)."""

    def __init__(self, verify: bool, cacert: str | None, cert: str | None, key: str | None) -> None:
        self.verify, self.cacert, self.cert, self.key = verify, cacert, cert, key
        self._context: Any = None

    def context(self) -> Any:
        if self._context is None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self.verify and self.cacert:
                ctx.load_verify_locations(self.cacert)
            elif self.verify:
                ctx.load_default_certs()
            else:  # --tls alone: encrypted, the server not verified (as docker)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.cert and self.key:
                ctx.load_cert_chain(self.cert, self.key)
            self._context = ctx
        return self._context


tls: TLSOptions | None = None  # set once by the command line for the process's daemon


def connect(host: str, timeout: float | None = None) -> _socket.socket:
    """An open stream socket to host (close-on-exec; TLS for a TCP host when `tls` is set);
    ConnectError if nothing listens there or the TLS handshake fails."""
    family, address = split_host(host)
    if tls is not None and family != _socket.AF_UNIX:
        return _connect_tls(address, timeout)  # type: ignore[arg-type]
    sock = _socket.socket(family, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except OSError as exc:
        sock.close()
        raise ConnectError(exc.errno, str(exc)) from None
    return sock


def _connect_tls(address: tuple[str, int], timeout: float | None) -> Any:
    import socket
    import ssl

    assert tls is not None
    try:
        raw = socket.create_connection(address, timeout)
    except OSError as exc:
        raise ConnectError(exc.errno, str(exc)) from None
    try:
        return tls.context().wrap_socket(raw, server_hostname=address[0])
    except (OSError, ssl.SSLError) as exc:
        raw.close()
        raise ConnectError(0, f"TLS handshake with {address[0]}:{address[1]} failed: {exc}") from None


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(text: str, safe: str = "") -> str:
    """Percent-encode all but unreserved and safe characters (urllib.parse costs 4 ms to import)."""
    keep = _UNRESERVED | frozenset(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in str(text).encode())


def urlencode(pairs: dict[str, Any]) -> str:
    """k=v&... with list values repeated (urlencode with doseq)."""
    return "&".join(f"{quote(k)}={quote(item)}" for k, v in pairs.items()
                    for item in (v if isinstance(v, list) else [v]))


def url(path: str, query: dict[str, Any] | None = None) -> str:
    """A request target: path (quoted, '/' and ':' kept) plus a query of the non-None values
    (dicts as JSON, lists as repeated parameters)."""
    target = quote(path, safe="/:@")
    if query:
        pairs = {k: (json.dumps(v, compact=True) if isinstance(v, dict) else v)
                 for k, v in query.items() if v is not None}
        if pairs:
            target += "?" + urlencode(pairs)
    return target


class SocketReader:
    """Buffered reads from a socket (what socket.makefile("rb") gives, without importing socket)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._eof = False

    def _fill(self, size: int = CHUNK) -> bool:
        if self._eof:
            return False
        data = self._sock.recv(size)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def readline(self, limit: int = -1) -> bytes:
        """Up to and including the next newline (at most limit bytes; b"" at the end)."""
        start = 0
        while (end := self._buf.find(b"\n", start)) < 0:
            if 0 <= limit <= len(self._buf):
                break
            start = len(self._buf)
            if not self._fill():
                break
        size = end + 1 if end >= 0 else len(self._buf)
        if limit >= 0:
            size = min(size, limit)
        line = bytes(self._buf[:size])
        del self._buf[:size]
        return line

    def read(self, size: int) -> bytes:
        """Exactly size bytes, fewer only at the end of the stream."""
        while len(self._buf) < size and self._fill(max(CHUNK, size - len(self._buf))):
            pass
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def read1(self, size: int) -> bytes:
        """What is buffered or arrives with one receive, at most size bytes."""
        if not self._buf:
            self._fill(size)
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def close(self) -> None:
        self._buf.clear()


class Response:
    """A response read from a socket: status, lower-cased headers, then the body on demand."""

    def __init__(self, sock: _socket.socket, method: str) -> None:
        self.sock = sock
        self.file = SocketReader(sock)
        line = self.file.readline(65537).decode("latin-1")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectError(0, f"malformed HTTP response {line!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while (header := self.file.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "")
        self._pieces: Iterator[bytes] | None = None
        self._buffer = bytearray()
        no_body = method == "HEAD" or self.status in (204, 304)
        self._left: int | None = 0 if no_body else (  # a 101 (hijack) reads to the end
            None if self._chunked or "content-length" not in self.headers else int(self.headers["content-length"]))

    def iter_raw(self) -> Iterator[bytes]:
        """The body in pieces as they arrive (de-chunked)."""
        if self._chunked:
            while True:
                size = int(self.file.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = self.file.read(size)
                self.file.readline(3)
                if not data:
                    return
                yield data
        while self._left is None or self._left > 0:
            data = self.file.read1(CHUNK if self._left is None else min(CHUNK, self._left))
            if not data:
                return
            if self._left is not None:
                self._left -= len(data)
            yield data

    def read(self) -> bytes:
        return b"".join(self.iter_raw())

    def read_exact(self, size: int) -> bytes:
        """Up to size body bytes (fewer only at the end of the body)."""
        if self._pieces is None:
            self._pieces = self.iter_raw()
        while len(self._buffer) < size:
            piece = next(self._pieces, b"")
            if not piece:
                break
            self._buffer += piece
        data, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        return data

    def json(self) -> Any:
        return json.loads(self.read() or b"null")

    def iter_json(self) -> Iterator[Any]:
        """JSON values streamed one after another (lines, or values split across chunks)."""
        buf = ""
        for data in self.iter_raw():
            buf += data.decode("utf-8", "replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    value, end = json.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                yield value

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def request(host: str, method: str, target: str, body: bytes | Iterable[bytes] | None = None,
            headers: dict[str, str] | None = None, timeout: float | None = None) -> Response:
    """Send one request on a fresh connection and read the status line and headers."""
    sock = connect(host, timeout)
    try:
        head = {"Host": "api.moby.localhost", "User-Agent": "dockyard-client"}
        head.update(headers or {})
        if isinstance(body, bytes):
            head["Content-Length"] = str(len(body))
        elif body is not None:
            head["Transfer-Encoding"] = "chunked"
        elif method in ("POST", "PUT"):
            head["Content-Length"] = "0"
        lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if isinstance(body, bytes):
            sock.sendall(body)
        elif body is not None:
            for piece in body:
                if piece:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        return Response(sock, method)
    except BaseException:
        sock.close()
        raise


def demux(resp: Response) -> Iterator[tuple[int, bytes]]:
    """(stream, bytes) from a hijacked connection in Docker's multiplexed format
    (8-byte header: stream id, 3 zero bytes, big-endian length)."""
    read = resp.read_exact
    while len(header := read(8)) == 8:
        size = int.from_bytes(header[4:8], "big")
        data = read(size) if size else b""
        yield header[0], data


def raw_stream(resp: Response) -> Iterator[tuple[int, bytes]]:
    """(1, bytes) from a hijacked tty connection: the raw output as it arrives."""
    for data in resp.iter_raw():
        yield 1, data
