"""The embedded DNS server (dockyard.network.dns) against the real kernel: network namespaces made
with `ip netns`, queries sent from inside them (busybox nslookup, dnslib over sockets created in the
namespace), and a small upstream DNS server on the host's loopback."""

from __future__ import annotations

import itertools
import os
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from dockyard.network.dns import TTL, EmbeddedDNS, host_nameservers, parse_upstream
from dockyard.runtime.syscalls import CLONE_NEWNET, setns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

NAMES = {"web": ["10.0.0.2"], "db": ["10.0.0.3"], "pool": ["10.0.1.1", "10.0.1.2", "10.0.1.3"]}
NAMES6 = {"web": ["fd00::2"], "db": [], "pool": ["fd00::11", "fd00::12"]}  # db: IPv4 only
ADDRESSES = {"10.0.0.2": "web.mynet", "10.0.0.3": "db.mynet", "fd00::2": "web6.mynet"}
_counter = itertools.count()


# -- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace (lo down, as the kernel makes it), removed afterwards."""
    name = f"dy-dns-{os.getpid()}-{next(_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Upstream:
    """A DNS server on 127.0.0.1 (UDP and TCP, same port) run by `answer(query) -> reply | None`."""

    def __init__(self, answer: Callable[[DNSRecord, bool], bytes | None]) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        while True:  # a port free for both (a client's connection in TIME_WAIT can hold it for TCP)
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen()
        self._stop_r, self._stop_w = socket.socketpair()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            for sock in (self.udp, self.tcp, self._stop_r):
                sel.register(sock, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._stop_r:
                        return
                    if key.fileobj is self.udp:
                        data, addr = self.udp.recvfrom(65535)
                        reply = self._reply(data, False)
                        if reply is not None:
                            self.udp.sendto(reply, addr)
                    else:
                        self._serve_tcp()

    def _serve_tcp(self) -> None:
        conn, _ = self.tcp.accept()
        with conn:
            conn.settimeout(2)
            size = int.from_bytes(_recv_exactly(conn, 2), "big")
            reply = self._reply(_recv_exactly(conn, size), True)
            if reply is not None:
                conn.sendall(len(reply).to_bytes(2, "big") + reply)

    def _reply(self, data: bytes, tcp: bool) -> bytes | None:
        self.received.append(data)
        return self.answer(DNSRecord.parse(data), tcp)

    def close(self) -> None:
        self._stop_w.send(b"x")
        self.thread.join()
        for sock in (self.udp, self.tcp, self._stop_r, self._stop_w):
            sock.close()


def external_answer(query: DNSRecord, tcp: bool) -> bytes | None:
    """ext.test: one A record; big.test: 60 records, truncated (TC) over UDP; anything else NXDOMAIN."""
    name = str(query.q.qname).rstrip(".").lower()
    reply = query.reply()
    if name == "silent.test":
        return None
    if name in ("ext.test", "web.example.com"):
        reply.add_answer(RR(query.q.qname, QTYPE.A, ttl=30, rdata=A("192.0.2.1")))
    elif name == "big.test" and tcp:
        for i in range(60):
            reply.add_answer(RR(query.q.qname, QTYPE.A, ttl=30, rdata=A(f"192.0.2.{i + 1}")))
    elif name == "big.test":
        reply.header.tc = 1
    else:
        reply.header.rcode = RCODE.NXDOMAIN
    return reply.pack()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream(external_answer)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_dns() -> Iterator[Callable[..., EmbeddedDNS]]:
    """EmbeddedDNS factory over NAMES / ADDRESSES (key 'other' sees only 'db'); closed afterwards."""
    servers: list[EmbeddedDNS] = []

    def resolve(key: str, name: str, version: int) -> list[str] | None:
        table = NAMES if version == 4 else NAMES6
        if key == "other":
            return table.get(name) if name == "db" else None
        return table.get(name)

    def make(upstreams: list[str], **kwargs: object) -> EmbeddedDNS:
        server = EmbeddedDNS(resolve, lambda _key, ip: ADDRESSES.get(ip), upstreams, **kwargs)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def dns(make_dns: Callable[..., EmbeddedDNS], upstream: Upstream, netns: str) -> EmbeddedDNS:
    server = make_dns([upstream.address])
    server.attach("c1", netns)
    return server


# -- clients inside the namespace --------------------------------------------------------------------

def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def netns_socket(path: str, kind: int) -> socket.socket:
    """A socket created inside the namespace at path (from a thread that joins it, then ends)."""
    made: list[socket.socket] = []

    def create() -> None:
        with open(path) as ns:
            setns(ns.fileno(), CLONE_NEWNET)
        made.append(socket.socket(socket.AF_INET, kind))

    helper = threading.Thread(target=create)
    helper.start()
    helper.join()
    made[0].settimeout(3)
    return made[0]


def udp_exchange(path: str, message: bytes, timeout: float = 3) -> bytes:
    with netns_socket(path, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.11", 53))  # connected: an ICMP port unreachable is reported
        sock.send(message)
        return sock.recv(65535)


def ask(path: str, name: str, qtype: str = "A") -> DNSRecord:
    return DNSRecord.parse(udp_exchange(path, DNSRecord.question(name, qtype).pack()))


def tcp_exchange(path: str, messages: list[bytes]) -> list[bytes]:
    """Send messages pipelined on one TCP connection, return the replies in order."""
    with netns_socket(path, socket.SOCK_STREAM) as sock:
        sock.connect(("127.0.0.11", 53))
        sock.sendall(b"".join(len(m).to_bytes(2, "big") + m for m in messages))
        return [_recv_exactly(sock, int.from_bytes(_recv_exactly(sock, 2), "big")) for _ in messages]


def nslookup(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", "busybox", "nslookup", *args, "127.0.0.11"],
                          capture_output=True, text=True, timeout=20)


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


# -- local names -------------------------------------------------------------------------------------

def test_busybox_nslookup_resolves_a_container_name_and_lo_is_up(dns: EmbeddedDNS, netns: str) -> None:
    result = nslookup(netns, "web")
    assert result.returncode == 0, result.stderr
    assert "Address: 10.0.0.2" in result.stdout
    link = subprocess.run(["ip", "-n", os.path.basename(netns), "link", "show", "lo"],
                          capture_output=True, text=True, check=True)
    assert ",UP" in link.stdout


def test_names_match_case_insensitively_with_or_without_trailing_dot(dns: EmbeddedDNS, netns: str) -> None:
    for name in ("web", "WeB", "web.", "WEB."):
        reply = ask(netns, name)
        assert reply.header.rcode == RCODE.NOERROR
        assert addresses(reply) == ["10.0.0.2"]
        assert [rr.ttl for rr in reply.rr] == [TTL]
        assert str(reply.rr[0].rname).rstrip(".") == name.rstrip(".")  # the owner name as asked
        assert reply.header.qr and reply.header.ra and not reply.header.aa


def test_round_robin_is_visible_across_queries(dns: EmbeddedDNS, netns: str) -> None:
    answers = [addresses(ask(netns, "pool")) for _ in range(3)]
    assert all(sorted(a) == NAMES["pool"] for a in answers)
    assert len({a[0] for a in answers}) == 3


def test_answers_depend_on_the_sandbox(dns: EmbeddedDNS, netns: str, make_dns: Callable[..., EmbeddedDNS],
                                       upstream: Upstream) -> None:
    other = f"{netns}-peer"
    subprocess.run(["ip", "netns", "add", os.path.basename(other)], check=True)
    try:
        dns.attach("other", other)
        assert addresses(ask(other, "db")) == ["10.0.0.3"]
        assert ask(other, "web").header.rcode == RCODE.NXDOMAIN  # not on its network: forwarded
        assert addresses(ask(netns, "web")) == ["10.0.0.2"]
    finally:
        dns.detach("other")
        subprocess.run(["ip", "netns", "del", os.path.basename(other)], check=False)


def test_aaaa_of_a_name_without_ipv6_and_mx_are_empty_noerror_not_forwarded(dns: EmbeddedDNS, netns: str,
                                                                             upstream: Upstream) -> None:
    for name, qtype in (("db", "AAAA"), ("web", "MX")):
        reply = ask(netns, name, qtype)
        assert reply.header.rcode == RCODE.NOERROR and reply.rr == []
    assert upstream.received == []


def test_aaaa_answers_ipv6_addresses_round_robin_apart_from_a(dns: EmbeddedDNS, netns: str,
                                                              upstream: Upstream) -> None:
    reply = ask(netns, "web", "AAAA")
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in reply.rr] == [("AAAA", "fd00::2")]
    firsts = [str(ask(netns, "pool", "AAAA").rr[0].rdata) for _ in range(2)]
    assert firsts == ["fd00::11", "fd00::12"]
    assert str(ask(netns, "pool", "A").rr[0].rdata) == "10.0.1.1"  # A has its own turn
    assert upstream.received == []


def test_ptr_of_a_container_address(dns: EmbeddedDNS, netns: str, upstream: Upstream) -> None:
    result = nslookup(netns, "10.0.0.3")
    assert result.returncode == 0, result.stderr
    assert "name = db.mynet" in result.stdout
    reply = ask(netns, "2.0.0.10.in-addr.arpa", "PTR")
    assert [(str(rr.rdata), rr.ttl) for rr in reply.rr] == [("web.mynet.", TTL)]
    v6 = ".".join(reversed("fd00" + "0" * 27 + "2")) + ".ip6.arpa"
    assert [str(rr.rdata) for rr in ask(netns, v6, "PTR").rr] == ["web6.mynet."]
    assert ask(netns, "9.9.9.10.in-addr.arpa", "PTR").header.rcode == RCODE.NXDOMAIN  # forwarded
    assert len(upstream.received) == 1


def test_tcp_queries_pipelined_on_one_connection(dns: EmbeddedDNS, netns: str) -> None:
    queries = [DNSRecord.question(n).pack() for n in ("web", "db", "ext.test")]
    replies = [DNSRecord.parse(r) for r in tcp_exchange(netns, queries)]
    assert [addresses(r) for r in replies] == [["10.0.0.2"], ["10.0.0.3"], ["192.0.2.1"]]


def test_a_local_answer_over_udp_is_cut_to_512_bytes_with_tc(make_dns: Callable[..., EmbeddedDNS],
                                                             netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(NAMES, "many", [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(100)])
    make_dns([]).attach("c1", netns)
    udp = udp_exchange(netns, DNSRecord.question("many").pack())
    parsed = DNSRecord.parse(udp)
    assert parsed.header.tc and 0 < len(parsed.rr) < 100 and len(udp) <= 512
    [tcp] = tcp_exchange(netns, [DNSRecord.question("many").pack()])
    assert len(DNSRecord.parse(tcp).rr) == 100 and not DNSRecord.parse(tcp).header.tc
    edns = DNSRecord.question("many")
    edns.add_ar(EDNS0(udp_len=4096))
    large = DNSRecord.parse(udp_exchange(netns, edns.pack()))  # the client's EDNS0 size is honoured
    assert len(large.rr) == 100 and not large.header.tc


def test_reply_header_copies_id_rd_cd_and_sets_ra_like_dockerd(dns: EmbeddedDNS, netns: str) -> None:
    query = DNSRecord.question("web")
    query.header.id, query.header.rd, query.header.cd = 0xBEEF, 0, 1
    reply = DNSRecord.parse(udp_exchange(netns, query.pack()))
    header = reply.header
    assert (header.id, header.qr, header.rd, header.cd, header.ra, header.aa) == (0xBEEF, 1, 0, 1, 1, 0)
    assert [(str(q.qname), q.qtype) for q in reply.questions] == [("web.", QTYPE.A)]


def test_names_that_are_not_plain_labels_are_forwarded(dns: EmbeddedDNS, netns: str,
                                                       upstream: Upstream) -> None:
    dotted = bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x06web.db\x00\x00\x01\x00\x01"
    assert DNSRecord.parse(udp_exchange(netns, dotted)).header.rcode == RCODE.NXDOMAIN
    assert ask(netns, ".").header.rcode == RCODE.NXDOMAIN
    assert upstream.received[0] == dotted and len(upstream.received) == 2


# -- forwarding --------------------------------------------------------------------------------------

def test_unknown_names_are_forwarded_and_relayed_unmodified(dns: EmbeddedDNS, netns: str,
                                                            upstream: Upstream) -> None:
    query = DNSRecord.question("web.example.com")  # a search domain appended by the stub resolver
    query.header.id = 0x4242
    raw = query.pack()
    reply = udp_exchange(netns, raw)
    assert upstream.received == [raw]
    assert reply == external_answer(DNSRecord.parse(raw), False)
    assert DNSRecord.parse(reply).header.id == 0x4242
    result = nslookup(netns, "ext.test")
    assert result.returncode == 0 and "192.0.2.1" in result.stdout, result.stdout + result.stderr


def test_truncated_udp_answer_is_relayed_and_the_tcp_retry_works(dns: EmbeddedDNS, netns: str) -> None:
    assert ask(netns, "big.test").header.tc
    [tcp] = tcp_exchange(netns, [DNSRecord.question("big.test").pack()])
    assert len(addresses(DNSRecord.parse(tcp))) == 60


def test_upstream_down_gives_servfail_fast(make_dns: Callable[..., EmbeddedDNS], netns: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    make_dns([f"127.0.0.1:{closed}"]).attach("c1", netns)
    for exchange in (lambda q: udp_exchange(netns, q), lambda q: tcp_exchange(netns, [q])[0]):
        start = time.monotonic()
        reply = DNSRecord.parse(exchange(DNSRecord.question("ext.test").pack()))
        assert reply.header.rcode == RCODE.SERVFAIL
        assert time.monotonic() - start < 0.5


def test_silent_upstream_times_out_then_the_next_one_answers(make_dns: Callable[..., EmbeddedDNS], netns: str,
                                                             upstream: Upstream) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        silent = f"127.0.0.1:{blackhole.getsockname()[1]}"
        make_dns([silent, upstream.address], timeout=0.3).attach("c1", netns)
        start = time.monotonic()
        assert addresses(ask(netns, "ext.test")) == ["192.0.2.1"]
        assert 0.3 <= time.monotonic() - start < 1.5
        start = time.monotonic()
        assert ask(netns, "silent.test").header.rcode == RCODE.SERVFAIL  # both silent for this name
        assert 0.6 <= time.monotonic() - start < 1.5


def test_servfail_or_non_authoritative_nxdomain_moves_on_to_the_next_upstream(
        make_dns: Callable[..., EmbeddedDNS], netns: str, upstream: Upstream) -> None:
    def failing(query: DNSRecord, _tcp: bool) -> bytes:
        reply = query.reply(aa=0)
        reply.header.rcode = RCODE.SERVFAIL if str(query.q.qname) == "ext.test." else RCODE.NXDOMAIN
        return reply.pack()

    first = Upstream(failing)
    try:
        make_dns([first.address, upstream.address]).attach("c1", netns)
        assert addresses(ask(netns, "ext.test")) == ["192.0.2.1"]
        assert addresses(ask(netns, "web.example.com")) == ["192.0.2.1"]
        assert len(first.received) == len(upstream.received) == 2
    finally:
        first.close()


def test_a_slow_forward_does_not_delay_local_answers(make_dns: Callable[..., EmbeddedDNS], netns: str,
                                                     upstream: Upstream) -> None:
    make_dns([upstream.address], timeout=2).attach("c1", netns)
    with netns_socket(netns, socket.SOCK_DGRAM) as slow:
        slow.sendto(DNSRecord.question("silent.test").pack(), ("127.0.0.11", 53))
        time.sleep(0.05)
        start = time.monotonic()
        assert addresses(ask(netns, "web")) == ["10.0.0.2"]
        assert addresses(ask(netns, "ext.test")) == ["192.0.2.1"]
        assert time.monotonic() - start < 0.5
        assert DNSRecord.parse(slow.recv(512)).header.rcode == RCODE.SERVFAIL


def test_bursts_from_several_sandboxes_are_all_answered(dns: EmbeddedDNS, netns: str) -> None:
    peer = f"{netns}-peer"
    subprocess.run(["ip", "netns", "add", os.path.basename(peer)], check=True)
    try:
        dns.attach("c2", peer)
        sockets = [netns_socket(path, socket.SOCK_DGRAM) for path in (netns, peer, netns)]
        try:
            for sock in sockets:  # 3 x 100 queries in flight at once, local and forwarded mixed
                for ident in range(100):
                    query = DNSRecord.question("ext.test" if ident % 2 else "pool")
                    query.header.id = ident
                    sock.sendto(query.pack(), ("127.0.0.11", 53))
            for sock in sockets:
                replies = [DNSRecord.parse(sock.recv(512)) for _ in range(100)]
                assert sorted(r.header.id for r in replies) == list(range(100))
                assert all(len(addresses(r)) == (1 if r.header.id % 2 else 3) for r in replies)
        finally:
            for sock in sockets:
                sock.close()
    finally:
        dns.detach("c2")
        subprocess.run(["ip", "netns", "del", os.path.basename(peer)], check=False)


def test_a_failing_lookup_gives_servfail_and_the_server_keeps_answering(netns: str) -> None:
    server = EmbeddedDNS(lambda _key, name, _version: NAMES[name], upstreams=[])  # KeyError for unknown names
    try:
        server.attach("c1", netns)
        assert ask(netns, "nothere").header.rcode == RCODE.SERVFAIL
        assert addresses(ask(netns, "web")) == ["10.0.0.2"]
    finally:
        server.close()


def test_a_sandbox_without_upstreams_gets_servfail(make_dns: Callable[..., EmbeddedDNS], netns: str,
                                                   upstream: Upstream) -> None:
    make_dns([upstream.address]).attach("c1", netns, upstreams=[])
    assert ask(netns, "ext.test").header.rcode == RCODE.SERVFAIL
    assert addresses(ask(netns, "web")) == ["10.0.0.2"]
    assert upstream.received == []


# -- robustness and lifecycle ------------------------------------------------------------------------

def test_malformed_packets_are_dropped_and_the_server_keeps_answering(dns: EmbeddedDNS, netns: str,
                                                                      upstream: Upstream) -> None:
    answered = DNSRecord.question("web").reply().pack()
    no_question = bytes(12)
    garbage = bytes.fromhex("1234 0100 0005 0000 0000 0000") + b"\xff" * 594
    bad_label = bytes.fromhex("1234 0100 0001 0000 0000 0000") + b"\x3fab"
    pointer_loop = bytes.fromhex("1234 0100 0001 0000 0000 0000") + b"\xc0\x0c\x00\x01\x00\x01"
    with netns_socket(netns, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        for junk in (b"", b"\xff", b"x" * 11, no_question, bad_label, pointer_loop, answered, garbage):
            sock.sendto(junk, ("127.0.0.11", 53))
            with pytest.raises(TimeoutError):
                sock.recv(65535)
    with netns_socket(netns, socket.SOCK_STREAM) as sock:  # a bad message, then a good one
        sock.connect(("127.0.0.11", 53))
        good = DNSRecord.question("db").pack()
        sock.sendall(b"\x00\x05" + b"\x00" * 5 + len(good).to_bytes(2, "big") + good)
        reply = _recv_exactly(sock, int.from_bytes(_recv_exactly(sock, 2), "big"))
        assert addresses(DNSRecord.parse(reply)) == ["10.0.0.3"]
    assert addresses(ask(netns, "web")) == ["10.0.0.2"]
    assert upstream.received == []


def test_attach_is_idempotent_and_detach_closes_the_port(make_dns: Callable[..., EmbeddedDNS],
                                                         netns: str) -> None:
    server = make_dns([])
    server.attach("c1", netns)
    server.attach("c1", netns)
    assert addresses(ask(netns, "web")) == ["10.0.0.2"]
    server.detach("c1")
    with pytest.raises(ConnectionRefusedError):
        tcp_exchange(netns, [DNSRecord.question("web").pack()])
    with pytest.raises(ConnectionRefusedError):
        ask(netns, "web")
    server.attach("c1", netns)  # and it can come back
    assert addresses(ask(netns, "web")) == ["10.0.0.2"]


def test_attach_to_a_new_namespace_moves_the_sandbox(make_dns: Callable[..., EmbeddedDNS], netns: str) -> None:
    moved = f"{netns}-moved"
    subprocess.run(["ip", "netns", "add", os.path.basename(moved)], check=True)
    try:
        server = make_dns([])
        server.attach("c1", netns)
        server.attach("c1", moved)
        assert addresses(ask(moved, "web")) == ["10.0.0.2"]
        with pytest.raises(ConnectionRefusedError):
            ask(netns, "web")
        server.detach("c1")
    finally:
        subprocess.run(["ip", "netns", "del", os.path.basename(moved)], check=False)


def test_attach_to_a_missing_namespace_raises(make_dns: Callable[..., EmbeddedDNS]) -> None:
    with pytest.raises(FileNotFoundError):
        make_dns([]).attach("c1", "/run/netns/dy-dns-does-not-exist")


def _sockets() -> set[str]:
    """The sockets this process holds ("socket:[inode]"), whatever their descriptor numbers."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def test_close_leaves_no_threads_or_sockets(make_dns: Callable[..., EmbeddedDNS], netns: str,
                                            upstream: Upstream) -> None:
    threads, fds = set(threading.enumerate()), _sockets()
    server = make_dns([upstream.address], timeout=5)
    server.attach("c1", netns)
    with netns_socket(netns, socket.SOCK_STREAM) as idle:
        idle.connect(("127.0.0.11", 53))  # an open client connection
        with netns_socket(netns, socket.SOCK_DGRAM) as pending:
            pending.sendto(DNSRecord.question("silent.test").pack(), ("127.0.0.11", 53))  # a forward in flight
            time.sleep(0.1)
            server.close()
    server.close()
    assert set(threading.enumerate()) == threads
    assert _sockets() <= fds  # (other tests' daemons may close sockets of theirs meanwhile)
    with pytest.raises(RuntimeError):
        server.attach("c1", netns)


# -- configuration -----------------------------------------------------------------------------------

def test_default_upstreams_come_from_resolv_conf_without_the_embedded_server(tmp_path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example.com\nnameserver 127.0.0.11\nnameserver 127.0.0.53\n"
                    "nameserver fe80::1%eth0\noptions ndots:0\n")
    assert host_nameservers(str(conf)) == ["127.0.0.53", "fe80::1"]
    assert host_nameservers(str(tmp_path / "missing")) == []


def test_upstream_addresses_with_and_without_ports() -> None:
    assert parse_upstream("10.1.2.3") == ("10.1.2.3", 53)
    assert parse_upstream("10.1.2.3:5353") == ("10.1.2.3", 5353)
    assert parse_upstream("2001:db8::1") == ("2001:db8::1", 53)
    assert parse_upstream("[2001:db8::1]:5353") == ("2001:db8::1", 5353)
    with pytest.raises(ValueError):
        parse_upstream("dns.example.com")
