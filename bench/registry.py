"""Registry figures, side by side with skopeo and distribution 2.8 (Debian's docker-registry).

An image of --size MB of incompressible gzip layers (4 layers) is made in a private ImageStore.
Every comparison runs --runs interleaved rounds (--concurrent-runs for the 10-client figures)
whose order alternates (A B, B A, ...) after one warm-up round that is not counted; medians and [min-max] ranges are printed, with ratios.

client (what dockyard's client does vs skopeo, both against distribution):
  push   dockyard's client (library call, in this process) store → a fresh distribution
         vs `skopeo copy oci:LAYOUT docker://…` of the same blobs → a fresh distribution
  pull   dockyard's client distribution → an empty ImageStore
         vs `skopeo copy docker://… oci:EMPTY`. Neither unpacks layers; both verify every blob's
         digest and fsync it. dockyard's pull also inflates each layer to measure and verify its
         diff ID and uncompressed size (what Docker does while extracting; skopeo into an OCI
         layout does not), so the CPU seconds of both sides are printed too.

server (our `dockyard registry serve` vs distribution, the same client on both):
  skopeo pull     `skopeo copy docker://… dir:EMPTY` (with each server's CPU seconds per pull)
  skopeo push     `skopeo copy oci:LAYOUT docker://…` into a fresh server (uploads)
  10 skopeo pulls ten concurrent skopeo pulls (errors counted): the server under load
  10 curl streams ten concurrent `curl` downloads of every layer to /dev/null: the server's own
                  throughput with a client that is not the bottleneck (skipped without curl)

docker: the docker CLI through dockyardd and through a private dockerd (if installed): pull,
        create a container (dockyardd unpacks the layers then; dockerd did while pulling), push
        to a fresh distribution (reference on this kind of VM for dockerd: push 2.90 s, pull 1.05 s)

Every server runs on a free loopback port over a temp dir and is stopped by its PID.

    .venv/bin/python bench/registry.py [--size 107] [--runs 5] [--concurrent-runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import BENCH_CGROUP, load_average, remove_cgroups, run_quiet
from _peers import DockerEngine, Skip

from dockyard.image.store import ImageStore
from dockyard.registry.client.pull import pull
from dockyard.registry.client.push import push
from tests.daemon import Dockyardd
from tests.registries import Distribution, Dockyard, Registry, generated_image

Sample = dict[str, list[float]]
CGROUP_PARENT = f"{BENCH_CGROUP}/registry-{os.getpid()}"


def run(*argv: str) -> None:
    code, err = run_quiet(list(argv), timeout=600)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)}: {err}")


def skopeo(*args: str) -> None:
    run("skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", *args)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_and_children_cpu() -> tuple[float, float]:
    self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime, children.ru_utime + children.ru_stime


def interleaved(runs: int, sides: dict[str, Callable[[int], float]]) -> Sample:
    """Each side once per round (order alternating), after an uncounted warm-up round."""
    out: Sample = {name: [] for name in sides}
    names = list(sides)
    for i in range(-1, runs):
        for name in names if i % 2 == 0 else reversed(names):
            value = sides[name](i)
            if i >= 0:
                out[name].append(value)
    return out


def fmt(values: list[float], unit: str = "s") -> str:
    return f"{statistics.median(values):.2f}{unit} [{min(values):.2f}-{max(values):.2f}]"


def ratio(a: list[float], b: list[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.2f}x"


class Bench:
    """The image, the temp dir and every server started (stopped by cleanup)."""

    def __init__(self, size: int, runs: int) -> None:
        self.size, self.runs = size, runs
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-reg-"))
        self.servers: list[Registry | Dockyardd] = []
        self.dockerd: DockerEngine | None = None
        self.store = ImageStore(str(self.tmp / "store"))
        self.per_layer = size * 1_000_000 // 4
        generated_image(self.store, "bench:1", [{f"f{i}": os.urandom(self.per_layer)} for i in range(4)])
        self.layers = [la.descriptor.digest for la in self.store.layers(self.store.resolve("bench:1"))]
        self.layout = self.tmp / "layout"

    def server(self, kind: type[Registry]) -> Registry:
        reg = kind(tmp=Path(tempfile.mkdtemp(dir=self.tmp)))
        self.servers.append(reg)
        return reg.start()

    def scratch(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.tmp))

    def cleanup(self) -> list[str]:
        """Stop everything started; what could not be cleaned."""
        self.store.close()
        problems = self.dockerd.stop() if self.dockerd is not None else []
        for server in self.servers:
            server.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems + remove_cgroups(CGROUP_PARENT)

    # -- client ----------------------------------------------------------------------------------

    def push(self) -> Sample:
        reg = self.server(Distribution)  # the same blobs as an OCI layout, for skopeo
        self.store.tag("bench:1", f"{reg.addr}/bench/img:1")
        push(self.store, f"{reg.addr}/bench/img:1")
        skopeo(f"docker://{reg.addr}/bench/img:1", f"oci:{self.layout}:img")
        reg.cleanup()

        def ours(i: int) -> float:
            reg = self.server(Distribution)
            name = f"{reg.addr}/bench/img:1"
            self.store.tag("bench:1", name)
            start = time.perf_counter()
            push(self.store, name)
            took = time.perf_counter() - start
            reg.cleanup()
            return took

        def peer(i: int) -> float:
            reg = self.server(Distribution)
            start = time.perf_counter()
            skopeo(f"oci:{self.layout}:img", f"docker://{reg.addr}/bench/img:1")
            took = time.perf_counter() - start
            reg.cleanup()
            return took
        return interleaved(self.runs, {"ours": ours, "skopeo": peer})

    def pull(self, source: Registry) -> tuple[Sample, Sample]:
        name = f"{source.addr}/bench/img:1"
        cpu: Sample = {"ours": [], "skopeo": []}

        def ours(i: int) -> float:
            target = ImageStore(str(self.scratch()))
            cpu0 = own_and_children_cpu()[0]
            start = time.perf_counter()
            pull(target, name)
            took = time.perf_counter() - start
            cpu["ours"].append(own_and_children_cpu()[0] - cpu0)
            target.close()
            shutil.rmtree(target.root)
            return took

        def peer(i: int) -> float:
            dest = self.scratch()
            cpu0 = own_and_children_cpu()[1]
            start = time.perf_counter()
            skopeo(f"docker://{name}", f"oci:{dest}:img")
            took = time.perf_counter() - start
            cpu["skopeo"].append(own_and_children_cpu()[1] - cpu0)
            shutil.rmtree(dest)
            return took
        walls = interleaved(self.runs, {"ours": ours, "skopeo": peer})
        return walls, {k: v[1:] for k, v in cpu.items()}  # the warm-up round dropped

    # -- server ----------------------------------------------------------------------------------

    def serve(self, servers: dict[str, Registry]) -> tuple[Sample, Sample]:
        cpu: Sample = {k: [] for k in servers}

        def side(key: str) -> Callable[[int], float]:
            def one(i: int) -> float:
                reg, dest = servers[key], self.scratch()
                cpu0 = cpu_seconds(reg.proc.pid)  # type: ignore[union-attr]
                start = time.perf_counter()
                skopeo(f"docker://{reg.addr}/bench/img:1", f"dir:{dest}")
                took = time.perf_counter() - start
                cpu[key].append(cpu_seconds(reg.proc.pid) - cpu0)  # type: ignore[union-attr]
                shutil.rmtree(dest)
                return took
            return one
        walls = interleaved(self.runs, {k: side(k) for k in servers})
        return walls, {k: v[1:] for k, v in cpu.items()}

    def uploads(self) -> Sample:
        def side(kind: type[Registry]) -> Callable[[int], float]:
            def one(i: int) -> float:
                reg = self.server(kind)
                start = time.perf_counter()
                skopeo(f"oci:{self.layout}:img", f"docker://{reg.addr}/bench/img:1")
                took = time.perf_counter() - start
                reg.cleanup()
                return took
            return one
        return interleaved(self.runs, {"ours": side(Dockyard), "distribution": side(Distribution)})

    def concurrent(self, servers: dict[str, Registry], client: str, rounds: int) -> tuple[Sample, int]:
        errors = 0

        def fetch(addr: str, dest: Path, i: int) -> bool:
            try:
                if client == "skopeo":
                    skopeo(f"docker://{addr}/bench/img:1", f"dir:{dest}/{i}")
                else:
                    argv = ["curl", "-sf"]
                    for digest in self.layers:
                        argv += ["-o", "/dev/null", f"http://{addr}/v2/bench/img/blobs/{digest}"]
                    run(*argv)
                return True
            except RuntimeError:
                return False

        def side(key: str) -> Callable[[int], float]:
            def one(i: int) -> float:
                nonlocal errors
                dest = self.scratch()
                start = time.perf_counter()
                with ThreadPoolExecutor(10) as pool:
                    ok = list(pool.map(lambda n: fetch(servers[key].addr, dest, n), range(10)))
                took = time.perf_counter() - start
                errors += ok.count(False)
                shutil.rmtree(dest)
                return took
            return one
        return interleaved(rounds, {k: side(k) for k in servers}), errors

    # -- the docker CLI --------------------------------------------------------------------------

    def docker(self, source: Registry) -> dict[str, Sample]:
        """The docker CLI through dockyardd and through a private dockerd (when installed), in
        alternating order: pull from source, create a container (dockyardd unpacks the layers
        then, dockerd while pulling), push to a fresh distribution, then remove it all."""
        engines: dict[str, Callable[..., list[str]]] = {}
        daemon = Dockyardd(tmp=tempfile.mkdtemp(prefix="dy-", dir="/tmp"))
        self.servers.append(daemon)
        daemon.start()
        engines["dockyardd"] = lambda *args: ["docker", "-H", daemon.host, *args]
        try:
            self.dockerd = DockerEngine(self.scratch(), CGROUP_PARENT)
            self.dockerd.start()
            engines["dockerd"] = self.dockerd.cli
        except Skip as err:
            print(f"# dockerd skipped: {err}")
        env = {**os.environ, "DOCKER_CONFIG": str(self.scratch())}
        out: dict[str, Sample] = {k: {"pull": [], "create": [], "push": []} for k in engines}

        def docker(engine: str, *args: str) -> float:
            start = time.perf_counter()
            code, err = run_quiet(engines[engine](*args), env=env, timeout=600)
            if code != 0:
                raise RuntimeError(f"docker {' '.join(args)} ({engine}): {err}")
            return time.perf_counter() - start

        def side(engine: str) -> Callable[[int], float]:
            def one(i: int) -> float:
                name = f"{source.addr}/bench/img:1"
                reg = self.server(Distribution)
                pulled = docker(engine, "pull", "-q", name)
                created = docker(engine, "create", "--name", "bench", name, "/bin/true")
                docker(engine, "tag", name, f"{reg.addr}/bench/img:1")
                pushed = docker(engine, "push", "-q", f"{reg.addr}/bench/img:1")
                docker(engine, "rm", "bench")
                docker(engine, "rmi", name, f"{reg.addr}/bench/img:1")
                reg.cleanup()
                if i >= 0:
                    for key, value in (("pull", pulled), ("create", created), ("push", pushed)):
                        out[engine][key].append(value)
                return pulled
            return one
        interleaved(self.runs, {k: side(k) for k in engines})
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=107, help="image size in MB (compressed)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrent-runs", type=int, default=3, help="rounds of the 10-client figures")
    opts = parser.parse_args()
    print(f"load average at start: {load_average()}")
    bench = Bench(opts.size, opts.runs)
    try:
        print(f"image: {sum(la.descriptor.size for la in bench.store.layers(bench.store.resolve('bench:1'))) / 1e6:.1f}"
              " MB in 4 layers")
        pushed = bench.push()
        dist, ours = bench.server(Distribution), bench.server(Dockyard)
        for reg in (dist, ours):
            skopeo(f"oci:{bench.layout}:img", f"docker://{reg.addr}/bench/img:1")
        pulled, pull_cpu = bench.pull(dist)
        both = {"ours": ours, "distribution": dist}
        served, serve_cpu = bench.serve(both)
        uploaded = bench.uploads()
        many, many_errors = bench.concurrent(both, "skopeo", opts.concurrent_runs)
        streams = bench.concurrent(both, "curl", opts.concurrent_runs) if shutil.which("curl") else None
        docker = bench.docker(dist)

        mb = opts.size
        print(f"\nmedians [min-max] of {opts.runs} interleaved rounds; load average now: {load_average()}")
        print("client (vs skopeo, against distribution)")
        print(f"  push   ours {fmt(pushed['ours'])}  skopeo {fmt(pushed['skopeo'])}  "
              f"{ratio(pushed['ours'], pushed['skopeo'])}")
        print(f"  pull   ours {fmt(pulled['ours'])}  skopeo {fmt(pulled['skopeo'])}  "
              f"{ratio(pulled['ours'], pulled['skopeo'])}")
        print(f"         CPU per pull: ours {fmt(pull_cpu['ours'])}, "
              f"skopeo {fmt(pull_cpu['skopeo'])}")
        print("server (ours vs distribution, same client; throughput ratio = distribution time / ours)")
        print(f"  skopeo pull       ours {fmt(served['ours'])}  distribution {fmt(served['distribution'])}  "
              f"{ratio(served['distribution'], served['ours'])}")
        print(f"    server CPU per pull: ours {fmt(serve_cpu['ours'])}, distribution "
              f"{fmt(serve_cpu['distribution'])}")
        print(f"  skopeo push       ours {fmt(uploaded['ours'])}  distribution {fmt(uploaded['distribution'])}  "
              f"{ratio(uploaded['distribution'], uploaded['ours'])}")
        print(f"  10 skopeo pulls   ours {fmt(many['ours'])}  distribution {fmt(many['distribution'])}  "
              f"{ratio(many['distribution'], many['ours'])}  ({many_errors} errors)")
        if streams is not None:
            s = streams[0]
            print(f"  10 curl streams   ours {fmt(s['ours'])} ({10 * mb / statistics.median(s['ours']):.0f} MB/s)  "
                  f"distribution {fmt(s['distribution'])} ({10 * mb / statistics.median(s['distribution']):.0f} MB/s)"
                  f"  {ratio(s['distribution'], s['ours'])}  ({streams[1]} errors)")
        print("docker CLI (pull from distribution, create a container, push to a fresh distribution)")
        for engine, got in docker.items():
            both_steps = [p + c for p, c in zip(got["pull"], got["create"], strict=True)]
            print(f"  {engine:10} pull {fmt(got['pull'])}  create {fmt(got['create'])}  pull+create {fmt(both_steps)}"
                  f"  push {fmt(got['push'])}")
    finally:
        for problem in bench.cleanup():
            print(f"cleanup: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
