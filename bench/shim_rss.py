"""Benchmark the memory of the per-container monitor: dockyard-shim vs containerd-shim vs conmon.

Starts K `sleep 3600` containers, each under its own monitor, and reads each monitor process's
VmRSS (/proc/PID/status) and PSS (/proc/PID/smaps_rollup: shared pages divided among the processes
that map them, the fairer figure for many identical interpreters). Variants: dockyard-shim with
dockyard-runtime, dockyard-shim with runc, and, when installed, Docker (dockerd started here with
a temp --data-root; one containerd-shim-runc-v2 per container) and Podman (conmon). Everything
started is stopped and removed at the end, also on Ctrl-C or failure.
Usage: .venv/bin/python bench/shim_rss.py [--containers 10] [--shim-runtime NAME] [--no-peers]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    BENCH_CGROUP,
    Runtime,
    become_subreaper,
    cgroup_leftovers,
    cmdline,
    delete_all,
    find_runtimes,
    kill_pid,
    load_average,
    make_bundle,
    make_busybox_rootfs,
    pids_with_arg,
    print_table,
    raise_on_termination,
    reap_children,
    remove_cgroups,
    wait_gone,
)
from _peers import IMAGE, DockerEngine, PeerEngine, PodmanEngine, Skip, mounts_under, rootfs_tarball

from dockyard.shim.client import ShimClient, ShimError, launch_shim

CGROUP_PARENT = f"{BENCH_CGROUP}/shim-{os.getpid()}"
SLEEP = ["sleep", "3600"]


def memory_kb(pid: int) -> tuple[int, int, int]:
    """(VmRSS, Pss, USS) of a process in kB; USS (private pages) is what one more copy costs."""
    def fields(path: str) -> dict[str, int]:
        with open(path) as f:
            return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in f)
                    if v.strip().endswith("kB")}

    rollup = fields(f"/proc/{pid}/smaps_rollup")
    uss = rollup["Private_Clean"] + rollup["Private_Dirty"]
    return fields(f"/proc/{pid}/status")["VmRSS"], rollup["Pss"], uss


class Setup:
    """One way of running K containers under per-container monitors."""

    name = "?"

    def up(self, k: int) -> list[int]:
        """Start K containers; return the monitor PIDs (one per container)."""
        raise NotImplementedError

    def down(self) -> list[str]:
        """Stop and remove everything started; return what was left behind."""
        raise NotImplementedError

    def extra(self) -> list[tuple[str, int]]:
        """(label, pid) of shared daemons, reported apart from the per-container figures."""
        return []


class DockyardShims(Setup):
    """dockyard-shim processes driving one OCI runtime."""

    def __init__(self, tmp: Path, runtime: Runtime, template: Path) -> None:
        self.name = f"dockyard-shim + {runtime.name}"
        self.tmp = tmp / f"shims-{runtime.name}"
        self.runtime = Runtime(runtime.name, runtime.argv0, self.tmp / "runtime-root")
        self.template = template
        self.started: list[tuple[str, Path, int, int]] = []  # (id, state dir, shim pid, init pid)

    def up(self, k: int) -> list[int]:
        for i in range(k):
            cid = f"bench-{os.getpid()}-{self.runtime.name}-{i}"
            bundle = make_bundle(self.tmp / f"bundle{i}", self.template, SLEEP)
            bundle.config["linux"]["cgroupsPath"] = f"{CGROUP_PARENT}/{self.runtime.name}-{i}"
            bundle.write()
            state = self.tmp / f"state{i}"
            info = launch_shim(cid, str(bundle.path), str(state), self.runtime.argv0, str(state / "ctr.log"),
                               runtime_root=str(self.runtime.root))
            self.started.append((cid, state, info.shim_pid, info.pid))
            ShimClient(str(state)).start()
        return [shim_pid for _, _, shim_pid, _ in self.started]

    def down(self) -> list[str]:
        for _, state, _, _ in self.started:
            try:
                ShimClient(str(state), timeout=10).signal("SIGKILL")  # sleep as pid 1 ignores SIGTERM
                ShimClient(str(state), timeout=20).wait(timeout=20)
            except (OSError, ShimError) as e:
                print(f"  {self.name}: stopping {state.name}: {e}", file=sys.stderr)
        problems = []
        shims = [shim_pid for _, _, shim_pid, _ in self.started]
        for pid in wait_gone(shims, 10):
            if any(str(self.tmp) in a for a in cmdline(pid)):  # still our shim: kill it
                kill_pid(pid, signal.SIGKILL)
            problems.append(f"{self.name}: shim {pid} did not exit by itself")
        problems += [f"{self.name}: container {c} needed --force" for c in delete_all(self.runtime)]
        problems += [f"{self.name}: container init {p} alive"
                     for p in wait_gone([init for *_, init in self.started], 5)]
        return problems


class IdlePython(Setup):
    """K idle `python -IS` interpreters: the floor under any monitor written in CPython."""

    name = "floor: idle python -IS (no container)"

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def up(self, k: int) -> list[int]:
        for _ in range(k):
            self.procs.append(subprocess.Popen([sys.executable, "-IS", "-c", "import time; time.sleep(3600)"],
                                               stdin=subprocess.DEVNULL))
        return [p.pid for p in self.procs]

    def down(self) -> list[str]:
        for p in self.procs:
            p.kill()
            p.wait()
        return []


class Peer(Setup):
    """A reference engine (Docker or Podman) running K containers; its monitors are found by name."""

    def __init__(self, engine: PeerEngine, template: Path, monitor: str, where: Path) -> None:
        self.engine, self.template, self.monitor, self.where = engine, template, monitor, where
        self.name = f"{engine.name}: {monitor}"

    def up(self, k: int) -> list[int]:
        self.engine.start()
        self.engine.run("import", str(rootfs_tarball(self.template, self.engine.tmp / "busybox.tar")), IMAGE)
        for _ in range(k):
            self.engine.run("run", "-d", "--network", "none", IMAGE, *SLEEP)
        if isinstance(self.engine, PodmanEngine):
            self.name = f"podman: conmon (+ {self.engine.runtime_name()})"
        return self.engine.monitors(str(self.where), self.monitor)

    def extra(self) -> list[tuple[str, int]]:
        return [(f"{label} (one per host)", pid) for label, pid in self.engine.daemons()]

    def down(self) -> list[str]:
        return self.engine.stop()


def docker_peer(tmp: Path, template: Path) -> Peer:
    """dockerd (vfs storage) with one containerd-shim-runc-v2 per container."""
    engine = DockerEngine(tmp, CGROUP_PARENT, storage_driver="vfs")
    return Peer(engine, template, "containerd-shim-runc-v2", engine.exec_root)


def podman_peer(tmp: Path, template: Path) -> Peer:
    """podman (vfs storage) with one conmon per container."""
    engine = PodmanEngine(tmp, CGROUP_PARENT, storage_driver="vfs")
    return Peer(engine, template, "conmon", engine.runroot)


def measure(setup: Setup, k: int, settle: float) -> dict[str, object]:
    """Start K containers under setup, let them settle, read the monitors' memory."""
    pids = setup.up(k)
    if len(pids) != k:
        raise RuntimeError(f"{setup.name}: expected {k} monitor processes, found {len(pids)}")
    time.sleep(settle)
    samples = [memory_kb(p) for p in pids]
    extra = [(label, *memory_kb(p)) for label, p in setup.extra()]
    return {"name": setup.name, "rss": [s[0] for s in samples], "pss": [s[1] for s in samples],
            "uss": [s[2] for s in samples], "extra": extra}


