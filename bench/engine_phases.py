"""Where a container's latency goes inside the engine, without HTTP or CLI: the phases of a run
measured in-process on a private engine (open_engine, fork server included).

Per round: create, start, the exit's lag (the shim's exited_at to the moment a `wait` returns),
remove; one exec in a long-running container; one attached --rm container until its removal; the
CPU time of such a round: this process (the daemon side, all threads), and with the fork server,
shims and runtime commands (a cpuacct cgroup holds them all; far steadier than latencies on a
loaded machine). --concurrent N runs N
attached --rm containers at once (the daemon's locking under load). --profile FILE writes a cProfile of the
calling thread (create, start, remove on the daemon side; exits are handled on watcher threads).
Usage: .venv/bin/python bench/engine_phases.py [--runs 20] [--concurrent 0] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from _common import BENCH_CGROUP, CGROUP_ROOT, Summary, load_average, print_table, remove_cgroups

from dockyard.engine.config import DaemonConfig
from dockyard.engine.containers.logs import parse_time
from dockyard.engine.daemon import Engine, open_engine
from dockyard.image.bootstrap import bootstrap_busybox

CGROUP_PARENT = f"{BENCH_CGROUP}/phases-{os.getpid()}"


class CpuAccount:
    """CPU time used by this process and by every process it starts that stays in its cgroup: the
    daemon side, the fork server, shims and runtime commands (containers join cgroups of their own)."""

    def __init__(self) -> None:
        line = next(entry for entry in open("/proc/self/cgroup").read().splitlines()
                    if entry.split(":")[1].split(",").count("cpuacct"))
        self.home = CGROUP_ROOT / "cpuacct" / line.split(":", 2)[2].lstrip("/")
        self.path = CGROUP_ROOT / "cpuacct" / CGROUP_PARENT.strip("/") / "engine-side"
        self.path.mkdir(parents=True)
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def used_ms(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e6

    def close(self) -> None:
        """Back to the cgroup it came from (this one is removed with the others)."""
        (self.home / "cgroup.procs").write_text(str(os.getpid()))


def body(cmd: list[str], auto_remove: bool = False) -> dict:
    return {"Image": "busybox", "Cmd": cmd,
            "HostConfig": {"NetworkMode": "none", "CgroupParent": CGROUP_PARENT, "AutoRemove": auto_remove}}


def one_run(engine: Engine, samples: dict[str, list[float]]) -> None:
    """create, start, wait (the exit's lag noted), remove: milliseconds per phase."""
    svc = engine.containers
    t0 = time.perf_counter()
    cid = svc.create(body(["true"]))
    t1 = time.perf_counter()
    svc.start(cid)
    t2 = time.perf_counter()
    svc.wait(cid, "not-running", timeout=30)
    waited = time.time()
    t3 = time.perf_counter()
    exited = parse_time(svc.store.get(cid)["State"]["FinishedAt"]) / 1e9
    svc.remove(cid)
    t4 = time.perf_counter()
    for name, value in (("create", t1 - t0), ("start", t2 - t1), ("start→exit seen", t3 - t2),
                        ("exit lag", waited - exited), ("remove", t4 - t3), ("total", t4 - t0)):
        samples.setdefault(name, []).append(value * 1000)


def one_exec(engine: Engine, cid: str, samples: dict[str, list[float]]) -> None:
    start = time.perf_counter()
    result = engine.execs.run(cid, ["true"], timeout=30)
    samples.setdefault("exec (run)", []).append((time.perf_counter() - start) * 1000)
    assert result is not None and result[0] == 0, result


def run_rm(engine: Engine) -> float:
    """One `run --rm` as the docker CLI drives it: create, attach, start, output to its end, wait
    for the removal."""
    svc = engine.containers
    start = time.perf_counter()
    cid = svc.create(body(["true"], auto_remove=True))
    attach = svc.prepare_attach(cid, False, True, True)
    svc.start(cid)
    _, sock = attach.wait()
    with sock:
        while sock.recv(65536):
            pass
    svc.wait(cid, "removed", timeout=60)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--concurrent", type=int, default=0, help="also N concurrent run --rm (default 0: skip)")
    p.add_argument("--profile", help="write a cProfile of the daemon side to this file")
    opts = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="dy-ph-", dir="/tmp")
    config = DaemonConfig(hosts=[], data_root=os.path.join(tmp, "data"), exec_root=os.path.join(tmp, "run"),
                          iptables=False)
    account = CpuAccount()  # before the engine starts its fork server
    engine = open_engine(config)
    profiler = None
    try:
        bootstrap_busybox(engine.containers.images)
        long_running = engine.containers.create(body(["sleep", "3600"]))
        engine.containers.start(long_running)
        for _ in range(2):  # warm-up
            one_run(engine, {})
            one_exec(engine, long_running, {})
        if opts.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        samples: dict[str, list[float]] = {}
        for _ in range(opts.runs):
            cpu, own = account.used_ms(), time.process_time()
            one_run(engine, samples)
            one_exec(engine, long_running, samples)
            samples.setdefault("run --rm attached", []).append(run_rm(engine))
            samples.setdefault("CPU per round: daemon side", []).append((time.process_time() - own) * 1000)
            samples.setdefault("CPU per round: + shims, runtime", []).append(account.used_ms() - cpu)
        if opts.concurrent:
            with ThreadPoolExecutor(opts.concurrent) as pool:
                start = time.perf_counter()
                times = list(pool.map(lambda _: run_rm(engine), range(opts.concurrent)))
                samples[f"{opts.concurrent} concurrent run --rm: each"] = times
                samples[f"{opts.concurrent} concurrent run --rm: all"] = [(time.perf_counter() - start) * 1000]
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(opts.profile)
        print(f"# {opts.runs} rounds  cpus {os.cpu_count()}  load {load_average()}")
        rows = []
        for name, values in samples.items():
            s = Summary.of(values)
            rows.append([name, f"{s.median:.1f}", f"{s.p90:.1f}", f"{s.min:.1f}"])
        print_table(["phase (ms)", "median", "p90", "min"], rows)
    finally:
        for record in engine.containers.store.all():
            engine.containers.remove(record["ID"], force=True)
        engine.close()
        account.close()
        problems = remove_cgroups(CGROUP_PARENT)
        shutil.rmtree(tmp, ignore_errors=True)
        for problem in problems:
            print(f"cleanup: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
