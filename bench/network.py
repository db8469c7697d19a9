"""Networking figures of dockyardd, side by side with Docker when dockerd is installed.

Both engines run at once and every measurement alternates between them round by round, so load
from elsewhere on the machine hits both alike.
1. What network setup adds to `docker run -d`: the median wall time of `run -d busybox sleep`
   on a user-defined network (also with `-p 80`, an ephemeral published port, and on dockyard's
   default bridge) minus the same with `--network host` (no namespace, no veth, no address); for
   dockyard also the median of the setup times its daemon logs (--debug) per mode, the figure
   itself, free of `run`'s noise.
2. Host → published port: a busybox httpd in a container on a user-defined network with
   `-p PORT:80`; from the host, over 127.0.0.1:PORT, the throughput of GETs of a large file
   (MB/s, median of --gets) and the latency of a fresh connection plus a GET of a tiny file
   (median and p90 of --requests), and of the TCP connect alone (median and p25), to 127.0.0.1
   and to a host address; every request's engine and path in a random order per round.
Docker runs as a private dockerd (bench/shim_rss.py's, `--bridge none`) in Docker's default
network configuration: iptables on (a host address is DNATed in the kernel) and its userland
proxy on (docker-proxy serves 127.0.0.1), as dockyardd by default. Needs root; removes every
container, network, daemon and temp file it made, also on failure.

    .venv/bin/python bench/network.py [--runs 15] [--mb 64] [--gets 8] [--requests 300] [--no-peers]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from _common import free_port, load_average, raise_on_termination, remove_cgroups
from _peers import DockerEngine, Skip

from tests.daemon import Dockyardd, busybox_archive

SERVE = "mkdir -p /w && dd if=/dev/zero of=/w/big bs=1M count={mb} 2>/dev/null && echo hi > /w/small && " \
        "exec httpd -f -p 80 -h /w"
NETWORK = "dy-bench-net"
SERVER = "dy-bench-web"


@dataclass
class Engine:
    """One engine under test: its CLI, image, the modes to time, and the samples gathered."""

    name: str
    docker: Callable[..., str]
    image: str
    modes: dict[str, list[str]]  # label -> the network arguments of `run`
    port: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)
    started: dict[str, str] = field(default_factory=dict)  # container ID -> mode label

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        size = 0
        while chunk := resp.read(1 << 20):
            size += len(chunk)
        return size
    finally:
        conn.close()


def connect(ip: str, port: int) -> None:
    with socket.socket() as s:
        s.connect((ip, port))


def host_address() -> str | None:
    """An IPv4 address of this host on an interface that is no bridge (None if there is none)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if not fields[1].startswith(("dy", "br-", "docker")):
            return fields[3].split("/")[0]
    return None


def wait_serving(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if get(port, "/small") == 3:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing serves 127.0.0.1:{port}")
        time.sleep(0.2)


def remove_containers(engine: Engine) -> None:
    ids = engine.docker("ps", "-aq").split()
    if ids:
        engine.docker("rm", "-f", *ids)


def measure(engines: list[Engine], opts: argparse.Namespace) -> None:
    """Every figure, alternating between engines."""
    for i in range(opts.runs + 2):
        for engine in engines:
            for label, args in engine.modes.items():
                start = time.perf_counter()
                cid = engine.docker("run", "-d", *args, engine.image, "sleep", "600").strip()
                if i >= 2:  # warm-up rounds
                    engine.add(f"run -d {label} ms", (time.perf_counter() - start) * 1000)
                    engine.started[cid] = label
            remove_containers(engine)
    for engine in engines:
        engine.port = free_port()
        engine.docker("run", "-d", "--name", SERVER, "--network", NETWORK, "-p", f"{engine.port}:80", engine.image,
                      "sh", "-c", SERVE.format(mb=opts.mb))
        wait_serving(engine.port)
    for _ in range(opts.gets):
        for engine in engines:
            engine.add("MB/s", opts.mb * (1 << 20) / 1e6 / timed(lambda e=engine: get(e.port, "/big")))
    host = host_address()
    steps: dict[str, Callable[[Engine], object]] = {
        "GET ms": lambda e: get(e.port, "/small"), "connect ms": lambda e: connect("127.0.0.1", e.port),
        **({f"connect {host} ms": lambda e: connect(host, e.port)} if host else {})}
    for _ in range(opts.requests):
        order = [(engine, key) for engine in engines for key in steps]
        random.shuffle(order)  # no engine or path always runs first after the other's work
        for engine, key in order:
            engine.add(key, timed(lambda e=engine, k=key: steps[k](e)) * 1000)


def modes(bridge: bool) -> dict[str, list[str]]:
    """The network arguments of `run -d` timed (dockyard's default bridge too when bridge)."""
    return {"host": ["--network", "host"], "user network": ["--network", NETWORK],
            "user network -p": ["--network", NETWORK, "-p", "80"], **({"bridge": ["--network", "bridge"]} if bridge else {})}


@contextlib.contextmanager
def dockyard(tmp: Path) -> Iterator[tuple[Engine, Dockyardd]]:
    tmp.mkdir(parents=True)
    archive = busybox_archive(tmp)
    with Dockyardd("--debug") as daemon:
        def cli(*args: str) -> str:
            proc = daemon.docker(*args)
            if proc.returncode:
                raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr}")
            return proc.stdout
        cli("load", "-i", str(archive))
        cli("network", "create", NETWORK)
        engine = Engine("dockyard", cli, "busybox", modes(bridge=True))
        try:
            yield engine, daemon
        finally:
            remove_containers(engine)
            cli("network", "rm", NETWORK)


