"""Code that runs in the processes the runtime forks: the namespace-creating intermediate,
the container's init, and an exec'd process. None of it returns: it execs or exits."""

from __future__ import annotations

import _signal  # the C module: `signal` imports enum, too slow for every container start
import errno

from dockyard.runtime import oslite as os
from dockyard.runtime import rootfs as rootfs_mod
from dockyard.runtime import syscalls
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.hooks import has_runtime_hooks, run_hooks
from dockyard.runtime.namespaces import NamespacePlan, join_all
from dockyard.runtime.process import (
    ProcessSetup,
    apply_oom_score_adj,
    apply_rlimits,
    build_env,
    close_fds_except,
    lookup_executable,
)
from dockyard.runtime.sync import SyncChannel, report_and_exit

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    import socket
    from typing import Any


class Launch:
    """Everything a forked child needs, prepared (and validated) by the runtime before fork."""

    def __init__(self, config: dict[str, Any], rootfs: str, namespaces: NamespacePlan, process: ProcessSetup,
                 seccomp: Any, console: socket.socket | None, preserve_fds: int = 0,
                 no_pivot: bool = False) -> None:
        self.config = config
        self.rootfs = rootfs
        self.namespaces = namespaces
        self.process = process
        self.seccomp = seccomp
        self.console = console
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.cgroup: Any = None
        self.fifo_fd = -1
        self.enter_cgroup: Any = None  # set in a direct child: joins the cgroup (see direct_child)
        self.self_join = False  # a joining child enters its (existing) cgroup without a "go" (see joining_child)


def _join_cgroup(launch: Launch, chan: SyncChannel) -> None:
    """Wait for the runtime to set up the cgroup (and place us in it, when we cannot)."""
    if chan.expect("go")["join_self"]:
        launch.cgroup.join_self()


def _enter_namespaces(launch: Launch, join_fds: list[tuple[str, int]], exclude: int, chan: SyncChannel) -> None:
    """Join the namespaces of join_fds (a user namespace first, with its id maps written by the
    runtime) and create the new ones but `exclude`."""
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
    ns = launch.namespaces
    join_all([f for f in join_fds if f[0] == "user"])
    if ns.new_user:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        chan.send("userns")
        chan.expect("maps")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    join_all([f for f in join_fds if f[0] != "user"])
    flags = ns.unshare_flags() & ~exclude
    if flags:
        syscalls.unshare(flags)


def intermediate(launch: Launch, chan: SyncChannel, join_fds: list[tuple[str, int]], child_main) -> None:
    """First child: wait to be placed in the cgroup, enter/create namespaces, fork the process that
    will be pid 1 of the new pid namespace, report its pid, and exit."""
    try:
        _join_cgroup(launch, chan)
        _enter_namespaces(launch, join_fds, 0, chan)
        # The final process shares our channel: it must not speak before we reported its pid,
        # so its first message waits for this pipe to close (when we exit); its work before
        # that (the rootfs mounts) overlaps our exit.
        hold_r, hold_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(hold_w)
            chan.turn_fd = hold_r
            child_main(launch, chan)
            os._exit(1)
        chan.send("pid", pid=pid)
    except BaseException as e:  # noqa: BLE001 - every failure goes to the runtime
        report_and_exit(chan, e)
    os._exit(0)


def direct_child(launch: Launch, chan: SyncChannel, join_fds: list[tuple[str, int]], child_main) -> None:
    """The container's init forked straight into its new pid namespace (or the host's): enter
    the other namespaces, then go on as child_main while the runtime sets up the cgroup. The
    cgroup (and a new cgroup namespace, which is rooted where we are when it is made) is joined
    by launch.enter_cgroup, which rootfs.prepare calls before the first mount that needs it."""
    cgroupns = syscalls.CLONE_NEWCGROUP if "cgroup" in launch.namespaces.new else 0

    def enter_cgroup() -> None:
        _join_cgroup(launch, chan)
        if cgroupns:
            syscalls.unshare(cgroupns)

    try:
        _enter_namespaces(launch, join_fds, syscalls.CLONE_NEWPID | cgroupns, chan)
        launch.enter_cgroup = enter_cgroup
    except BaseException as e:  # noqa: BLE001 - every failure goes to the runtime
        report_and_exit(chan, e)
    child_main(launch, chan)
    os._exit(1)


