"""The Cgroup interface shared by the v1 and v2 back ends, and the small file helpers both use."""

from __future__ import annotations

import errno
import time
from abc import ABC, abstractmethod  # abc is loaded by the interpreter's start-up anyway

from dockyard.runtime import oslite as os
from dockyard.runtime.errors import RuntimeFailure

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

PROCS = "cgroup.procs"

SIGKILL = 9  # not from `signal`: it imports enum, costly on every container start


class CgroupError(RuntimeFailure):
    """A cgroup operation failed; the message names the file and value involved."""


def read(path: str) -> str:
    """The stripped content of a cgroup file."""
    with open(path) as f:
        return f.read().strip()


def read_or(path: str, default: str | None = None) -> str | None:
    """The stripped content of a cgroup file, or default when it does not exist."""
    try:
        return read(path)
    except FileNotFoundError:
        return default


def read_int(path: str) -> int | None:
    """A cgroup file holding one integer; None if missing or "max"."""
    value = read_or(path)
    if value is None or value == "max":
        return None
    return int(value)


def read_kv(path: str) -> dict[str, int]:
    """A flat-keyed file ("key value" per line, e.g. memory.stat) as a dict; {} if missing."""
    out: dict[str, int] = {}
    for line in (read_or(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.lstrip("-").isdigit():
            out[key] = int(value)
    return out


def write(directory: str, name: str, value: str) -> None:
    """Write value to directory/name, raising CgroupError naming both on failure."""
    write_each(directory, name, (value,))


def write_each(directory: str, name: str, values: Iterable[str]) -> None:
    """Write each value with its own write(2) to one opening of directory/name (a cgroup file
    takes one value per write: device rules, say), raising CgroupError naming the failing one."""
    path = os.path.join(directory, name)
    values = list(values)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open {path} to write {values[0]!r}: {e.strerror}") from e
    try:
        for value in values:
            try:
                os.write(fd, value.encode())
            except OSError as e:
                raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}") from e
    finally:
        os.close(fd)


def write_pid(directory: str, pid: int) -> None:
    """Move pid into the cgroup at directory, retrying while the task is still being created (EINVAL)."""
    for attempt in range(5):
        try:
            write(directory, PROCS, str(pid))
            return
        except CgroupError as e:
            if not isinstance(e.__cause__, OSError) or e.__cause__.errno != errno.EINVAL or attempt == 4:
                raise
            time.sleep(0.03)


def read_procs(directory: str) -> list[int]:
    """Pids listed in directory/cgroup.procs and in every descendant cgroup."""
    pids: list[int] = []
    for root, _dirs, _files in os.walk(directory):
        try:
            pids.extend(int(p) for p in read(os.path.join(root, PROCS)).split())
        except FileNotFoundError:
            continue
    return pids


def mkdirs(path: str) -> None:
    """mkdir -p, with a CgroupError on failure."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise CgroupError(f"cannot create cgroup {path}: {e.strerror}") from e


def remove_tree(path: str, timeout: float = 3.0) -> None:
    """Remove a cgroup directory and its sub-cgroups (deepest first); retry while busy; absent is fine."""
    try:
        _rmdir(path)  # the usual case: a leaf cgroup, no need to list it
        return
    except OSError:
        pass  # sub-cgroups (EBUSY) or busy: the walk below retries
    delay = 0.01
    deadline = time.monotonic() + timeout
    while True:
        try:
            for root, dirs, _files in os.walk(path, topdown=False):
                for d in dirs:
                    _rmdir(os.path.join(root, d))
            _rmdir(path)
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise CgroupError(f"cannot remove cgroup {e.filename or path}: {e.strerror}") from e
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def wait_for(check: Callable[[], bool], timeout: float, what: str, retry: Callable[[], None] | None = None) -> None:
    """Poll check() with a growing delay until true; call retry() between polls; CgroupError on timeout."""
    delay = 0.001
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise CgroupError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
        if retry is not None:
            retry()


def signal_pids(pids: list[int], sig: int) -> None:
    """Send sig to each pid, ignoring processes that already exited."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Cgroup(ABC):
    """One container's cgroup, in every hierarchy it lives in."""

    version: int

    @abstractmethod
    def create(self) -> None:
        """Create the cgroup directories (idempotent)."""

    @abstractmethod
    def apply(self, resources: dict[str, Any]) -> None:
        """Write OCI linux.resources; keys that are absent are left untouched."""

    @abstractmethod
    def add_process(self, pid: int) -> None:
        """Move pid into the cgroup."""

    def join_self(self) -> bool:
        """Move the calling single-threaded process in where the kernel makes that cheap.

        Moving a whole process takes the kernel's global threadgroup lock, whose first use
        waits for an RCU grace period (10-20 ms); a thread moving itself through v1's `tasks`
        file does not. Returns True when the process is now in every hierarchy; otherwise
        `add_remaining(pid)` must complete the move from another process."""
        return False

    def self_joinable(self) -> bool:
        """Whether join_self() alone puts a process in every hierarchy of this cgroup."""
        return False

    def add_remaining(self, pid: int) -> None:
        """Finish what join_self() could not do (by default: everything)."""
        self.add_process(pid)

    def enter(self, pid: int) -> None:
        """Join an existing container's cgroup (used by exec); same as add_process."""
        self.add_process(pid)

    @abstractmethod
    def pids(self) -> list[int]:
        """All processes in the cgroup, including sub-cgroups."""

    @abstractmethod
    def freeze(self) -> None:
        """Freeze every process and wait until the kernel reports the cgroup frozen."""

    @abstractmethod
    def thaw(self) -> None:
        """Resume every process."""

    @abstractmethod
    def frozen(self) -> bool:
        """Whether the cgroup is (being) frozen."""

    @abstractmethod
    def kill_all(self, sig: int) -> None:
        """Send sig to every process in the cgroup."""

    @abstractmethod
    def destroy(self) -> None:
        """Remove the cgroup everywhere; idempotent."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the cgroup directory exists."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Usage in the shape of Docker's stats API: memory_stats, cpu_stats, pids_stats, blkio_stats."""

    @abstractmethod
    def mount_sources(self) -> list[tuple[str, str]]:
        """(hierarchy mount name, host path of this cgroup) pairs for mounting cgroupfs in the container."""

    def _signal_frozen(self, sig: int) -> None:
        """Signal all processes while frozen, so none can fork away from the signal.

        A cgroup that was already frozen stays frozen, except after SIGKILL (its processes must run to die).
        """
        was_frozen = self.frozen()
        self.freeze()
        try:
            signal_pids(self.pids(), sig)
        finally:
            if not was_frozen or sig == SIGKILL:
                self.thaw()
