"""Creating a container: validate the bundle, set up its cgroup, fork the processes that build
it, run the create-time hooks, and leave its init waiting on the exec fifo until `start`."""

from __future__ import annotations

from dockyard.runtime import oslite as os
from dockyard.runtime import syscalls
from dockyard.runtime.cgroups import open_cgroup
from dockyard.runtime.config import check_id, load_bundle
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.hooks import has_runtime_hooks, run_hooks
from dockyard.runtime.init import Launch, container_init, direct_child, intermediate, joining_child
from dockyard.runtime.lifecycle import kill_and_wait, write_pid_file
from dockyard.runtime.namespaces import CHILDREN_ONLY, PROC_NAMES, NamespacePlan, join_all, write_id_maps
from dockyard.runtime.process import ProcessSetup
from dockyard.runtime.state import EXEC_FIFO, StateStore, now_rfc3339, process_start_time
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
    """linux.resources with the device rules completed: the config's rules, then the defaults.

    As in runc, the devices of linux.devices are created but usable only when a rule allows them."""
    linux = config.get("linux") or {}
    resources = dict(linux.get("resources") or {})
    devices = list(resources.get("devices") or [])
    devices += ALLOWED_DEVICES
    resources["devices"] = devices
    return resources


def compile_seccomp(config: dict[str, Any], root: str) -> Any:
    """The container's seccomp filter (None without one), through the compiled-program cache of
    the runtime root."""
    spec = (config.get("linux") or {}).get("seccomp")
    if not spec:
        return None
    from dockyard.runtime.seccomp import SeccompError, compile_cached

    try:
        return compile_cached(spec, root)
    except SeccompError as e:
        raise RuntimeFailure(str(e)) from None


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
        late = _release(chan_parent, cgroup, first)
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


def _release(chan_parent: SyncChannel, cgroup: Any, pid: int) -> bool:
    """Let the forked process pid go on once it is in the cgroup. v1 hierarchies are joined by
    the child itself (cheap); anything else is done from here: before it goes on, on v2 (a
    cgroup namespace it makes is rooted where it is), or, for a hybrid host's cgroup2, by the
    caller's add_remaining once the final process is known, overlapping its set-up. Returns
    whether that is still to do."""
    late = cgroup is not None and cgroup.version == 1
    if cgroup is not None and not late:
        cgroup.add_process(pid)
    chan_parent.send("go", join_self=late)
    return late


def spawn_joined(launch: Launch, chan_parent: SyncChannel, chan_child: SyncChannel, cgroup: Any,
                 join_fds: list[tuple[str, int]], child_main) -> int:
    """Fork a process straight into the namespaces of join_fds (exec), without an intermediate:
    the pid and time namespaces apply to the caller's children only, so this process joins them
    around its fork and goes back to its own at once; the child joins the others itself
    (init.joining_child). Returns the child's pid."""
    around = [(kind, fd) for kind, fd in join_fds if kind in CHILDREN_ONLY]
    later = [(kind, fd) for kind, fd in join_fds if kind not in CHILDREN_ONLY]
    own = [(kind, os.open(f"/proc/self/ns/{PROC_NAMES[kind]}", os.O_RDONLY | os.O_CLOEXEC)) for kind, _ in around]
    # the cgroup exists: a child that joins it itself (v1) need not wait for us
    launch.self_join = cgroup is not None and cgroup.version == 1
    # the child is in the container's pid namespace from its first instruction: it must be
    # non-dumpable from then on (see init._enter_namespaces), so its parent is already
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
    try:
        join_all(around)
        pid = os.fork()
        if pid == 0:
            chan_parent.close()
            joining_child(launch, chan_child, later, child_main)
    except OSError as e:
        raise RuntimeFailure(f"cannot start the process in the container: {e.strerror}") from None
    finally:
        join_all(own)  # later forks (hooks) stay in our own namespaces
    chan_child.close()
    for _, fd in later:
        os.close(fd)
    try:
        if launch.self_join or _release(chan_parent, cgroup, pid):
            cgroup.add_remaining(pid)
        return pid
    except BaseException:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise


