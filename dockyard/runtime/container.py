"""Container lifecycle operations: create, start, kill, delete (runc's semantics)."""

from __future__ import annotations

import os
import time

from dockyard.runtime.cgroups import open_cgroup
from dockyard.runtime.config import check_id, load_bundle
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.hooks import run_hooks
from dockyard.runtime.init import Launch, container_init, intermediate
from dockyard.runtime.namespaces import NamespacePlan, write_id_maps
from dockyard.runtime.process import ProcessSetup
from dockyard.runtime.state import EXEC_FIFO, StateStore, now_rfc3339, process_alive, process_start_time
from dockyard.runtime.sync import SyncChannel

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

# Devices every container may use whatever the config's device rules say (as runc appends them).
ALLOWED_DEVICES = [
    {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
      for ma, mi in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2))),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


def cgroup_resources(config: dict[str, Any]) -> dict[str, Any]:
    """linux.resources with the device rules completed: config rules, defaults, config devices."""
    linux = config.get("linux") or {}
    resources = dict(linux.get("resources") or {})
    devices = list(resources.get("devices") or [])
    devices += ALLOWED_DEVICES
    # Unlike runc (which needs a resources.devices rule too), config devices are usable as listed.
    # A fifo ("p") is no device to the cgroup; "u" (unbuffered) is a character device.
    for dev in linux.get("devices") or []:
        if dev["type"] == "p":
            continue
        devices.append({"allow": True, "type": "c" if dev["type"] == "u" else dev["type"],
                        "major": dev.get("major"), "minor": dev.get("minor"), "access": "rwm"})
    resources["devices"] = devices
    return resources


def compile_seccomp(config: dict[str, Any]) -> Any:
    spec = (config.get("linux") or {}).get("seccomp")
    if not spec:
        return None
    from dockyard.runtime.seccomp import SeccompError, compile_filter

    try:
        return compile_filter(spec)
    except SeccompError as e:
        raise RuntimeFailure(str(e)) from None


def write_pid_file(path: str | None, pid: int) -> None:
    """Write pid to path atomically (nothing when path is empty)."""
    if not path:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def spawn(launch: Launch, chan_parent: SyncChannel, chan_child: SyncChannel, cgroup: Any,
          join_fds: list[tuple[str, int]], child_main) -> int:
    """Fork the intermediate process, get it into the cgroup and its user namespace mapped, and
    return the pid of the final process (reported back by the intermediate)."""
    first = os.fork()
    if first == 0:
        chan_parent.close()
        intermediate(launch, chan_child, join_fds, child_main)
    chan_child.close()
    for _, fd in join_fds:
        os.close(fd)
    try:
        # v1 hierarchies are joined by the child itself (cheap); anything else is done from here:
        # before the fork of the final process on v2 (whose cgroup namespace must be rooted at the
        # container's cgroup), or after it, overlapping its set-up, for a hybrid host's cgroup2.
        late = cgroup is not None and cgroup.version == 1
        if cgroup is not None and not late:
            cgroup.add_process(first)
        chan_parent.send("go", join_self=late)
        if launch.namespaces.new_user:
            chan_parent.expect("userns")
            write_id_maps(first, launch.config.get("linux") or {})
            chan_parent.send("maps")
        pid = chan_parent.expect("pid")["pid"]
        if late:
            cgroup.add_remaining(pid)
        return pid
    except BaseException:
        os.kill(first, 9)
        raise
    finally:
        os.waitpid(first, 0)


