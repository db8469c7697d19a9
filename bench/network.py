"""Networking figures of dockyardd, side by side with Docker when dockerd is installed.

1. What network setup adds to `docker run -d`: the median wall time of `run -d busybox sleep`
   on the default bridge and on a user-defined network, minus the same with `--network host`
   (no namespace, no veth, no address), rounds interleaved; for dockyard also the median of the
   setup times its daemon logs (--debug), the figure itself, free of `run`'s noise.
2. Host → published port: a busybox httpd in a container on a user-defined network with
   `-p PORT:80`; from the host, over 127.0.0.1:PORT, the throughput of GETs of a large file
   (MB/s, median of --gets) and the latency of a fresh connection plus a GET of a tiny file
   (median and p90 of --requests), and of the TCP connect alone.
Docker runs as a private dockerd (bench/shim_rss.py's, with its userland proxy on: that is
Docker's path for 127.0.0.1 in its default configuration). Needs root; removes every container,
network, daemon and temp file it made, also on failure.

    .venv/bin/python bench/network.py [--runs 15] [--mb 64] [--gets 5] [--requests 200] [--no-peers]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import load_average, make_busybox_rootfs, raise_on_termination
from shim_rss import IMAGE, Docker, Skip

from tests.daemon import Dockyardd, busybox_archive

SERVE = "mkdir -p /w && dd if=/dev/zero of=/w/big bs=1M count={mb} 2>/dev/null && echo hi > /w/small && " \
        "exec httpd -f -p 80 -h /w"
NETWORK = "dy-bench-net"

Cli = Callable[..., str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_d_costs(docker: Cli, image: str, runs: int, modes: dict[str, str]) -> dict[str, float]:
    """Median `run -d` seconds per network mode."""
    times: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(runs + 2):
        for label, mode in modes.items():
            spent = timed(lambda mode=mode: docker("run", "-d", "--network", mode, image, "sleep", "600"))
            if i >= 2:  # warm-up rounds
                times[label].append(spent)
        docker("rm", "-f", *docker("ps", "-aq").split())
    return {m: statistics.median(t) for m, t in times.items()}


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


def wait_serving(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if get(port, "/small") == 3:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing serves 127.0.0.1:{port}")
        time.sleep(0.2)


def port_figures(docker: Cli, image: str, opts: argparse.Namespace) -> dict[str, float]:
    """Throughput (MB/s) and latencies (ms) through a published port."""
    port = free_port()
    docker("run", "-d", "--name", "dy-bench-web", "--network", NETWORK, "-p", f"{port}:80", image,
           "sh", "-c", SERVE.format(mb=opts.mb))
    try:
        wait_serving(port)
        rates = []
        for _ in range(opts.gets):
            spent = timed(lambda: get(port, "/big"))
            rates.append(opts.mb / spent)
        requests = sorted(timed(lambda: get(port, "/small")) * 1000 for _ in range(opts.requests))
        connects = []
        for _ in range(opts.requests):
            with socket.socket() as s:
                connects.append(timed(lambda s=s: s.connect(("127.0.0.1", port))) * 1000)
        return {"MB/s": statistics.median(rates), "GET ms": statistics.median(requests),
                "GET p90 ms": requests[int(len(requests) * 0.9)], "connect ms": statistics.median(connects)}
    finally:
        docker("rm", "-f", "dy-bench-web")


def measure(docker: Cli, image: str, opts: argparse.Namespace, default_bridge: bool) -> dict[str, float]:
    """Every figure for one engine (default_bridge: whether it has its default network)."""
    docker("network", "create", NETWORK)
    try:
        modes = {"host": "host", "user network": NETWORK, **({"bridge": "bridge"} if default_bridge else {})}
        costs = run_d_costs(docker, image, opts.runs, modes)
        out = {f"run -d {m} ms": v * 1000 for m, v in costs.items()}
        out["setup user ms"] = (costs["user network"] - costs["host"]) * 1000
        if default_bridge:
            out["setup bridge ms"] = (costs["bridge"] - costs["host"]) * 1000
        out.update(port_figures(docker, image, opts))
        return out
    finally:
        ids = docker("ps", "-aq").split()
        if ids:
            docker("rm", "-f", *ids)
        docker("network", "rm", NETWORK)


def dockyard_figures(tmp: Path, opts: argparse.Namespace) -> dict[str, float]:
    tmp.mkdir(parents=True)
    archive = busybox_archive(tmp)
    with Dockyardd("--debug") as daemon:
        def docker(*args: str) -> str:
            proc = daemon.docker(*args)
            if proc.returncode:
                raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr}")
            return proc.stdout
        docker("load", "-i", str(archive))
        out = measure(docker, "busybox", opts, default_bridge=True)
        # the daemon's own account of its network setup (sandbox, veths, addresses, files, DNS)
        spent = [float(m) for m in re.findall(r"network setup of \w+: ([0-9.]+) ms", daemon.log.read_text())]
        out["setup (daemon log) ms"] = statistics.median(spent)
        return out


class DockerWithProxy(Docker):
    """bench/shim_rss.py's private dockerd, with the userland proxy that publishes ports."""

    def dockerd_argv(self) -> list[str]:
        return [arg if arg != "--userland-proxy=false" else "--userland-proxy=true" for arg in super().dockerd_argv()]

    def up(self, k: int = 0) -> list[int]:
        self.tmp.mkdir(parents=True)
        (self.tmp / "daemon.json").write_text("{}")
        with open(self.tmp / "dockerd.log", "wb") as log:
            self.proc = subprocess.Popen(self.dockerd_argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        self.wait_ready()
        self.docker("import", str(self.image_tarball()), IMAGE)
        return []


def docker_figures(tmp: Path, opts: argparse.Namespace) -> dict[str, float] | None:
    try:
        peer = DockerWithProxy(tmp, make_busybox_rootfs(tmp / "template" / "rootfs"))
    except Skip as why:
        print(f"# docker skipped: {why}")
        return None
    try:
        peer.up()
        return measure(peer.docker, IMAGE, opts, default_bridge=False)  # it runs with --bridge none
    except Skip as why:
        print(f"# docker skipped: {why}")
        return None
    finally:
        for problem in peer.down():
            print(f"# docker cleanup: {problem}", file=sys.stderr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15, help="run -d rounds per network mode (default 15)")
    p.add_argument("--mb", type=int, default=64, help="size of the file fetched for throughput (default 64)")
    p.add_argument("--gets", type=int, default=5, help="throughput GETs (default 5)")
    p.add_argument("--requests", type=int, default=200, help="latency requests (default 200)")
    p.add_argument("--no-peers", action="store_true", help="skip Docker")
    opts = p.parse_args()
    if os.geteuid() != 0:
        print("network.py needs root", file=sys.stderr)
        return 2
    raise_on_termination()
    tmp = Path(tempfile.mkdtemp(prefix="dy-bench-net-"))
    try:
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}  cpus {os.cpu_count()}  load {load_average()}")
        columns = {"dockyard": dockyard_figures(tmp / "dockyard", opts)}
        if not opts.no_peers:
            docker = docker_figures(tmp / "docker", opts)
            if docker:
                columns["docker"] = docker
        names = list(columns)
        print(f"{'figure':<22}" + "".join(f"{n:>12}" for n in names))
        for key in columns["dockyard"]:
            print(f"{key:<22}" + "".join(f"{columns[n][key]:>12.2f}" if key in columns[n] else f"{'-':>12}"
                                          for n in names))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
