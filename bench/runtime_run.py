"""Benchmark `RUNTIME --root TMP run ID` of a /bin/true container: dockyard-runtime vs runc vs crun.

The runtimes are interleaved round-robin (the order rotates each round) so that machine noise
hits all of them alike; a few warm-up rounds are discarded. Every container, the temp dir and the
cgroups (under /dockyard-bench/run-PID) are removed at the end, also on Ctrl-C or failure.
Usage: .venv/bin/python bench/runtime_run.py [--runs 50] [--warmup 3] [--lifecycle-runs 20] [--seccomp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    BENCH_CGROUP,
    VENV_BIN,
    VENV_PYTHON,
    Bundle,
    Runtime,
    Summary,
    cgroup_leftovers,
    delete_all,
    find_runtimes,
    load_average,
    make_bundle,
    make_busybox_rootfs,
    print_table,
    raise_on_termination,
    remove_cgroups,
    timed,
    timed_cpu,
    version_line,
)

CGROUP_PARENT = f"{BENCH_CGROUP}/run-{os.getpid()}"
LIFECYCLE_STEPS = ("create", "start", "delete")


class Bench:
    """The bundles, one per runtime, and a counter for unique container ids and cgroups."""

    def __init__(self, tmp: Path, runtimes: list[Runtime], seccomp: bool = False) -> None:
        self.runtimes = runtimes
        template = make_busybox_rootfs(tmp / "template" / "rootfs")
        self.bundles = {rt.name: make_bundle(tmp / f"bundle-{rt.name}", template, ["/bin/true"])
                        for rt in runtimes}
        if seccomp:  # Docker's default profile, as every `docker run` container gets
            from dockyard.engine.containers.seccomp_default import default_profile

            for bundle in self.bundles.values():
                bundle.config["linux"]["seccomp"] = default_profile()
        self.serial = 0
        self.cpu: dict[str, list[float]] = {rt.name: [] for rt in runtimes}  # CPU ms of each timed `run`

    def fresh(self, rt: Runtime) -> tuple[str, Bundle]:
        """A new container id, with the runtime's bundle pointed at a new cgroup."""
        self.serial += 1
        cid = f"bench-{os.getpid()}-{self.serial}"
        bundle = self.bundles[rt.name]
        bundle.config["linux"]["cgroupsPath"] = f"{CGROUP_PARENT}/{rt.name}-{self.serial}"
        return cid, bundle.write()

    def run(self, rt: Runtime) -> float:
        """One timed `run` (the runtime deletes the container when it exits); its CPU time goes
        to self.cpu."""
        cid, bundle = self.fresh(rt)
        wall, cpu = timed_cpu(rt.cmd("run", cid), cwd=bundle.path)
        self.cpu[rt.name].append(cpu)
        return wall

    def lifecycle(self, rt: Runtime) -> dict[str, float]:
        """Timed create, start and delete (the wait for /bin/true to exit is not timed)."""
        cid, bundle = self.fresh(rt)
        times = {"create": timed(rt.cmd("create", "--bundle", str(bundle.path), cid), cwd=bundle.path),
                 "start": timed(rt.cmd("start", cid))}
        wait_stopped(rt, cid)
        times["delete"] = timed(rt.cmd("delete", cid))
        return times


