"""Operations on an existing container: start, kill, delete (runc's semantics).

Kept apart from `create` so these frequent, short commands import little."""

from __future__ import annotations

import select
import time

from dockyard.runtime import oslite as os
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.hooks import run_hooks
from dockyard.runtime.state import EXEC_FIFO, StateStore, process_alive

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

    from dockyard.runtime.cgroups import Cgroup


def container_cgroup(state: dict[str, Any]) -> Cgroup:
    """The container's cgroup; a relative cgroupsPath is found where the init process lives."""
    from dockyard.runtime.cgroups import open_cgroup  # `start` has no use for it

    return open_cgroup(state.get("cgroups_path"), state["id"], root_pid=state["pid"])


def write_pid_file(path: str | None, pid: int) -> None:
    """Write pid to path atomically (nothing when path is empty)."""
    if not path:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def start(store: StateStore, cid: str, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Let a created container's init exec the user process; run poststart hooks. state is the
    container's saved state when the caller holds it already (`run`), with the exec fifo's
    read end as "fifo_fd" when create() opened it: the container was created just now and may
    even have run to its end already, so its status is not checked."""
    state = state or store.load(cid)
    fifo = os.path.join(store.dir(cid), EXEC_FIFO)
    fd = state.pop("fifo_fd", -1)
    if fd < 0:
        status = store.status(state)
        if status == "stopped":
            raise RuntimeFailure("cannot start a container that has stopped")
        if status != "created":
            raise RuntimeFailure(f"cannot start an already {status} container")
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        # Opening the read end releases the init's blocking open of the write end; it then
        # writes one byte. select wakes as soon as it does (or its end closes: it died).
        while True:
            if select.select([fd], [], [], 0.01)[0]:
                try:
                    if os.read(fd, 1):
                        break
                except BlockingIOError:
                    pass
            if not process_alive(state["pid"], state.get("pid_start")):
                raise RuntimeFailure("cannot start a container that has stopped")
    finally:
        os.close(fd)
    os.unlink(fifo)
    _run_post_hooks(store, state, "poststart")
    return state


def kill(store: StateStore, cid: str, sig: int, all_processes: bool = False) -> None:
    """Send a signal to the init process, or with all_processes to every process in the cgroup."""
    state = store.load(cid)
    if store.status(state) == "stopped":
        raise RuntimeFailure("container not running")
    if all_processes:
        container_cgroup(state).kill_all(sig)
    else:
        os.kill(state["pid"], sig)


def kill_and_wait(pid: int, start_time: int | None, timeout: float = 10.0) -> None:
    """SIGKILL pid and wait (reaping it if it is our child) until it is gone."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_alive(pid, start_time) and time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        time.sleep(0.001)


def delete(store: StateStore, cid: str, force: bool = False, state: dict[str, Any] | None = None) -> None:
    """Remove a stopped (or, with force, any) container: processes, cgroup, state; poststop hooks.
    state is the container's saved state when the caller holds it already (`run`)."""
    if state is None:
        try:
            state = store.load(cid)
        except RuntimeFailure:
            if force:
                return
            raise
    status = store.status(state)
    if status in ("running", "paused") and not force:
        raise RuntimeFailure(f"cannot delete container {cid} that is not stopped: {status}")
    cgroup = container_cgroup(state)
    if status != "stopped":
        if cgroup.exists():
            cgroup.kill_all(9)
            if status == "paused":
                cgroup.thaw()
        kill_and_wait(state["pid"], state.get("pid_start"))
    elif cgroup.exists() and cgroup.pids():
        cgroup.kill_all(9)  # leftovers of a container that shared the host pid namespace
    cgroup.destroy()
    _run_post_hooks(store, state, "poststop")
    store.remove(cid)


def _run_post_hooks(store: StateStore, state: dict[str, Any], kind: str) -> None:
    """Run the poststart or poststop hooks (failures only warn), with the state document on their
    stdin; without hooks that document (a status check: /proc, the freezer) is not even built."""
    if (state["config"].get("hooks") or {}).get(kind):
        run_hooks(state["config"], kind, store.oci_state(state), fatal=False)