def joining_child(launch: Launch, chan: SyncChannel, join_fds: list[tuple[str, int]], child_main) -> None:
    """A process forked straight into a running container's pid (and time) namespace
    (create.spawn_joined): wait to be placed in the cgroup, join the other namespaces of
    join_fds, then go on as child_main."""
    try:
        if launch.self_join:
            launch.cgroup.join_self()
        else:
            _join_cgroup(launch, chan)
        _enter_namespaces(launch, join_fds, 0, chan)
    except BaseException as e:  # noqa: BLE001 - every failure goes to the runtime
        report_and_exit(chan, e)
    child_main(launch, chan)
    os._exit(1)


def _finalize(launch: Launch) -> tuple[str, list[str], dict[str, str]]:
    """Process attributes applied while still privileged; returns what to exec."""
    proc = launch.process
    apply_oom_score_adj(proc.proc)
    apply_rlimits(proc.proc)
    proc.chdir()
    if launch.seccomp is not None and not proc.no_new_privs:
        launch.seccomp.load()  # without no_new_privs, loading needs CAP_SYS_ADMIN: do it before setuid
    proc.switch_user()
    env = build_env(proc.proc, proc.uid)
    path = lookup_executable(proc.proc["args"][0], env)
    proc.set_no_new_privs()
    return path, proc.proc["args"], env


def _exec(launch: Launch, path: str, args: list[str], env: dict[str, str]) -> None:
    """Final step: close every runtime fd, reset signals Python ignores, seccomp, execve."""
    close_fds_except(2 + launch.preserve_fds)
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    if launch.seccomp is not None and launch.process.no_new_privs:
        launch.seccomp.load()
    try:
        os.execve(path, args, env)
    except OSError as e:
        os.write(2, f"exec {args[0]}: {e.strerror}\n".encode())
        os._exit(127 if e.errno == errno.ENOENT else 126)


def _apply_sysctls(config: dict[str, Any]) -> None:
    for key, value in ((config.get("linux") or {}).get("sysctl") or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise RuntimeFailure(f"cannot set sysctl {key}={value}: {e.strerror}") from None


def container_init(launch: Launch, chan: SyncChannel) -> None:
    """The container's pid 1 before exec: build the rootfs, pivot, apply the process settings,
    report 'created', then wait on the exec fifo until `start` and exec the user process."""
    config = launch.config
    try:
        rootfs_mod.prepare(launch.rootfs, config, launch.cgroup, launch.namespaces.types, launch.enter_cgroup)
        if has_runtime_hooks(config):
            chan.send("mounted")  # the runtime runs them now
        state = chan.expect("hooks")["state"]
        run_hooks(config, "createContainer", state)
        rootfs_mod.pivot(launch.rootfs, launch.no_pivot)
        if config.get("hostname"):
            syscalls.sethostname(config["hostname"])
        if config.get("domainname"):
            syscalls.setdomainname(config["domainname"])
        _apply_sysctls(config)
        rootfs_mod.finish(config)
        if launch.console is not None:
            from dockyard.runtime.console import setup_terminal  # loaded before fork by the runtime

            setup_terminal(launch.console, launch.process.proc.get("consoleSize"), bind_console=True)
        path, args, env = _finalize(launch)
        chan.send("created")
    except BaseException as e:  # noqa: BLE001
        report_and_exit(chan, e)
    chan.close()
    try:
        fd = os.open(f"/proc/self/fd/{launch.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)  # blocks until `start`
        os.close(launch.fifo_fd)
        # startContainer hooks run before `start` is released, so they precede poststart.
        run_hooks(config, "startContainer", state)
        os.write(fd, b"0")
        os.close(fd)
    except (RuntimeFailure, OSError) as e:
        os.write(2, f"container init: {e}\n".encode())
        os._exit(1)
    _exec(launch, path, args, env)


def exec_child(launch: Launch, chan: SyncChannel) -> None:
    """A process joining a running container (`exec`), after the namespaces were entered."""
    try:
        if launch.console is not None:
            from dockyard.runtime.console import setup_terminal  # loaded before fork by the runtime

            setup_terminal(launch.console, launch.process.proc.get("consoleSize"), bind_console=False)
        path, args, env = _finalize(launch)
        chan.send("ready")
    except BaseException as e:  # noqa: BLE001
        report_and_exit(chan, e)
    chan.close()
    _exec(launch, path, args, env)