def wait_stopped(rt: Runtime, cid: str, timeout: float = 10) -> None:
    """Poll `state` until the container is stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(rt.cmd("state", cid), capture_output=True, text=True, timeout=30)
        if proc.returncode == 0 and json.loads(proc.stdout or "{}").get("status") == "stopped":
            return
        time.sleep(0.01)
    raise RuntimeError(f"{rt.name}: container {cid} did not stop within {timeout}s")


def round_robin(jobs: dict[str, Callable[[], object]], rounds: int, warmup: int) -> dict[str, list]:
    """Run every job once per round, rotating the order; keep the results after the warm-up."""
    names = list(jobs)
    results: dict[str, list] = {name: [] for name in names}
    for r in range(warmup + rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            value = jobs[name]()
            if r >= warmup:
                results[name].append(value)
        if (r + 1) % 10 == 0:
            print(f"  round {r + 1}/{warmup + rounds}  load {load_average()}", file=sys.stderr)
    return results


def ratio(value: float, ref: Summary | None) -> str:
    return f"{value / ref.median:.2f}x" if ref else "-"


def summary_rows(samples: dict[str, list[float]], runc: Summary | None,
                 crun: Summary | None) -> list[list[str]]:
    """Table rows: name, median, p90, min, vs runc, vs crun."""
    rows = []
    for name, values in samples.items():
        s = Summary.of(values)
        rows.append([name, f"{s.median:.1f}", f"{s.p90:.1f}", f"{s.min:.1f}", ratio(s.median, runc),
                     ratio(s.median, crun)])
    return rows


def report_run(results: dict[str, list[float]], cpu: dict[str, list[float]], runtimes: list[Runtime]) -> None:
    """The `run` table (wall time, then CPU time: user + system of the runtime and the container
    processes it reaped, which a busy machine inflates far less), plus the start-up floors."""
    names = [rt.name for rt in runtimes]
    for title, samples in (("run /bin/true (ms)", results), ("run, CPU time (ms)", cpu)):
        runc = Summary.of(samples["runc"]) if "runc" in samples else None
        crun = Summary.of(samples["crun"]) if "crun" in samples else None
        print_table([title, "median", "p90", "min", "vs runc", "vs crun"],
                    summary_rows({n: samples[n] for n in names}, runc, crun))
        print()
    runc = Summary.of(results["runc"]) if "runc" in results else None
    crun = Summary.of(results["crun"]) if "crun" in results else None
    floors = {n: v for n, v in results.items() if n not in names}
    print_table(["floor (ms)", "median", "p90", "min", "vs runc", "vs crun"], summary_rows(floors, runc, crun))


def report_lifecycle(results: dict[str, list[dict[str, float]]]) -> None:
    """One row per runtime and step, plus the sum of the three steps."""
    samples: dict[str, list[float]] = {}
    for name, runs in results.items():
        for step in LIFECYCLE_STEPS:
            samples[f"{name} {step}"] = [r[step] for r in runs]
        samples[f"{name} create+start+delete"] = [sum(r.values()) for r in runs]
    ref = {n: Summary.of(samples[f"{n} create+start+delete"]) for n in ("runc", "crun") if n in results}
    rows = []
    for key, values in samples.items():
        s = Summary.of(values)
        step = key.split(" ", 1)[1]
        refs = [Summary.of(samples[f"{n} {step}"]) if n in ref else None for n in ("runc", "crun")]
        rows.append([key, f"{s.median:.1f}", f"{s.p90:.1f}", f"{s.min:.1f}", ratio(s.median, refs[0]),
                     ratio(s.median, refs[1])])
    print_table(["lifecycle (ms)", "median", "p90", "min", "vs runc", "vs crun"], rows)


def floor_jobs(runtimes: list[Runtime]) -> dict[str, Callable[[], float]]:
    """Context: the bare interpreter start-up, and dockyard-runtime's CLI with nothing to do."""
    jobs: dict[str, Callable[[], float]] = {
        "python -IS -c pass": lambda: timed([str(VENV_PYTHON), "-IS", "-c", "pass"]),
        "/bin/true (spawn floor)": lambda: timed(["/bin/true"]),
    }
    if any(rt.name == "dockyard-runtime" for rt in runtimes):
        jobs["dockyard-runtime --version"] = lambda: timed([str(VENV_BIN / "dockyard-runtime"), "--version"])
    return jobs


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50, help="measured runs per runtime (default 50)")
    p.add_argument("--warmup", type=int, default=3, help="discarded warm-up rounds (default 3)")
    p.add_argument("--lifecycle-runs", type=int, default=20,
                   help="create+start+delete measurements per runtime (default 20; 0 skips)")
    p.add_argument("--runtime", action="append", default=[], help="only this runtime (repeatable)")
    p.add_argument("--seccomp", action="store_true", help="give the containers Docker's default seccomp profile")
    return p.parse_args()


def main() -> int:
    opts = parse_args()
    if os.geteuid() != 0:
        print("runtime_run.py needs root (containers with cgroups)", file=sys.stderr)
        return 2
    raise_on_termination()
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-run-"))
    runtimes = find_runtimes(tmp, opts.runtime)
    try:
        return measure(opts, tmp, runtimes)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        cleanup(tmp, runtimes)


def measure(opts: argparse.Namespace, tmp: Path, runtimes: list[Runtime]) -> int:
    """Build the bundles, run the round-robin measurements, print the tables."""
    bench = Bench(tmp, runtimes, opts.seccomp)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  cpus {os.cpu_count()}  load {load_average()}")
    for rt in runtimes:
        print(f"# {rt.name}: {version_line([rt.argv0, '--version'])}")
    seccomp = ", Docker's default seccomp profile" if opts.seccomp else ""
    print(f"# {opts.runs} runs each after {opts.warmup} warm-up rounds, interleaved round-robin{seccomp}\n")
    jobs: dict[str, Callable[[], float]] = {rt.name: (lambda rt=rt: bench.run(rt)) for rt in runtimes}
    jobs.update(floor_jobs(runtimes))
    walls = round_robin(jobs, opts.runs, opts.warmup)
    report_run(walls, {name: cpu[opts.warmup:] for name, cpu in bench.cpu.items()}, runtimes)
    if opts.lifecycle_runs > 0:
        print()
        steps = {rt.name: (lambda rt=rt: bench.lifecycle(rt)) for rt in runtimes}
        report_lifecycle(round_robin(steps, opts.lifecycle_runs, 1))
    print(f"\n# load after: {load_average()}")
    return 0


def cleanup(tmp: Path, runtimes: list[Runtime]) -> None:
    """Delete every container, remove the cgroups and the temp dir; say what could not go."""
    problems = []
    for rt in runtimes:
        problems += [f"{rt.name} container {cid}" for cid in delete_all(rt)]
    problems += [f"cgroup {c}" for c in remove_cgroups(CGROUP_PARENT)]
    problems += [f"cgroup {c}" for c in cgroup_leftovers(CGROUP_PARENT)]
    shutil.rmtree(tmp, ignore_errors=True)
    if tmp.exists():
        problems.append(f"temp dir {tmp}")
    for problem in problems:
        print(f"cleanup: left behind: {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