def run_setup(setup: Setup, k: int, settle: float, problems: list[str]) -> dict[str, object] | None:
    """measure() then always down(), adding what down() left to problems; a peer that cannot
    run here is reported as skipped."""
    try:
        return measure(setup, k, settle)
    except Skip as e:
        print(f"  skipped {setup.name}: {e}", file=sys.stderr)
        return None
    except Exception as e:  # a reference peer that fails here is reported, not fatal
        if not isinstance(setup, Peer):
            raise
        print(f"  skipped {setup.name}: {e}", file=sys.stderr)
        return None
    finally:
        for p in setup.down():
            print(f"  cleanup: {p}", file=sys.stderr)
            problems.append(p)


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def report(results: list[dict[str, object]], k: int) -> None:
    """Per-monitor medians and totals, then the shared daemons for context."""
    rows = []
    for r in results:
        rss, pss, uss = r["rss"], r["pss"], r["uss"]
        rows.append([r["name"], mb(statistics.median(rss)), mb(statistics.median(pss)),
                     mb(statistics.median(uss)), mb(sum(rss)), mb(sum(pss))])
    print_table([f"monitor ({k} containers, MB)", "RSS/ctr", "PSS/ctr", "USS/ctr", "RSS total", "PSS total"],
                rows)
    extras = [e for r in results for e in r["extra"]]
    if extras:
        print()
        print_table(["shared daemons (MB)", "RSS", "PSS", "USS"], [[e[0], *map(mb, e[1:])] for e in extras])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--containers", "-k", type=int, default=10, help="containers per variant (default 10)")
    p.add_argument("--shim-runtime", action="append", default=[],
                   help="runtime under dockyard-shim (repeatable; default dockyard-runtime and runc)")
    p.add_argument("--no-peers", action="store_true", help="skip the Docker and Podman references")
    p.add_argument("--settle", type=float, default=1.0, help="seconds between start and measuring")
    return p.parse_args()