@contextlib.contextmanager
def docker(tmp: Path, wanted: bool) -> Iterator[Engine | None]:
    """A private dockerd with iptables and its userland proxy (docker-proxy) publishing ports; None
    if absent."""
    if not wanted:
        yield None
        return
    parent = f"/dockyard-bench/network-{os.getpid()}"
    try:
        peer = DockerEngine(tmp, parent, userland_proxy=True, iptables=True)
    except Skip as why:
        print(f"# docker skipped: {why}")
        yield None
        return
    try:
        peer.start()
        peer.run("load", "-i", str(busybox_archive(tmp)))
        peer.run("network", "create", NETWORK)
        engine = Engine("docker", peer.run, "busybox", modes(bridge=False))
        try:
            yield engine
        finally:
            remove_containers(engine)
            peer.run("network", "rm", NETWORK)
    except Skip as why:
        print(f"# docker skipped: {why}")
        yield None
    finally:
        for problem in [*peer.stop(), *remove_cgroups(parent)]:
            print(f"# docker cleanup: {problem}", file=sys.stderr)


def report(engines: list[Engine], daemon_log: str) -> None:
    for engine in engines:
        runs = engine.samples
        for label in engine.modes:
            if label != "host":
                engine.add(f"setup {label} ms", statistics.median(runs[f"run -d {label} ms"])
                           - statistics.median(runs["run -d host ms"]))
    ours = engines[0]
    for cid, spent in re.findall(r"network setup of (\w+): ([0-9.]+) ms", daemon_log):
        label = next((label for full, label in ours.started.items() if full.startswith(cid)), None)
        if label is not None:
            ours.add(f"setup {label} (log) ms", float(spent))
    print(f"{'figure':<32}" + "".join(f"{e.name:>12}" for e in engines))
    for key in engines[0].samples:
        cells = []
        for e in engines:
            values = sorted(e.samples.get(key, []))
            digits = 3 if key.startswith("connect") else 2
            cells.append(f"{statistics.median(values):>12.{digits}f}" if values else f"{'-':>12}")
        print(f"{key:<32}" + "".join(cells))
        if key == "GET ms":
            print(f"{'GET p90 ms':<32}" + "".join(
                f"{sorted(e.samples[key])[int(len(e.samples[key]) * 0.9)]:>12.2f}" for e in engines))
        if key.startswith("connect"):
            print(f"{key.replace(' ms', ' p25 ms'):<32}" + "".join(
                f"{sorted(e.samples[key])[len(e.samples[key]) // 4]:>12.3f}" for e in engines))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15, help="run -d rounds per network mode (default 15)")
    p.add_argument("--mb", type=int, default=64, help="size of the file fetched for throughput (default 64)")
    p.add_argument("--gets", type=int, default=8, help="throughput GETs (default 8)")
    p.add_argument("--requests", type=int, default=300, help="latency requests (default 300)")
    p.add_argument("--no-peers", action="store_true", help="skip Docker")
    opts = p.parse_args()
    if os.geteuid() != 0:
        print("network.py needs root", file=sys.stderr)
        return 2
    raise_on_termination()
    tmp = Path(tempfile.mkdtemp(prefix="dy-bench-net-"))
    try:
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}  cpus {os.cpu_count()}  load {load_average()}")
        with dockyard(tmp / "dockyard") as (ours, daemon), docker(tmp / "docker", not opts.no_peers) as theirs:
            engines = [ours, *([theirs] if theirs else [])]
            measure(engines, opts)
            report(engines, daemon.log.read_text())
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
