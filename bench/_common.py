"""Shared helpers of the benchmark scripts: runtimes, bundles, statistics, cleanup."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
VENV_PYTHON = VENV_BIN / "python"
CGROUP_ROOT = Path("/sys/fs/cgroup")
BENCH_CGROUP = "/dockyard-bench"  # every benchmark container's cgroup lives below this

if str(PROJECT_ROOT) not in sys.path:  # the scripts run as `python bench/x.py`: make the project importable
    sys.path.insert(0, str(PROJECT_ROOT))

from tests.bundles import Bundle, make_bundle, make_busybox_rootfs  # noqa: E402

__all__ = ["Bundle", "make_bundle", "make_busybox_rootfs"]


@dataclass(frozen=True)
class Runtime:
    """An OCI runtime command line with a private state root."""

    name: str
    argv0: str
    root: Path

    def cmd(self, *args: str) -> list[str]:
        return [self.argv0, "--root", str(self.root), *args]


def find_runtimes(state_dir: Path, only: Sequence[str] = ()) -> list[Runtime]:
    """dockyard-runtime, runc and crun, each if installed (and named in only, when given)."""
    found = []
    for name in ("dockyard-runtime", "runc", "crun"):
        argv0 = str(VENV_BIN / name) if name == "dockyard-runtime" else shutil.which(name)
        if argv0 and os.access(argv0, os.X_OK) and (not only or name in only):
            found.append(Runtime(name, argv0, state_dir / f"state-{name}"))
    return found


def version_line(argv: list[str]) -> str:
    """The first line a `--version` prints, or '?'."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.splitlines()[0].strip() if out.strip() else "?"


def run_measured(argv: list[str], cwd: str | Path | None = None, timeout: float = 60,
                 env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run argv with stdin and stdout on /dev/null and stderr in a file (never a pipe: a container
    created by the command inherits its stdio and may hold a pipe open); return (status, stderr,
    CPU ms): the CPU time (user + system) of the command and of the descendants it reaped, which
    a busy machine inflates far less than the wall time."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=env)
        # a blocking wait (Popen.wait with a timeout polls with growing sleeps, which would
        # round every measurement up to the next 1, 3, 7, 15, 31, 63... ms)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return proc.returncode, err.read().decode(errors="replace").strip(), (usage.ru_utime + usage.ru_stime) * 1000


def run_quiet(argv: list[str], cwd: str | Path | None = None, timeout: float = 60,
              env: dict[str, str] | None = None) -> tuple[int, str]:
    """run_measured without the CPU time: (status, stderr)."""
    code, err, _cpu = run_measured(argv, cwd, timeout, env)
    return code, err


def timed(argv: list[str], cwd: str | Path | None = None, env: dict[str, str] | None = None) -> float:
    """Wall time of one command in milliseconds; raise RuntimeError if it fails."""
    return timed_cpu(argv, cwd, env)[0]


def timed_cpu(argv: list[str], cwd: str | Path | None = None,
              env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall ms, CPU ms) of one command (see run_measured); raise RuntimeError if it fails."""
    start = time.perf_counter()
    code, err, cpu = run_measured(argv, cwd, env=env)
    elapsed = (time.perf_counter() - start) * 1000
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {code}: {err}")
    return elapsed, cpu


def container_ids(rt: Runtime) -> list[str]:
    """The containers in a runtime's state root."""
    if not rt.root.exists():
        return []
    try:
        out = subprocess.run(rt.cmd("list", "--format", "json"), capture_output=True, text=True,
                             timeout=30).stdout.strip()
        return [c["id"] for c in json.loads(out or "[]") or []]
    except (OSError, ValueError, subprocess.SubprocessError):
        return []


def delete_all(rt: Runtime) -> list[str]:
    """Force-delete every container of a runtime's state root; return the ids that remain."""
    for cid in container_ids(rt):
        run_quiet(rt.cmd("delete", "--force", cid), timeout=30)
    return container_ids(rt)


def _hierarchies() -> list[Path]:
    """Each mounted cgroup hierarchy once (v1 controllers, name=systemd, the unified v2 mount)."""
    seen: set[Path] = set()
    out = []
    for entry in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.is_dir() else []:
        real = entry.resolve()
        if real not in seen and entry.is_dir() and (real / "cgroup.procs").exists():
            seen.add(real)
            out.append(real)
    return out


def remove_cgroups(parent: str, timeout: float = 5) -> list[str]:
    """Remove the cgroup parent (e.g. /dockyard-bench/run-123) and everything below it in every
    hierarchy, deepest first, then /dockyard-bench itself if empty; return what could not go."""
    left = []
    for hierarchy in _hierarchies():
        top = hierarchy / parent.strip("/")
        if not top.is_dir():
            continue
        dirs = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        for d in dirs:
            if not _rmdir_retry(d, timeout):
                left.append(str(d))
        try:
            (hierarchy / BENCH_CGROUP.strip("/")).rmdir()
        except OSError:
            pass  # another benchmark's cgroups are still there, or it is already gone
    return left


def _rmdir_retry(path: Path, timeout: float) -> bool:
    """rmdir a cgroup, retrying while its last tasks exit; halfway through, SIGKILL what is still
    in it (only processes of this benchmark's cgroups, e.g. of a runtime interrupted mid-create)."""
    start = time.monotonic()
    killed = False
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            waited = time.monotonic() - start
            if waited > timeout:
                return False
            if waited > timeout / 2 and not killed:
                killed = True
                for pid in cgroup_pids(path):
                    kill_pid(pid, signal.SIGKILL)
            time.sleep(0.05)


def cgroup_pids(path: Path) -> list[int]:
    """The processes in one cgroup."""
    try:
        return [int(line) for line in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def kill_pid(pid: int, sig: int) -> None:
    """Send a signal to one process, ignoring one that is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cgroup_leftovers(parent: str) -> list[str]:
    """Cgroups still present at or below parent, in any hierarchy."""
    return [str(h / parent.strip("/")) for h in _hierarchies() if (h / parent.strip("/")).exists()]


def raise_on_termination() -> None:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt, so that `finally` cleanup runs for them too."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, with a warning when the machine is busy."""
    loads = os.getloadavg()
    busy = "  (busy: expect noisy figures)" if loads[0] > 0.5 * (os.cpu_count() or 1) else ""
    return " ".join(f"{x:.2f}" for x in loads) + busy


@dataclass(frozen=True)
class Summary:
    """Median, 90th percentile and minimum of a sample."""

    n: int
    median: float
    p90: float
    min: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        data = sorted(values)
        p90 = statistics.quantiles(data, n=10, method="inclusive")[8] if len(data) > 1 else data[0]
        return cls(len(data), statistics.median(data), p90, data[0])


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print left-aligned first column, right-aligned others."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        print("  ".join(cells).rstrip())


def cmdline(pid: int) -> list[str]:
    """A process's argv, or [] if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until every process has exited (reaping those that are our children, e.g. orphans
    reparented to us as subreaper); return those still alive at the timeout."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while True:
        for pid in left:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        left = [p for p in left if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def become_subreaper() -> None:
    """Adopt the orphans of what we start (daemonized monitors), so we can wait for and reap them."""
    from dockyard.runtime import syscalls

    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)


def reap_children() -> None:
    """Reap every exited child (call when no subprocess.Popen of ours is still being waited on)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def pids_with_arg(word: str) -> list[int]:
    """Live processes with word in their command line (e.g. this benchmark's temp dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and any(word in a for a in cmdline(int(entry))):
            if alive(int(entry)):
                found.append(int(entry))
    return found