def setups(opts: argparse.Namespace, tmp: Path, template: Path) -> list[Setup]:
    """The dockyard-shim variants, then the installed peers."""
    out: list[Setup] = [DockyardShims(tmp, rt, template)
                        for rt in find_runtimes(tmp, opts.shim_runtime or ("dockyard-runtime", "runc"))]
    out.append(IdlePython())
    if not opts.no_peers:
        for peer in (docker_peer, podman_peer):
            try:
                out.append(peer(tmp, template))
            except Skip as e:
                print(f"# skipped {peer.__name__}: {e}")
    return out


def main() -> int:
    opts = parse_args()
    if os.geteuid() != 0:
        print("shim_rss.py needs root (containers with cgroups)", file=sys.stderr)
        return 2
    raise_on_termination()
    become_subreaper()
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-shim-"))
    results: list[dict[str, object]] = []
    problems: list[str] = []
    try:
        template = make_busybox_rootfs(tmp / "template" / "rootfs")
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}  cpus {os.cpu_count()}  load {load_average()}")
        for s in setups(opts, tmp, template):
            print(f"# measuring {s.name} ({opts.containers} instances)", file=sys.stderr)
            result = run_setup(s, opts.containers, opts.settle, problems)
            if result:
                results.append(result)
        print()
        report(results, opts.containers)
        print(f"\n# load after: {load_average()}")
        code = 0
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        code = 130
    finally:
        problems += cleanup(tmp)
    return code or (1 if problems else 0)  # something left behind fails the run


def cleanup(tmp: Path) -> list[str]:
    """Remove the cgroups and the temp dir; report anything left (processes, cgroups, mounts)."""
    reap_children()
    left = [f"process {p}" for p in pids_with_arg(str(tmp))]
    left += [f"cgroup {c}" for c in remove_cgroups(CGROUP_PARENT) + cgroup_leftovers(CGROUP_PARENT)]
    if mounts_under(tmp):
        left.append(f"mounts under {tmp} (temp dir kept)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    for item in left:
        print(f"cleanup: left behind: {item}", file=sys.stderr)
    if not left:
        print("# cleanup: no containers, monitors, cgroups or temp files left", file=sys.stderr)
    return left


if __name__ == "__main__":
    sys.exit(main())
