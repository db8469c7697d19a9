"""Benchmark the engine through its CLIs: dockyard (CLI + dockyardd) vs Docker and Podman.

Figures of the engine issue, each the median of interleaved rounds (the order rotates every round):
  run --rm busybox true, exec c true, run -d busybox sleep (removed untimed after each round),
  N sequential detached starts (one batch per engine), and the daemon's idle memory (dockyardd
  alone vs dockerd + containerd) after the containers are gone.
Engines: `dockyard` and the real `docker` CLI against a private dockyardd, and, when installed, a
private dockerd (own containerd, overlay2) and podman (own storage). Every container runs with
--network none so that all engines do the same work. Everything is removed at the end.
Usage: .venv/bin/python bench/engine_latency.py [--runs 20] [--starts 50] [--no-peers]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    BENCH_CGROUP,
    VENV_BIN,
    Summary,
    become_subreaper,
    cgroup_leftovers,
    load_average,
    print_table,
    raise_on_termination,
    reap_children,
    remove_cgroups,
    timed,
)
from _peers import DockerEngine, PeerEngine, PodmanEngine, Skip, run_checked

from tests.daemon import Dockyardd, busybox_archive

CGROUP_PARENT = f"{BENCH_CGROUP}/engine-{os.getpid()}"
IMAGE = "busybox:latest"
EXEC_NAME = "bench-exec"


class Dockyard(PeerEngine):
    """A private dockyardd, driven by the dockyard CLI (or, with cli_name="docker", the docker CLI)."""

    name = "dockyard"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp / "dockyard")
        self.daemon = Dockyardd(tmp=str(self.tmp))
        self.env = {**os.environ, "DOCKYARD_HOST": self.daemon.host, "DOCKER_HOST": self.daemon.host,
                    "DOCKER_CONFIG": str(self.tmp / "docker-config")}

    def cli(self, *args: str) -> list[str]:
        return [str(VENV_BIN / "dockyard"), *args]

    def start(self) -> None:
        self.tmp.mkdir(parents=True)
        self.daemon.start()

    def daemons(self) -> list[tuple[str, int]]:
        """dockyardd and its fork server (the daemon's child that forks shims and runtime commands)."""
        if not self.daemon.proc:
            return []
        pid = self.daemon.proc.pid
        return [("dockyardd", pid)] + [("fork server", p) for p in children_of(pid)]

    def remove_all(self) -> None:
        ids = self.run("ps", "-aq").split()
        if ids:
            self.run("rm", "-f", *ids)

    def stop(self) -> list[str]:
        problems = []
        if self.daemon.proc and self.daemon.proc.poll() is None:
            try:
                self.remove_all()
            except RuntimeError as e:
                problems.append(f"dockyard: removing containers: {e}")
            self.daemon.stop()
        return self.finish(problems)


class DockerCliOnDockyard(PeerEngine):
    """The real docker CLI against the same dockyardd."""

    name = "docker CLI -> dockyardd"

    def __init__(self, dockyard: Dockyard) -> None:
        super().__init__(dockyard.tmp)
        self.env = dockyard.env

    def cli(self, *args: str) -> list[str]:
        return ["docker", *args]


def engines(opts: argparse.Namespace, tmp: Path) -> tuple[list[PeerEngine], list[PeerEngine]]:
    """(engines to measure, engines to stop at the end): dockyard first, then the installed peers."""
    dockyard = Dockyard(tmp)
    measured: list[PeerEngine] = [dockyard]
    if shutil.which("docker"):
        measured.append(DockerCliOnDockyard(dockyard))
    owned: list[PeerEngine] = [dockyard]
    if not opts.no_peers:
        for make in (DockerEngine, PodmanEngine):
            try:
                peer = make(tmp, CGROUP_PARENT)
            except Skip as e:
                print(f"# skipped {make.__name__}: {e}")
                continue
            measured.append(peer)
            owned.append(peer)
    return measured, owned


def prepare(engine: PeerEngine, archive: Path) -> None:
    """Start the engine, load busybox, start the long-running container for exec."""
    if not isinstance(engine, DockerCliOnDockyard):
        engine.start()
        engine.run("load", "-i", str(archive))
        engine.run("run", "-d", "--name", EXEC_NAME, "--network", "none", IMAGE, "sleep", "3600")


def run_detached(engine: PeerEngine) -> float:
    """One timed `run -d`; the container is removed untimed."""
    start = time.perf_counter()
    cid = run_checked(engine.cli("run", "-d", "--network", "none", IMAGE, "sleep", "3600"), env=engine.env).strip()
    elapsed = (time.perf_counter() - start) * 1000
    run_checked(engine.cli("rm", "-f", cid), env=engine.env)
    return elapsed


def batch_starts(engine: PeerEngine, n: int) -> float:
    """Seconds for n sequential `run -d`; the containers are removed untimed."""
    start = time.perf_counter()
    ids = [run_checked(engine.cli("run", "-d", "--network", "none", IMAGE, "sleep", "3600"), env=engine.env).strip()
           for _ in range(n)]
    elapsed = time.perf_counter() - start
    run_checked(engine.cli("rm", "-f", *ids), env=engine.env, timeout=300)
    return elapsed


def jobs_for(engine: PeerEngine) -> dict[str, Callable[[], float]]:
    def timed_env(*args: str) -> float:
        return timed(engine.cli(*args), env=engine.env)

    return {
        "run --rm": lambda: timed_env("run", "--rm", "--network", "none", IMAGE, "true"),
        "exec": lambda: timed_env("exec", EXEC_NAME, "true"),
        "run -d": lambda: run_detached(engine),
    }


def measure(opts: argparse.Namespace, tmp: Path, measured: list[PeerEngine]) -> None:
    archive = busybox_archive(tmp)
    for engine in measured:
        print(f"# preparing {engine.name}", file=sys.stderr)
        prepare(engine, archive)
    samples: dict[tuple[str, str], list[float]] = {}
    for r in range(opts.warmup + opts.runs):
        order = measured[r % len(measured):] + measured[:r % len(measured)]
        for engine in order:
            for what, job in jobs_for(engine).items():
                value = job()
                if r >= opts.warmup:
                    samples.setdefault((what, engine.name), []).append(value)
        if (r + 1) % 5 == 0:
            print(f"  round {r + 1}/{opts.warmup + opts.runs}  load {load_average()}", file=sys.stderr)
    report(samples, [e.name for e in measured])
    if opts.starts:
        print()
        rows = []
        for engine in measured:
            seconds = batch_starts(engine, opts.starts)
            rows.append([engine.name, f"{seconds:.2f}"])
        print_table([f"{opts.starts} sequential run -d (s)", "total"], rows)


def report(samples: dict[tuple[str, str], list[float]], names: list[str]) -> None:
    """One table per operation: median, p90, min, and the ratio to docker and podman."""
    for what in ("run --rm", "exec", "run -d"):
        ref = {n: Summary.of(samples[(what, n)]) for n in ("docker", "podman") if (what, n) in samples}
        rows = []
        for name in names:
            s = Summary.of(samples[(what, name)])
            rows.append([name, f"{s.median:.1f}", f"{s.p90:.1f}", f"{s.min:.1f}",
                         *(f"{s.median / ref[n].median:.2f}x" if n in ref else "-" for n in ("docker", "podman"))])
        print()
        print_table([f"{what} (ms)", "median", "p90", "min", "vs docker", "vs podman"], rows)


def children_of(pid: int) -> list[int]:
    """The live child processes of pid."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def idle_memory(owned: list[PeerEngine]) -> None:
    """RSS of each engine's daemons once its containers are gone."""
    rows = []
    for engine in owned:
        try:
            engine.remove_all()
        except RuntimeError:
            continue
        time.sleep(2)
        pids = engine.daemons()
        if pids:
            rss = [int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0]) for _, pid in pids]
            rows.append([" + ".join(label for label, _ in pids), f"{sum(rss) / 1024:.1f}"])
    if rows:
        print()
        print_table(["idle daemon memory", "RSS MB"], rows)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20, help="measured rounds (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="discarded warm-up rounds (default 2)")
    p.add_argument("--starts", type=int, default=50, help="sequential detached starts (default 50; 0 skips)")
    p.add_argument("--no-peers", action="store_true", help="skip the Docker and Podman references")
    return p.parse_args()


def main() -> int:
    opts = parse_args()
    if os.geteuid() != 0:
        print("engine_latency.py needs root", file=sys.stderr)
        return 2
    raise_on_termination()
    become_subreaper()
    tmp = Path(tempfile.mkdtemp(prefix="dy-bench-", dir="/tmp"))  # short: unix socket paths
    problems: list[str] = []
    measured, owned = engines(opts, tmp)
    code = 0
    try:
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}  cpus {os.cpu_count()}  load {load_average()}")
        print(f"# {opts.runs} rounds after {opts.warmup} warm-up, interleaved; --network none everywhere")
        measure(opts, tmp, measured)
        idle_memory(owned)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        code = 130
    finally:
        for engine in owned:
            problems += engine.stop()
        reap_children()
        problems += remove_cgroups(CGROUP_PARENT) + cgroup_leftovers(CGROUP_PARENT)
        shutil.rmtree(tmp, ignore_errors=True)
        for p in problems:
            print(f"cleanup: {p}", file=sys.stderr)
    return code or (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main())
