"""Docker and Podman as reference peers for the benchmarks: each started on private temp state
(dockerd with its own containerd, data root, exec root and socket; podman with its own storage,
run root and containers.conf), driven through its own CLI, and removed again without touching the
host's own daemons, bridges or rules (dockerd keeps its networks' bridges when it stops: they go
with its networks, or by their names in its network store when it died first)."""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

from _common import cmdline, kill_pid, pids_with_arg, run_quiet, wait_gone

IMAGE = "localhost/dockyard-bench/busybox:latest"


class Skip(Exception):
    """A reference peer is not installed or not usable here."""


def run_checked(argv: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run a command, return its stdout; raise RuntimeError with its stderr if it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited with {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first."""
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True)


def rootfs_tarball(rootfs: Path, path: Path) -> Path:
    """A rootfs directory as a tarball for `docker import` / `podman import`."""
    with tarfile.open(path, "w") as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    return path


def dockerd_bridges(data_root: Path) -> set[str]:
    """The bridges named in a dockerd's network store (BoltDB values are JSON, stored as is); it
    may still hold names of removed networks, whose bridges are gone."""
    try:
        data = (data_root / "network" / "files" / "local-kv.db").read_bytes()
    except FileNotFoundError:
        return set()
    return {name.decode() for name in re.findall(rb'"BridgeName":"([^"/]{1,15})"', data)}


def remove_bridges(names: set[str]) -> list[str]:
    """Delete those of the named links that exist and are bridges; the ones deleted."""
    removed = []
    for name in sorted(names):
        if os.path.isdir(f"/sys/class/net/{name}/bridge"):
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
            removed.append(name)
    return removed


class PeerEngine:
    """A peer engine on private state under tmp; `cli(...)` is the argv of one of its commands."""

    name = "?"
    # default state paths the tools create whatever flags say; removed afterwards if new (and empty)
    default_dirs: tuple[str, ...] = ()

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = dict(os.environ)
        self.preexisting = {d for d in self.default_dirs if os.path.exists(d)}

    def cli(self, *args: str) -> list[str]:
        raise NotImplementedError

    def run(self, *args: str) -> str:
        """One checked CLI command; its stdout."""
        return run_checked(self.cli(*args), env=self.env)

    def start(self) -> None:
        """Bring the engine up (a daemon, or just the state dirs)."""
        raise NotImplementedError

    def remove_all(self) -> None:
        """Force-remove every container."""
        raise NotImplementedError

    def daemons(self) -> list[tuple[str, int]]:
        """(label, pid) of the engine's long-lived daemons (none for a daemonless engine)."""
        return []

    def stop(self) -> list[str]:
        """Remove the containers, stop the daemons, delete the state; what was left behind."""
        raise NotImplementedError

    def monitors(self, predicate: str, argv0_suffix: str) -> list[int]:
        """Live processes whose argv[0] ends with argv0_suffix and whose command line names predicate."""
        return [p for p in pids_with_arg(predicate) if cmdline(p)[:1] and cmdline(p)[0].endswith(argv0_suffix)]

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


DOCKERD_CHAINS = {"filter": ("DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"),
                  "nat": ("DOCKER",)}


def iptables_rules(table: str) -> list[str]:
    """`iptables -t table -S`, one rule or chain a line."""
    return run_checked(["iptables", "-w", "-t", table, "-S"]).splitlines()


def forward_policy() -> str:
    """The filter table's FORWARD policy (ACCEPT or DROP)."""
    return next(line.split()[2] for line in iptables_rules("filter") if line.startswith("-P FORWARD "))


def remove_dockerd_iptables(bridges: set[str], forward: str) -> None:
    """What a dockerd with iptables leaves when it stops: its rules in the built-in chains (the
    jumps to its chains, those naming one of its bridges), its chains; the FORWARD policy back
    to forward."""
    for table, chains in DOCKERD_CHAINS.items():
        for line in iptables_rules(table):
            words = shlex.split(line)
            if words[0] == "-A" and words[1] not in chains and (
                    any(w in chains or w in bridges for w in words)):
                subprocess.run(["iptables", "-w", "-t", table, "-D", *words[1:]], capture_output=True, check=False)
        present = {line.split()[1] for line in iptables_rules(table) if line.startswith("-N ")}
        for verb in ("-F", "-X"):  # all flushed first: they jump to each other
            for chain in chains:
                if chain in present:
                    subprocess.run(["iptables", "-w", "-t", table, verb, chain], capture_output=True, check=False)
    subprocess.run(["iptables", "-w", "-P", "FORWARD", forward], capture_output=True, check=False)


class DockerEngine(PeerEngine):
    """dockerd (with its own containerd) on a temp data root and socket; no bridge nor iptables
    unless given: a bridge the caller made (dockerd's default network on it) and iptables on
    (then dockerd's chains, its rules and the FORWARD policy it may set are undone at stop; Skip
    if another dockerd's chains are there)."""

    name = "docker"
    default_dirs = ("/run/containerd", "/run/docker")

    def __init__(self, tmp: Path, cgroup_parent: str, storage_driver: str = "overlay2",
                 userland_proxy: bool = False, bridge: str = "none", iptables: bool = False) -> None:
        dockerd = shutil.which("dockerd")
        cli = dockerd and (shutil.which("docker", path=os.path.dirname(dockerd)) or shutil.which("docker"))
        if not dockerd or not cli or not shutil.which("containerd"):
            raise Skip("docker.io (dockerd, docker, containerd) is not installed")
        super().__init__(tmp / "docker")
        self.dockerd, self.docker = dockerd, cli
        self.sock = self.tmp / "docker.sock"
        self.exec_root = self.tmp / "exec"
        self.cgroup_parent = cgroup_parent
        self.storage_driver = storage_driver
        self.userland_proxy = userland_proxy  # docker-proxy serves published ports (bench/network.py)
        self.bridge, self.iptables = bridge, iptables
        self.forward_policy = ""  # before dockerd started with iptables
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "DOCKER_CONFIG": str(self.tmp / "cli")}

    def cli(self, *args: str) -> list[str]:
        return [self.docker, "-H", f"unix://{self.sock}", *args]

    def start(self) -> None:
        if self.iptables:
            if any(line == "-N DOCKER" for line in iptables_rules("filter")):
                raise Skip("another dockerd's iptables chains are on this host")
            self.forward_policy = forward_policy()
        self.tmp.mkdir(parents=True)
        (self.tmp / "daemon.json").write_text("{}")
        argv = [self.dockerd, "--config-file", str(self.tmp / "daemon.json"), "--data-root", str(self.tmp / "data"),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.tmp / "docker.pid"),
                "-H", f"unix://{self.sock}", "--bridge", self.bridge, f"--iptables={str(self.iptables).lower()}",
                "--ip6tables=false", f"--ip-masq={str(self.iptables).lower()}",
                f"--userland-proxy={str(self.userland_proxy).lower()}", "--storage-driver", self.storage_driver,
                "--cgroup-parent", f"{self.cgroup_parent}/docker"]
        with open(self.tmp / "dockerd.log", "wb") as log:  # own session: Ctrl-C must not stop it before us
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Skip(f"dockerd exited with {self.proc.returncode} (see its log)")
            if run_quiet(self.cli("version"))[0] == 0:
                return
            time.sleep(0.2)
        raise Skip("dockerd did not answer within a minute")

    def daemons(self) -> list[tuple[str, int]]:
        found = [("dockerd", self.proc.pid)] if self.proc else []
        return found + [("containerd", p) for p in self.monitors(str(self.exec_root), "containerd")]

    def remove_all(self) -> None:
        ids = self.run("ps", "-aq").split()
        if ids:
            self.run("rm", "-f", *ids)

    def stop(self) -> list[str]:
        problems = []
        if self.proc and self.proc.poll() is None:
            try:
                self.remove_all()
                self.run("network", "prune", "-f")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                problems.append(f"{self.name}: removing containers and networks: {e}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name}: dockerd ignored SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
        bridges = dockerd_bridges(self.tmp / "data") - {self.bridge}
        if self.forward_policy:
            remove_dockerd_iptables({self.bridge, *bridges}, self.forward_policy)
        left = remove_bridges(bridges)
        if left:
            problems.append(f"{self.name}: bridges left by dockerd removed: {', '.join(left)}")
        return self.finish(problems)


class PodmanEngine(PeerEngine):
    """podman with temp storage, run root and containers.conf (daemonless)."""

    name = "podman"
    default_dirs = ("/var/lib/containers", "/run/containers", "/run/libpod", "/run/crun")

    def __init__(self, tmp: Path, cgroup_parent: str, storage_driver: str = "overlay") -> None:
        if not shutil.which("podman") or not shutil.which("conmon"):
            raise Skip("podman (with conmon) is not installed")
        super().__init__(tmp / "podman")
        self.runroot = self.tmp / "run"
        self.cgroup_parent = cgroup_parent
        self.storage_driver = storage_driver
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.tmp / "containers.conf")}

    def cli(self, *args: str) -> list[str]:
        base = ["podman", "--root", str(self.tmp / "storage"), "--runroot", str(self.runroot),
                "--tmpdir", str(self.tmp / "libpod"), "--storage-driver", self.storage_driver,
                "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        if args and args[0] in ("run", "create"):  # every container under the benchmark's cgroup parent
            return [*base, args[0], "--cgroup-parent", f"{self.cgroup_parent}/podman", *args[1:]]
        return [*base, *args]

    def start(self) -> None:
        """Write a containers.conf whose default ulimits stay within this process's hard limits
        (without CAP_SYS_RESOURCE the runtime cannot raise them: podman's 1048576 files fail here)."""
        self.tmp.mkdir(parents=True)
        limits = []
        for name, res in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
            hard = resource.getrlimit(res)[1]
            value = 1024 if hard == resource.RLIM_INFINITY else min(hard, 1024)
            limits.append(f'"{name}={value}:{value}"')
        (self.tmp / "containers.conf").write_text(
            f"[containers]\ndefault_ulimits = [{', '.join(limits)}]\n\n"
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')

    def runtime_name(self) -> str:
        """The OCI runtime podman uses here."""
        info = json.loads(self.run("info", "--format", "json"))
        return info.get("host", {}).get("ociRuntime", {}).get("name", "?")

    def remove_all(self) -> None:
        self.run("rm", "--all", "--force", "--time", "0")

    def stop(self) -> list[str]:
        problems = []
        conmons = self.monitors(str(self.runroot), "conmon")
        if self.tmp.exists():
            try:
                self.remove_all()
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                problems.append(f"{self.name}: removing containers: {e}")
        problems += [f"{self.name}: conmon {p} did not exit" for p in wait_gone(conmons, 20)]
        return self.finish(problems)