def create(store: StateStore, cid: str, bundle: str, pid_file: str | None = None,
           console: Any = None, no_pivot: bool = False, preserve_fds: int = 0) -> dict[str, Any]:
    """Create a container: its init waits on the exec fifo until `start`."""
    check_id(cid)
    bundle = os.path.abspath(bundle)
    config, rootfs = load_bundle(bundle)
    linux = config.get("linux") or {}
    if config["process"].get("terminal"):
        if console is None:
            raise RuntimeFailure("cannot allocate tty if the runtime will detach without setting console socket")
        import dockyard.runtime.console  # noqa: F401 - the container init uses it after pivot_root
    launch = Launch(config=config, rootfs=rootfs, namespaces=NamespacePlan(linux.get("namespaces") or []),
                    process=ProcessSetup(config["process"]), seccomp=compile_seccomp(config),
                    console=console, preserve_fds=preserve_fds, no_pivot=no_pivot)
    sdir = store.reserve(cid)
    init_pid = 0
    try:
        launch.cgroup = open_cgroup(linux.get("cgroupsPath"), cid)
        launch.cgroup.create()
        launch.cgroup.apply(cgroup_resources(config))
        fifo = os.path.join(sdir, EXEC_FIFO)
        os.mkfifo(fifo, 0o622)  # writable by the container's user, which opens it after setuid
        os.chmod(fifo, 0o622)
        launch.fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        parent, child = SyncChannel.pair()
        join_fds = launch.namespaces.open_join_fds()
        init_pid = spawn(launch, parent, child, launch.cgroup, join_fds, container_init)
        state = {"id": cid, "pid": init_pid, "pid_start": process_start_time(init_pid), "bundle": bundle,
                 "rootfs": rootfs, "created": now_rfc3339(), "cgroups_path": linux.get("cgroupsPath"),
                 "config": config}
        parent.expect("mounted")
        oci = {"ociVersion": config["ociVersion"], "id": cid, "pid": init_pid, "status": "creating",
               "bundle": bundle, "annotations": config.get("annotations") or {}}
        run_hooks(config, "prestart", oci)
        run_hooks(config, "createRuntime", oci)
        oci["status"] = "created"
        parent.send("hooks", state=oci)
        parent.expect("created")
        parent.close()
        os.close(launch.fifo_fd)
        store.save(state)
        write_pid_file(pid_file, init_pid)
        return state
    except BaseException:
        if init_pid:
            _kill_and_wait(init_pid, None)
        if launch.cgroup is not None:
            launch.cgroup.kill_all(9)
            launch.cgroup.destroy()
        store.remove(cid)
        raise


def start(store: StateStore, cid: str) -> dict[str, Any]:
    """Let a created container's init exec the user process; run poststart hooks."""
    state = store.load(cid)
    status = store.status(state)
    if status == "stopped":
        raise RuntimeFailure("cannot start a container that has stopped")
    if status != "created":
        raise RuntimeFailure(f"cannot start an already {status} container")
    fifo = os.path.join(store.dir(cid), EXEC_FIFO)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        delay = 0.0002
        while True:
            try:
                if os.read(fd, 1):
                    break
            except BlockingIOError:  # the init has the fifo open but has not written yet
                pass
            if not process_alive(state["pid"], state.get("pid_start")):
                raise RuntimeFailure("cannot start a container that has stopped")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
    finally:
        os.close(fd)
    os.unlink(fifo)
    oci = store.oci_state(state)
    run_hooks(state["config"], "poststart", oci, fatal=False)
    return state


def kill(store: StateStore, cid: str, sig: int, all_processes: bool = False) -> None:
    """Send a signal to the init process, or with all_processes to every process in the cgroup."""
    state = store.load(cid)
    if store.status(state) == "stopped":
        raise RuntimeFailure("container not running")
    if all_processes:
        open_cgroup(state.get("cgroups_path"), cid).kill_all(sig)
    else:
        os.kill(state["pid"], sig)


def _kill_and_wait(pid: int, start_time: int | None, timeout: float = 10.0) -> None:
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


def delete(store: StateStore, cid: str, force: bool = False) -> None:
    """Remove a stopped (or, with force, any) container: processes, cgroup, state; poststop hooks."""
    try:
        state = store.load(cid)
    except RuntimeFailure:
        if force:
            return
        raise
    status = store.status(state)
    if status in ("running", "paused") and not force:
        raise RuntimeFailure(f"cannot delete container {cid} that is not stopped: {status}")
    cgroup = open_cgroup(state.get("cgroups_path"), cid)
    if status != "stopped":
        if cgroup.exists():
            cgroup.kill_all(9)
            if status == "paused":
                cgroup.thaw()
        _kill_and_wait(state["pid"], state.get("pid_start"))
    elif cgroup.exists() and cgroup.pids():
        cgroup.kill_all(9)  # leftovers of a container that shared the host pid namespace
    cgroup.destroy()
    oci = store.oci_state(state)
    run_hooks(state["config"], "poststop", oci, fatal=False)
    store.remove(cid)
