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
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
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
    run_quiet,
    wait_gone,
)

from dockyard.shim.client import ShimClient, ShimError, launch_shim

CGROUP_PARENT = f"{BENCH_CGROUP}/shim-{os.getpid()}"
IMAGE = "localhost/dockyard-bench/busybox:latest"
SLEEP = ["sleep", "3600"]


class Skip(Exception):
    """A reference peer is not installed or not usable here."""


def memory_kb(pid: int) -> tuple[int, int, int]:
    """(VmRSS, Pss, USS) of a process in kB; USS (private pages) is what one more copy costs."""
    def fields(path: str) -> dict[str, int]:
        with open(path) as f:
            return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in f)
                    if v.strip().endswith("kB")}

    rollup = fields(f"/proc/{pid}/smaps_rollup")
    uss = rollup["Private_Clean"] + rollup["Private_Dirty"]
    return fields(f"/proc/{pid}/status")["VmRSS"], rollup["Pss"], uss


def run_checked(argv: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run a CLI command (no container inherits its stdio) and return stdout; raise on failure."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited with {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


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


class PeerSetup(Setup):
    """Common parts of the Docker and Podman references: a tarball image and path bookkeeping."""

    # default state paths the tools create whatever flags say; removed afterwards if new (and empty)
    default_dirs: tuple[str, ...] = ()

    def __init__(self, tmp: Path, template: Path) -> None:
        self.tmp = tmp
        self.template = template
        self.preexisting = {d for d in self.default_dirs if os.path.exists(d)}

    def image_tarball(self) -> Path:
        """The busybox rootfs as a tarball for `docker import` / `podman import`."""
        path = self.tmp / "busybox.tar"
        with tarfile.open(path, "w") as tar:
            for entry in sorted(self.template.iterdir()):
                tar.add(entry, arcname=entry.name)
        return path

    def monitors(self, predicate: str, argv0_suffix: str) -> list[int]:
        """Live processes whose argv[0] ends with argv0_suffix and whose command line names predicate."""
        return [p for p in pids_with_arg(predicate) if cmdline(p)[:1]
                and cmdline(p)[0].endswith(argv0_suffix)]

    def finish(self, problems: list[str]) -> list[str]:
        """Kill stragglers naming our temp dir, unmount leftovers, remove new default dirs."""
        wait_gone(pids_with_arg(str(self.tmp)), 10)  # e.g. podman's `container cleanup` exit commands
        for pid in pids_with_arg(str(self.tmp)):
            problems.append(f"{self.name}: pid {pid} ({' '.join(cmdline(pid)[:2])}) killed")
            kill_pid(pid, signal.SIGKILL)
        wait_gone(pids_with_arg(str(self.tmp)), 5)
        for mnt in mounts_under(self.tmp):
            subprocess.run(["umount", "-l", mnt], check=False)
        if mounts_under(self.tmp):
            problems.append(f"{self.name}: mounts left under {self.tmp}: not removing it")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        for d in self.default_dirs:
            if d not in self.preexisting and os.path.exists(d) and not mounts_under(Path(d)):
                shutil.rmtree(d, ignore_errors=True)  # created by this run: sockets, locks, caches
        return problems


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first."""
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True)


class Docker(PeerSetup):
    """dockerd (with its own containerd) on a temp data root and socket; containerd-shim-runc-v2."""

    name = "docker: containerd-shim-runc-v2"
    default_dirs = ("/run/containerd", "/run/docker")

    def __init__(self, tmp: Path, template: Path) -> None:
        dockerd = shutil.which("dockerd")
        cli = dockerd and (shutil.which("docker", path=os.path.dirname(dockerd)) or shutil.which("docker"))
        if not dockerd or not cli or not shutil.which("containerd"):
            raise Skip("docker.io (dockerd, docker, containerd) is not installed")
        super().__init__(tmp / "docker", template)
        self.dockerd, self.cli = dockerd, cli
        self.sock = self.tmp / "docker.sock"
        self.exec_root = self.tmp / "exec"
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "DOCKER_CONFIG": str(self.tmp / "cli")}

    def docker(self, *args: str) -> str:
        return run_checked([self.cli, "-H", f"unix://{self.sock}", *args], env=self.env)

    def up(self, k: int) -> list[int]:
        self.tmp.mkdir(parents=True)
        (self.tmp / "daemon.json").write_text("{}")
        with open(self.tmp / "dockerd.log", "wb") as log:  # own session: Ctrl-C must not stop it before us
            self.proc = subprocess.Popen(self.dockerd_argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        self.wait_ready()
        self.docker("import", str(self.image_tarball()), IMAGE)
        for _ in range(k):
            self.docker("run", "-d", "--network", "none", IMAGE, *SLEEP)
        return self.monitors(f"{self.exec_root}/", "containerd-shim-runc-v2")

    def dockerd_argv(self) -> list[str]:
        """A private daemon: temp data/exec roots and socket, no bridge or iptables, vfs storage."""
        return [self.dockerd, "--config-file", str(self.tmp / "daemon.json"), "--data-root", str(self.tmp / "data"),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.tmp / "docker.pid"),
                "-H", f"unix://{self.sock}", "--bridge", "none", "--iptables=false", "--ip6tables=false",
                "--ip-masq=false", "--userland-proxy=false", "--storage-driver", "vfs",
                "--cgroup-parent", f"{CGROUP_PARENT}/docker"]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise Skip(f"dockerd exited with {self.proc.returncode} (see its log)")
            if run_quiet([self.cli, "-H", f"unix://{self.sock}", "version"])[0] == 0:
                return
            time.sleep(0.2)
        raise Skip("dockerd did not answer within a minute")

    def extra(self) -> list[tuple[str, int]]:
        daemons = [("dockerd (one per host)", self.proc.pid)] if self.proc else []
        return daemons + [("containerd (one per host)", p) for p in self.monitors(str(self.exec_root), "containerd")]

    def down(self) -> list[str]:
        problems = []
        if self.proc and self.proc.poll() is None:
            try:
                ids = self.docker("ps", "-aq").split()
                if ids:
                    self.docker("rm", "-f", *ids)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                problems.append(f"{self.name}: removing containers: {e}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name}: dockerd ignored SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
        return self.finish(problems)


class Podman(PeerSetup):
    """podman with temp storage, run root and containers.conf; one conmon per container."""

    name = "podman: conmon"
    default_dirs = ("/var/lib/containers", "/run/containers", "/run/libpod", "/run/crun")

    def __init__(self, tmp: Path, template: Path) -> None:
        if not shutil.which("podman") or not shutil.which("conmon"):
            raise Skip("podman (with conmon) is not installed")
        super().__init__(tmp / "podman", template)
        self.runroot = self.tmp / "run"
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.tmp / "containers.conf")}
        self.runtime = "?"

    def podman(self, *args: str) -> str:
        base = ["podman", "--root", str(self.tmp / "storage"), "--runroot", str(self.runroot),
                "--tmpdir", str(self.tmp / "libpod"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file"]
        return run_checked([*base, *args], env=self.env)

    def write_conf(self) -> None:
        """Default ulimits at or below this process's hard limits (without CAP_SYS_RESOURCE the runtime
        cannot raise them: podman's default of 1048576 open files fails here)."""
        limits = []
        for name, res in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
            hard = resource.getrlimit(res)[1]
            value = 1024 if hard == resource.RLIM_INFINITY else min(hard, 1024)
            limits.append(f'"{name}={value}:{value}"')
        (self.tmp / "containers.conf").write_text(
            f"[containers]\ndefault_ulimits = [{', '.join(limits)}]\n\n"
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')

    def up(self, k: int) -> list[int]:
        self.tmp.mkdir(parents=True)
        self.write_conf()
        self.podman("import", str(self.image_tarball()), IMAGE)
        for _ in range(k):
            self.podman("run", "-d", "--network", "none", "--cgroup-parent", f"{CGROUP_PARENT}/podman",
                        IMAGE, *SLEEP)
        info = json.loads(self.podman("info", "--format", "json"))
        self.runtime = info.get("host", {}).get("ociRuntime", {}).get("name", "?")
        self.name = f"podman: conmon (+ {self.runtime})"
        return self.monitors(str(self.runroot), "conmon")

    def down(self) -> list[str]:
        problems = []
        conmons = self.monitors(str(self.runroot), "conmon")
        if self.tmp.exists():
            try:
                self.podman("rm", "--all", "--force", "--time", "0")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                problems.append(f"{self.name}: removing containers: {e}")
        problems += [f"{self.name}: conmon {p} did not exit" for p in wait_gone(conmons, 20)]
        return self.finish(problems)


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
        if not isinstance(setup, PeerSetup):
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
        for peer in (Docker, Podman):
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
