"""Latency of dockyard's embedded DNS server (dockyard.network.dns), as a container sees it.

Creates a network namespace, attaches an EmbeddedDNS to it and sends N sequential UDP queries to
127.0.0.11:53 from a socket inside the namespace: a container name (answered locally) and an
external name (forwarded to a stub upstream on the host's 127.0.0.1, which answers at once).
Prints the median and p90 round trip, and for local answers the median time spent in the server's
query handler. If dockerd is installed, the same local-name query is timed against Docker's
embedded DNS (a private dockerd from bench/_peers.py, a user network, one busybox container);
Docker's forwarding is not timed, as it would send queries to the host's real resolvers.
Needs root; removes the namespace, network, container and daemon it made, also on failure.

    .venv/bin/python bench/dns_resolver.py [--queries 2000] [--no-peers]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _common import BENCH_CGROUP, make_busybox_rootfs, remove_cgroups  # also makes the project importable
from _peers import IMAGE, DockerEngine, Skip, rootfs_tarball
from dnslib import QTYPE, RR, A, DNSRecord

from dockyard.network.dns import EmbeddedDNS
from dockyard.runtime.syscalls import CLONE_NEWNET, setns


def stub_upstream(sock: socket.socket, stop: threading.Event) -> None:
    """Answer every query with one A record until stop is set."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            continue
        query = DNSRecord.parse(data)
        reply = query.reply()
        reply.add_answer(RR(query.q.qname, QTYPE.A, ttl=30, rdata=A("192.0.2.1")))
        sock.sendto(reply.pack(), addr)


def socket_in(netns: str) -> socket.socket:
    """A UDP socket connected to 127.0.0.11:53, created inside netns."""
    made: list[socket.socket] = []

    def create() -> None:
        with open(netns) as ns:
            setns(ns.fileno(), CLONE_NEWNET)
        made.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    helper = threading.Thread(target=create)
    helper.start()
    helper.join()
    made[0].settimeout(5)
    made[0].connect(("127.0.0.11", 53))
    return made[0]


def round_trips(sock: socket.socket, name: str, count: int) -> list[float]:
    """Microseconds per query, after 50 warm-up queries."""
    times = []
    for i in range(count + 50):
        query = DNSRecord.question(name).pack()
        start = time.perf_counter()
        sock.send(query)
        sock.recv(65535)
        if i >= 50:
            times.append((time.perf_counter() - start) * 1e6)
    return times


def summary(label: str, micros: list[float]) -> str:
    ordered = sorted(micros)
    return (f"{label:<34} median {statistics.median(ordered):8.1f} us   "
            f"p90 {ordered[int(len(ordered) * 0.9)]:8.1f} us   n={len(ordered)}")


def docker_peer(count: int) -> None:
    """Time Docker's embedded DNS answering a container name (one busybox container named `web`
    on a user network of a private dockerd), if dockerd is installed."""
    tmp = Path(tempfile.mkdtemp(prefix="dy-dns-bench-"))
    parent = f"{BENCH_CGROUP}/dns-{os.getpid()}"
    try:
        peer = DockerEngine(tmp, parent)
    except Skip as why:
        print(f"docker: skipped ({why})")
        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        peer.start()
        peer.run("import", str(rootfs_tarball(make_busybox_rootfs(tmp / "rootfs"), tmp / "rootfs.tar")), IMAGE)
        peer.run("network", "create", "dy-dns-bench")
        peer.run("run", "-d", "--name", "web", "--network", "dy-dns-bench", IMAGE, "sleep", "600")
        pid = int(peer.run("inspect", "-f", "{{.State.Pid}}", "web"))
        with socket_in(f"/proc/{pid}/ns/net") as sock:
            print(summary("docker: local name (A, 1 address)", round_trips(sock, "web", count)))
    except Skip as why:
        print(f"docker: skipped ({why})")
    finally:
        for problem in [*peer.stop(), *remove_cgroups(parent)]:  # the container and network too
            print(problem)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000, help="queries per kind (default 1000)")
    parser.add_argument("--no-peers", action="store_true", help="do not time Docker's resolver")
    opts = parser.parse_args()
    count = opts.queries
    name = f"dy-dns-bench-{os.getpid()}"
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 0))
    stop = threading.Event()
    stub = threading.Thread(target=stub_upstream, args=(upstream, stop))
    stub.start()
    names = {"web": ["10.0.0.2"], "pool": ["10.0.1.1", "10.0.1.2", "10.0.1.3"]}
    server = EmbeddedDNS(lambda _key, n, version: names.get(n) if version == 4 else None, upstreams=[f"127.0.0.1:{upstream.getsockname()[1]}"])
    handler_times: list[float] = []
    handle = server._handle  # instrumented: the time the server thread spends on one query

    def timed_handle(*args: object) -> bool:
        start = time.perf_counter()
        try:
            return handle(*args)
        finally:
            handler_times.append((time.perf_counter() - start) * 1e6)

    server._handle = timed_handle  # type: ignore[method-assign]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        server.attach("bench", f"/run/netns/{name}")
        with socket_in(f"/run/netns/{name}") as sock:
            local = round_trips(sock, "web", count)
            local_handler = handler_times[50:]
            rotated = round_trips(sock, "pool", count)
            forwarded = round_trips(sock, "example.test", count)
        print(summary("local name (A, 1 address)", local))
        print(summary("  server handler time", local_handler))
        print(summary("local name (A, 3 addresses, rotated)", rotated))
        print(summary("forwarded (stub upstream on host lo)", forwarded))
    finally:
        server.close()
        stop.set()
        stub.join()
        upstream.close()
        subprocess.run(["ip", "netns", "del", name], check=False)
    if not opts.no_peers:
        docker_peer(count)


if __name__ == "__main__":
    main()
