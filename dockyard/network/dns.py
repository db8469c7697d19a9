"""The embedded DNS server of user-defined networks (Docker's 127.0.0.11).

One `EmbeddedDNS` serves every attached sandbox (network namespace): UDP and TCP sockets bound to
127.0.0.11:53 inside each namespace, all polled by a single server thread. Names the caller knows
(container names, aliases, short ids) are answered locally with TTL 600; PTR queries for their
addresses too; everything else is relayed byte for byte to the upstream resolvers, from the
daemon's own network namespace, with non-blocking sockets so a slow upstream never delays other
answers. Behaviour follows dockerd's resolver (libnetwork): AAAA answers a known name's IPv6
addresses on dual-stack networks; AAAA of a name without one, and MX, get an empty NOERROR reply, upstreams are tried in order (at most three, 4 s each, SERVFAIL / REFUSED /
non-authoritative NXDOMAIN move on to the next), and a query nobody answered gets SERVFAIL.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import heapq
import ipaddress
import itertools
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LISTEN_ADDR = "127.0.0.11"
DNS_PORT = 53
TTL = 600
UPSTREAM_TIMEOUT = 4.0  # libnetwork's extIOTimeout, per upstream
MAX_UPSTREAMS = 3  # libnetwork's maxExtDNS
MAX_FORWARDS = 1024  # libnetwork's maxConcurrent
TCP_IDLE_TIMEOUT = 8.0
UDP_MIN_SIZE = 512
TCP_MAX_SIZE = 65535
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH14x"
_RCODE_SERVFAIL, _RCODE_NXDOMAIN, _RCODE_REFUSED = 2, 3, 5
_FLAG_QR, _FLAG_AA, _FLAG_TC, _FLAG_RD, _FLAG_RA, _FLAG_CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0010
_OPCODE_MASK = 0x7800
_TYPE_A, _TYPE_PTR, _TYPE_MX, _TYPE_AAAA, _TYPE_OPT = 1, 12, 15, 28, 41
_HEADER = struct.Struct("!6H")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength

Resolve = Callable[[str, str, int], "list[str] | None"]  # (key, name, IP version) -> addresses
Reverse = Callable[[str, str], "str | None"]
Address = tuple[str, int]
Reply = Callable[[bytes], None]

_libc = ctypes.CDLL(None, use_errno=True)


def parse_upstream(spec: str) -> Address:
    """'ip', 'ip:port', '[v6]:port' or a bare IPv6 address -> (ip, port)."""
    try:
        return str(ipaddress.ip_address(spec)), DNS_PORT
    except ValueError:
        pass
    host, sep, port = spec.rpartition(":")
    if not sep:
        raise ValueError(f"invalid DNS server address {spec!r}")
    return str(ipaddress.ip_address(host.strip("[]"))), int(port)


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    """The nameservers of a resolv.conf, without the embedded server's own address."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    servers = []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and words[1] != LISTEN_ADDR:
            servers.append(words[1].split("%")[0])  # drop an IPv6 zone
    return servers


def _setns(fd: int) -> None:
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(_CLONE_NEWNET)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