def spawn_direct(launch: Launch, chan_parent: SyncChannel, chan_child: SyncChannel, cgroup: Any,
                 join_fds: list[tuple[str, int]], resources: dict[str, Any]) -> int:
    """Fork the container's init without an intermediate process: a new pid namespace is
    unshared for our children only, around the fork (then our own is joined back), so the
    child is its pid 1 and enters the other namespaces itself. The cgroup is created and its
    resources applied after the fork, while the child starts on its namespaces and mounts (it
    joins the cgroup before anything that needs it: see init.direct_child). Returns its pid."""
    own_pid_ns = -1
    if "pid" in launch.namespaces.new:
        own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if own_pid_ns >= 0:
            syscalls.unshare(syscalls.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            try:
                chan_parent.close()
                direct_child(launch, chan_child, join_fds, container_init)
            finally:
                os._exit(1)
    except OSError as e:
        raise RuntimeFailure(f"cannot start the container's init: {e}") from None
    finally:
        if own_pid_ns >= 0:
            syscalls.setns(own_pid_ns, syscalls.CLONE_NEWPID)  # later forks (hooks) stay on the host
            os.close(own_pid_ns)
    chan_child.close()
    for _, fd in join_fds:
        os.close(fd)
    try:
        # The child joins v1 hierarchies itself (cheap, see Cgroup.join_self); on v2 it is moved
        # before it creates its cgroup namespace.
        by_self = cgroup is not None and cgroup.self_joinable()
        if cgroup is not None:
            cgroup.create()
            cgroup.apply(resources)
            if not by_self:
                cgroup.add_process(pid)
        chan_parent.send("go", join_self=by_self)  # raises the child's error if it failed meanwhile
        return pid
    except BaseException:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise


def create(store: StateStore, cid: str, bundle: str, pid_file: str | None = None,
           console: Any = None, no_pivot: bool = False, preserve_fds: int = 0,
           loaded: tuple[dict[str, Any], str] | None = None, starting: bool = False) -> dict[str, Any]:
    """Create a container: its init waits on the exec fifo until `start`. loaded is the bundle's
    (config, rootfs) when the caller has read it already. starting (`run`): the caller starts the
    container right away, so the read end of the exec fifo is opened here and returned as
    state["fifo_fd"] (not saved; for lifecycle.start): the init execs as soon as it is ready
    instead of waiting for `start` to open it."""
    check_id(cid)
    bundle = os.path.abspath(bundle)
    config, rootfs = loaded or load_bundle(bundle)
    linux = config.get("linux") or {}
    if config["process"].get("terminal"):
        if console is None:
            raise RuntimeFailure("cannot allocate tty if the runtime will detach without setting console socket")
        import dockyard.runtime.console  # noqa: F401 - the container init uses it after pivot_root
    launch = Launch(config=config, rootfs=rootfs, namespaces=NamespacePlan(linux.get("namespaces") or []),
                    process=ProcessSetup(config["process"]), seccomp=compile_seccomp(config, store.root),
                    console=console, preserve_fds=preserve_fds, no_pivot=no_pivot)
    sdir = store.reserve(cid)
    init_pid = 0
    fifo_reader = -1
    try:
        launch.cgroup = open_cgroup(linux.get("cgroupsPath"), cid)
        fifo = os.path.join(sdir, EXEC_FIFO)
        os.mkfifo(fifo, 0o622)  # writable by the container's user, which opens it after setuid
        os.chmod(fifo, 0o622)
        launch.fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        parent, child = SyncChannel.pair()
        join_fds = launch.namespaces.open_join_fds()
        # A hybrid host's cgroup2 is joined from here after the fork of the init, overlapping its
        # set-up (moving a whole process costs an RCU grace period): that takes the intermediate.
        cg = launch.cgroup
        if launch.namespaces.direct and (cg is None or cg.version == 2 or cg.self_joinable()):
            init_pid = spawn_direct(launch, parent, child, cg, join_fds, cgroup_resources(config))
        else:
            if cg is not None:
                cg.create()
                cg.apply(cgroup_resources(config))
            init_pid = spawn(launch, parent, child, cg, join_fds, container_init)
        if starting and not pid_file:  # else after the pid file: it must exist when the process runs
            fifo_reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        state = {"id": cid, "pid": init_pid, "pid_start": process_start_time(init_pid), "bundle": bundle,
                 "rootfs": rootfs, "created": now_rfc3339(), "cgroups_path": linux.get("cgroupsPath"),
                 "config": config}
        oci = {"ociVersion": config["ociVersion"], "id": cid, "pid": init_pid, "status": "creating",
               "bundle": bundle, "annotations": config.get("annotations") or {}}
        runtime_hooks = has_runtime_hooks(config)
        if not runtime_hooks:
            # Nothing runs here between the init's mounts and its pivot_root: the init does not
            # report its mounts, it gets its hook state at once, and we save ours meanwhile.
            parent.send("hooks", state={**oci, "status": "created"})
            store.save(state)
        else:
            parent.expect("mounted")
            run_hooks(config, "prestart", oci)
            run_hooks(config, "createRuntime", oci)
            parent.send("hooks", state={**oci, "status": "created"})
        parent.expect("created")
        parent.close()
        os.close(launch.fifo_fd)
        if runtime_hooks:
            store.save(state)
        write_pid_file(pid_file, init_pid)
        if starting:
            if fifo_reader < 0:
                fifo_reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            state["fifo_fd"] = fifo_reader
        return state
    except BaseException:
        if fifo_reader >= 0:
            os.close(fifo_reader)
        if init_pid:
            kill_and_wait(init_pid, None)
        if launch.cgroup is not None:
            launch.cgroup.kill_all(9)
            launch.cgroup.destroy()
        store.remove(cid)
        raise