def _ensure_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _bind_listeners(port: int) -> tuple[socket.socket, socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((LISTEN_ADDR, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((LISTEN_ADDR, port))
        tcp.listen(128)
    except OSError:
        udp.close()
        tcp.close()
        raise
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


def open_listeners(netns_path: str, port: int = DNS_PORT) -> tuple[socket.socket, socket.socket]:
    """Create the UDP and TCP sockets on 127.0.0.11:port inside netns_path (lo brought up).

    The work runs on a short-lived thread that setns(2)s into the namespace and ends; the sockets
    stay in the namespace they were created in."""
    result: list = []

    def enter_and_bind() -> None:
        try:
            with open(netns_path, "rb") as ns:
                _setns(ns.fileno())
            _ensure_loopback_up()
            result.append(_bind_listeners(port))
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    helper = threading.Thread(target=enter_and_bind, name="dns-netns-bind")
    helper.start()
    helper.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _guarded(fn: Callable[..., None], *args: object) -> None:
    """Run one event handler of the server thread: a failure is logged, never fatal to the loop."""
    try:
        fn(*args)
    except Exception:
        log.exception("embedded DNS: handler failed")


def _rcode(message: bytes) -> int:
    return message[3] & 0x0F


def _ptr_address(name: str) -> str | None:
    """'4.3.2.1.in-addr.arpa' -> '1.2.3.4' (and ip6.arpa nibbles), else None."""
    try:
        if name.endswith(".in-addr.arpa"):
            parts = name[: -len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        elif name.endswith(".ip6.arpa"):
            nibbles = name[: -len(".ip6.arpa")].split(".")
            if len(nibbles) == 32 and all(len(n) == 1 for n in nibbles):
                return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    except ValueError:
        pass
    return None


@dataclass(frozen=True)
class Query:
    """What the server needs of a query message: parsed by hand, as dnslib costs ~80 us a query."""

    id: int
    flags: int
    name: str  # the first question's name, lowercase, no trailing dot ("" if not a plain name)
    qtype: int
    question: bytes  # the first question as sent (name, type, class): copied into replies
    udp_limit: int  # the largest UDP reply the client accepts (512, or its EDNS0 size)


def parse_query(data: bytes) -> Query | None:
    """Parse a query message; None if it is malformed, a response, or has no question."""
    if len(data) < 12:
        return None
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & _FLAG_QR or qdcount == 0:
        return None
    labels, pos = [], 12
    while True:
        if pos >= len(data) or data[pos] > 63:  # compression pointers have no place in a question
            return None
        size = data[pos]
        if size == 0:
            break
        labels.append(data[pos + 1 : pos + 1 + size])
        pos += 1 + size
    end = pos + 5  # past the root label, type and class
    if end > len(data) or pos + 1 - 12 > 255:  # (a short label ran pos past the end above)
        return None
    qtype = int.from_bytes(data[pos + 1 : pos + 3], "big")
    plain = all(b"." not in label for label in labels)
    name = b".".join(labels).lower().decode("latin-1") if plain else ""  # DNS case is ASCII only
    limit = _edns_udp_size(data, end) if (qdcount, ancount, nscount) == (1, 0, 0) and arcount else UDP_MIN_SIZE
    return Query(ident, flags, name, qtype, data[12:end], limit)


def _edns_udp_size(data: bytes, pos: int) -> int:
    """The UDP size of an OPT record (root owner name) in the additional section starting at pos."""
    while pos + 1 + _RR_FIXED.size <= len(data) and data[pos] == 0:
        rtype, rclass, _ttl, rdlength = _RR_FIXED.unpack_from(data, pos + 1)
        if rtype == _TYPE_OPT:
            return max(UDP_MIN_SIZE, rclass)
        pos += 1 + _RR_FIXED.size + rdlength
    return UDP_MIN_SIZE


def encode_name(name: str) -> bytes | None:
    """A domain name in wire format, or None if it is not a valid ASCII name."""
    labels = name.rstrip(".").split(".")
    try:
        encoded = [label.encode("ascii") for label in labels]
    except UnicodeEncodeError:
        return None
    if not all(0 < len(label) <= 63 for label in encoded):
        return None
    wire = b"".join(bytes([len(label)]) + label for label in encoded) + b"\0"
    return wire if len(wire) <= 255 else None


def build_reply(query: Query, rcode: int = 0, answers: list[tuple[int, bytes]] | None = None,
                limit: int = TCP_MAX_SIZE, truncate_flag: bool = True) -> bytes:
    """A reply as dockerd makes it: the first question, RD/CD and the opcode copied, RA set, not
    authoritative; answers (type, rdata) owned by the question's name with TTL 600. Answers that
    do not fit in limit are dropped from the end, and TC is set if truncate_flag (UDP)."""
    flags = _FLAG_QR | _FLAG_RA | (query.flags & (_OPCODE_MASK | _FLAG_RD | _FLAG_CD)) | rcode
    records: list[bytes] = []
    size = 12 + len(query.question)
    for rtype, rdata in answers or ():
        record = b"\xc0\x0c" + _RR_FIXED.pack(rtype, 1, TTL, len(rdata)) + rdata  # name: pointer to the question
        if size + len(record) > limit:
            flags |= _FLAG_TC if truncate_flag else 0
            break
        records.append(record)
        size += len(record)
    return _HEADER.pack(query.id, flags, 1, len(records), 0, 0) + query.question + b"".join(records)


def servfail(query: Query) -> bytes:
    """A SERVFAIL reply to query."""
    return build_reply(query, _RCODE_SERVFAIL)


@dataclass(eq=False)
class _Sandbox:
    key: str
    netns_path: str
    udp: socket.socket
    tcp: socket.socket
    upstreams: list[Address] | None  # None: the server's upstreams
    clients: set[_TcpClient] = field(default_factory=set)
    closed: bool = False


@dataclass(eq=False)
class _TcpClient:
    sandbox: _Sandbox
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    pending: int = 0
    last_active: float = 0.0
    closed: bool = False


@dataclass(eq=False)
class _Forward:
    """One query relayed to the upstreams in turn, over the client's transport."""

    query: Query
    raw: bytes
    tcp: bool
    upstreams: list[Address]
    reply: Reply
    attempt: int = -1
    sock: socket.socket | None = None
    inbuf: bytearray = field(default_factory=bytearray)
    last_response: bytes | None = None
    done: bool = False


class EmbeddedDNS:
    """Docker's embedded DNS server for many sandboxes, served by one thread."""

    def __init__(self, resolve: Resolve, reverse: Reverse | None = None,
                 upstreams: list[str] | None = None, *, timeout: float = UPSTREAM_TIMEOUT,
                 port: int = DNS_PORT) -> None:
        """resolve(key, name, version) -> the IPv4 or IPv6 addresses of a name seen from sandbox
        key (None: not ours);
        reverse(key, ip) -> the name of an address (None: not ours). Both run on the server thread
        and must not block. upstreams: 'ip' or 'ip:port' (default: the host's resolv.conf);
        timeout: seconds to wait for each upstream."""
        self._resolve = resolve
        self._reverse = reverse
        specs = host_nameservers() if upstreams is None else upstreams
        self._upstreams = [parse_upstream(s) for s in specs][:MAX_UPSTREAMS]
        self._timeout = timeout
        self._port = port
        self._sandboxes: dict[str, _Sandbox] = {}
        self._rotation: dict[tuple[str, str, int], int] = {}
        self._forwarding: set[_Forward] = set()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._tasks: deque[Callable[[], None]] = deque()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeups)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._api_lock = threading.Lock()

    # -- public API ------------------------------------------------------------------------------

    def attach(self, key: str, netns_path: str, *, upstreams: list[str] | None = None) -> None:
        """Serve 127.0.0.11:53 (UDP and TCP) inside the network namespace at netns_path.

        Idempotent for the same key and path; a new path replaces the old sockets. upstreams
        overrides the server's upstreams for this sandbox (a container's --dns); [] never
        forwards (SERVFAIL, as dockerd for a sandbox without external access)."""
        parsed = None if upstreams is None else [parse_upstream(s) for s in upstreams][:MAX_UPSTREAMS]
        with self._api_lock:
            if self._closed:
                raise RuntimeError("EmbeddedDNS is closed")
            current = self._sandboxes.get(key)
            if current is not None and current.netns_path == netns_path:
                current.upstreams = parsed
                return
            udp, tcp = open_listeners(netns_path, self._port)
            sandbox = _Sandbox(key, netns_path, udp, tcp, parsed)
            self._start_thread()
            self._in_loop(lambda: self._add_sandbox(sandbox))

    def detach(self, key: str) -> None:
        """Stop serving sandbox key: its sockets are closed when this returns."""
        with self._api_lock:
            if key in self._sandboxes:
                self._in_loop(lambda: self._remove_sandbox(key))

    def close(self) -> None:
        """Detach every sandbox and stop the server thread."""
        with self._api_lock:
            if self._closed:
                return
            self._closed = True
            self._in_loop(self._shutdown)
            if self._thread is not None:
                self._thread.join()
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    # -- the server thread -------------------------------------------------------------------------

    def _start_thread(self) -> None:
        if self._thread is None:  # started from the caller's thread: it stays in the host namespace
            self._thread = threading.Thread(target=self._serve, name="embedded-dns", daemon=True)
            self._thread.start()

    def _in_loop(self, task: Callable[[], None]) -> None:
        """Run task on the server thread (directly if it is not running, or is this thread)."""
        if self._thread is None or not self._thread.is_alive() or self._thread is threading.current_thread():
            task()
            return
        done = threading.Event()
        failure: list[BaseException] = []

        def wrapped() -> None:
            try:
                task()
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.set()

        self._tasks.append(wrapped)
        os.write(self._wake_w, b"\0")
        done.wait()
        if failure:
            raise failure[0]

    def _serve(self) -> None:
        while not self._stopping:
            for key, mask in self._selector.select(self._next_timeout()):
                _guarded(key.data, mask)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _guarded(heapq.heappop(self._timers)[2])

    def _drain_wakeups(self, _mask: int) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        while self._tasks:
            self._tasks.popleft()()

    def _next_timeout(self) -> float | None:
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - time.monotonic())

    def _call_later(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_seq), callback))

    def _shutdown(self) -> None:
        for key in list(self._sandboxes):
            self._remove_sandbox(key)
        for fwd in self._forwarding:
            fwd.done = True
            self._drop_upstream_socket(fwd)
        self._forwarding.clear()
        self._stopping = True

    def _add_sandbox(self, sandbox: _Sandbox) -> None:
        if sandbox.key in self._sandboxes:
            self._remove_sandbox(sandbox.key)
        self._sandboxes[sandbox.key] = sandbox
        self._selector.register(sandbox.udp, selectors.EVENT_READ, lambda _m: self._on_udp(sandbox))
        self._selector.register(sandbox.tcp, selectors.EVENT_READ, lambda _m: self._on_accept(sandbox))

    def _remove_sandbox(self, key: str) -> None:
        sandbox = self._sandboxes.pop(key)
        sandbox.closed = True
        for client in list(sandbox.clients):
            self._close_client(client)
        for sock in (sandbox.udp, sandbox.tcp):
            self._selector.unregister(sock)
            sock.close()
        for rotation_key in [k for k in self._rotation if k[0] == key]:
            del self._rotation[rotation_key]

    # -- clients -----------------------------------------------------------------------------------

    def _on_udp(self, sandbox: _Sandbox) -> None:
        for _ in range(64):  # a burst, then let the other sockets have a turn
            try:
                data, addr = sandbox.udp.recvfrom(TCP_MAX_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error queued by an earlier reply
                log.debug("embedded DNS: udp receive: %s", exc)
                continue

            def reply(message: bytes, addr: Address = addr) -> None:
                if not sandbox.closed:
                    try:
                        sandbox.udp.sendto(message, addr)
                    except OSError as exc:
                        log.debug("embedded DNS: udp reply to %s: %s", addr, exc)

            self._handle(sandbox, data, False, reply)

    def _on_accept(self, sandbox: _Sandbox) -> None:
        try:
            sock, _addr = sandbox.tcp.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        sock.setblocking(False)
        client = _TcpClient(sandbox, sock, last_active=time.monotonic())
        sandbox.clients.add(client)
        self._selector.register(sock, selectors.EVENT_READ, lambda mask: self._on_client(client, mask))
        self._call_later(TCP_IDLE_TIMEOUT, lambda: self._check_idle(client))

    def _on_client(self, client: _TcpClient, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if mask & selectors.EVENT_READ and not client.closed:
            self._read_client(client)

    def _read_client(self, client: _TcpClient) -> None:
        try:
            data = client.sock.recv(TCP_MAX_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_client(client)
            return
        client.last_active = time.monotonic()
        client.inbuf += data
        while len(client.inbuf) >= 2:
            size = int.from_bytes(client.inbuf[:2], "big")
            if len(client.inbuf) < 2 + size:
                break
            message = bytes(client.inbuf[2 : 2 + size])
            del client.inbuf[: 2 + size]
            client.pending += 1
            if not self._handle(client.sandbox, message, True, lambda answer: self._send_tcp(client, answer)):
                client.pending -= 1

    def _send_tcp(self, client: _TcpClient, message: bytes) -> None:
        client.pending -= 1
        if client.closed:
            return
        client.outbuf += len(message).to_bytes(2, "big") + message
        self._flush(client)

    def _flush(self, client: _TcpClient) -> None:
        try:
            sent = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close_client(client)
            return
        del client.outbuf[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbuf else 0)
        self._selector.modify(client.sock, events, self._selector.get_key(client.sock).data)

    def _check_idle(self, client: _TcpClient) -> None:
        if client.closed:
            return
        idle = time.monotonic() - client.last_active
        if idle >= TCP_IDLE_TIMEOUT and not client.pending and not client.outbuf:
            self._close_client(client)
        else:
            self._call_later(max(0.1, TCP_IDLE_TIMEOUT - idle), lambda: self._check_idle(client))

    def _close_client(self, client: _TcpClient) -> None:
        if client.closed:
            return
        client.closed = True
        client.sandbox.clients.discard(client)
        self._selector.unregister(client.sock)
        client.sock.close()

    # -- queries -----------------------------------------------------------------------------------

    def _handle(self, sandbox: _Sandbox, data: bytes, tcp: bool, reply: Reply) -> bool:
        """Answer one query message locally or by forwarding; False if it was dropped as malformed."""
        query = parse_query(data)
        if query is None:
            log.debug("embedded DNS: malformed query dropped")
            return False
        try:
            answers = self._answer_locally(sandbox.key, query)
        except Exception:  # the caller's resolve/reverse failed: the client still gets an answer
            log.exception("embedded DNS: lookup of %r failed", query.name)
            reply(servfail(query))
            return True
        if answers is not None:
            reply(build_reply(query, 0, answers, TCP_MAX_SIZE if tcp else query.udp_limit, not tcp))
            return True
        upstreams = self._upstreams if sandbox.upstreams is None else sandbox.upstreams
        if not upstreams or len(self._forwarding) >= MAX_FORWARDS:
            reply(servfail(query))
            return True
        fwd = _Forward(query, data, tcp, upstreams, reply)
        self._forwarding.add(fwd)
        self._next_upstream(fwd)
        return True

    def _answer_locally(self, key: str, query: Query) -> list[tuple[int, bytes]] | None:
        """The answer records for a name of ours, None to forward the query."""
        if query.flags & _OPCODE_MASK or not query.name:
            return None
        if query.qtype == _TYPE_PTR:
            return self._answer_ptr(key, query.name)
        if query.qtype not in (_TYPE_A, _TYPE_AAAA, _TYPE_MX):
            return None
        addresses = self._resolve(key, query.name, 6 if query.qtype == _TYPE_AAAA else 4)
        if addresses is None:
            return None
        if query.qtype == _TYPE_MX:  # MX of a known name (or AAAA of one without IPv6): empty NOERROR, as dockerd
            return []
        family = socket.AF_INET if query.qtype == _TYPE_A else socket.AF_INET6
        return [(query.qtype, socket.inet_pton(family, a)) for a in self._rotate(key, query, addresses)]

    def _answer_ptr(self, key: str, name: str) -> list[tuple[int, bytes]] | None:
        address = _ptr_address(name)
        if address is None or self._reverse is None:
            return None
        target = self._reverse(key, address)
        wire = None if target is None else encode_name(target)
        return None if wire is None else [(_TYPE_PTR, wire)]

    def _rotate(self, key: str, query: Query, addresses: list[str]) -> list[str]:
        """Round robin over a name's addresses, per querying container, name and record type."""
        if len(addresses) < 2:
            return addresses
        if len(self._rotation) > 10000:
            self._rotation.clear()
        turn = self._rotation.get((key, query.name, query.qtype), 0)
        self._rotation[(key, query.name, query.qtype)] = turn + 1
        start = turn % len(addresses)
        return addresses[start:] + addresses[:start]

    # -- forwarding --------------------------------------------------------------------------------

    def _next_upstream(self, fwd: _Forward) -> None:
        """Send fwd to its next upstream, or finish it when none is left."""
        self._drop_upstream_socket(fwd)
        fwd.attempt += 1
        if fwd.attempt >= len(fwd.upstreams):
            self._finish(fwd, fwd.last_response or servfail(fwd.query))
            return
        address = fwd.upstreams[fwd.attempt]
        fwd.inbuf.clear()
        attempt = fwd.attempt
        self._call_later(self._timeout, lambda: self._on_timeout(fwd, attempt))
        try:
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            sock = fwd.sock = socket.socket(family, socket.SOCK_STREAM if fwd.tcp else socket.SOCK_DGRAM)
            sock.setblocking(False)
            if fwd.tcp:
                err = sock.connect_ex(address)
                if err not in (0, errno.EINPROGRESS):
                    raise OSError(err, os.strerror(err))
                self._selector.register(sock, selectors.EVENT_WRITE, lambda _m: self._on_connected(fwd))
            else:
                sock.connect(address)
                sock.send(fwd.raw)
                self._selector.register(sock, selectors.EVENT_READ, lambda _m: self._on_upstream_udp(fwd))
        except OSError as exc:
            log.debug("embedded DNS: upstream %s: %s", address, exc)
            self._next_upstream(fwd)

    def _on_timeout(self, fwd: _Forward, attempt: int) -> None:
        if not fwd.done and fwd.attempt == attempt:
            log.debug("embedded DNS: upstream %s timed out", fwd.upstreams[attempt])
            self._next_upstream(fwd)

    def _on_upstream_udp(self, fwd: _Forward) -> None:
        assert fwd.sock is not None
        try:
            response = fwd.sock.recv(TCP_MAX_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ECONNREFUSED: nothing listens there
            log.debug("embedded DNS: upstream %s: %s", fwd.upstreams[fwd.attempt], exc)
            self._next_upstream(fwd)
            return
        if len(response) >= 12 and response[:2] == fwd.raw[:2]:  # else a stray datagram: keep waiting
            self._on_response(fwd, response)

    def _on_connected(self, fwd: _Forward) -> None:
        assert fwd.sock is not None
        err = fwd.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        try:
            if err:
                raise OSError(err, os.strerror(err))
            fwd.sock.sendall(len(fwd.raw).to_bytes(2, "big") + fwd.raw)  # fits the fresh send buffer
        except OSError as exc:
            log.debug("embedded DNS: upstream %s: %s", fwd.upstreams[fwd.attempt], exc)
            self._next_upstream(fwd)
            return
        self._selector.modify(fwd.sock, selectors.EVENT_READ, lambda _m: self._on_upstream_tcp(fwd))

    def _on_upstream_tcp(self, fwd: _Forward) -> None:
        assert fwd.sock is not None
        try:
            data = fwd.sock.recv(TCP_MAX_SIZE + 2)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._next_upstream(fwd)
            return
        fwd.inbuf += data
        if len(fwd.inbuf) >= 2 and len(fwd.inbuf) >= 2 + int.from_bytes(fwd.inbuf[:2], "big"):
            response = bytes(fwd.inbuf[2 : 2 + int.from_bytes(fwd.inbuf[:2], "big")])
            if len(response) >= 12 and response[:2] == fwd.raw[:2]:
                self._on_response(fwd, response)
            else:
                self._next_upstream(fwd)

    def _on_response(self, fwd: _Forward, response: bytes) -> None:
        """Relay a good answer unmodified; on SERVFAIL, REFUSED or a non-authoritative NXDOMAIN
        try the next upstream (the last such answer is relayed if no upstream does better)."""
        rcode = _rcode(response)
        authoritative = int.from_bytes(response[2:4], "big") & _FLAG_AA
        if rcode in (_RCODE_SERVFAIL, _RCODE_REFUSED) or (rcode == _RCODE_NXDOMAIN and not authoritative):
            fwd.last_response = response
            self._next_upstream(fwd)
        else:
            self._finish(fwd, response)

    def _finish(self, fwd: _Forward, response: bytes) -> None:
        self._drop_upstream_socket(fwd)
        fwd.done = True
        self._forwarding.discard(fwd)
        fwd.reply(response)

    def _drop_upstream_socket(self, fwd: _Forward) -> None:
        if fwd.sock is not None:
            try:
                self._selector.unregister(fwd.sock)
            except KeyError:  # failed before it was registered
                pass
            fwd.sock.close()
            fwd.sock = None
