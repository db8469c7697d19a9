"""`dockyard-runtime`: the OCI runtime command line, as runc's (create, start, state, kill, ...)."""

from __future__ import annotations

import gc
import sys

from dockyard.runtime import jsonfast
from dockyard.runtime import oslite as os
from dockyard.runtime.argv import Command, Flag, Namespace, UsageError, global_usage, parse
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.state import DEFAULT_ROOT, StateStore, now_rfc3339

PROG = "dockyard-runtime"

GLOBAL_FLAGS = [
    Flag("root", "value", DEFAULT_ROOT, "state directory"),
    Flag("log", "value", None, "file for error records (containerd reads it)"),
    Flag("log-format", "value", "text", "text or json", choices=("text", "json")),
    Flag("debug", help="accepted for compatibility"),
    Flag("systemd-cgroup", help="refused: only the cgroupfs driver exists"),
    Flag("cgroup-manager", "value", "cgroupfs", "cgroupfs (systemd is refused)", choices=("cgroupfs", "systemd")),
    Flag("criu", "value", None, "accepted and ignored"),
    Flag("rootless", "value", None, "accepted and ignored"),
    Flag("v,version", help="print the version"),
    Flag("h,help", help="show this help"),
]

_CREATE_FLAGS = [
    Flag("b,bundle", "value", ".", "bundle directory"),
    Flag("pid-file", "value", None, "write the init pid here"),
    Flag("console-socket", "value", None, "unix socket that receives the pty master"),
    Flag("no-pivot", help="use MS_MOVE + chroot instead of pivot_root"),
    Flag("no-new-keyring", help="accepted; no session keyring is created"),
    Flag("preserve-fds", "value", "0", "pass this many extra fds (from 3) to the process"),
]
_SIZE_FLAGS = ("memory", "memory-reservation", "memory-swap", "cpu-shares", "cpu-quota", "cpu-period",
               "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems", "pids-limit", "blkio-weight")

COMMANDS = [
    Command("create", "create a container (its process waits for `start`)", _CREATE_FLAGS, ("id",)),
    Command("start", "start a created container", args=("id",)),
    Command("run", "create and start a container, and wait for it", _CREATE_FLAGS + [
        Flag("d,detach", help="do not wait"), Flag("keep", help="keep the container after it exits")],
        ("id",)),
    Command("state", "print a container's state as JSON", args=("id",)),
    Command("kill", "send a signal (default SIGTERM) to a container", [
        Flag("a,all", help="signal every process of the container")], ("id",), ("signal",)),
    Command("delete", "delete a container", [Flag("f,force", help="kill it first if it runs")], ("id",),
            aliases=("rm",)),
    Command("exec", "run a process in a running container", [
        Flag("p,process", "value", None, "process.json to run"),
        Flag("t,tty", help="allocate a terminal"),
        Flag("console-socket", "value", None, "unix socket that receives the pty master"),
        Flag("cwd", "value", None, "working directory"),
        Flag("e,env", "list", help="KEY=value, repeatable"),
        Flag("u,user", "value", None, "UID[:GID]"),
        Flag("g,additional-gids", "list", help="additional group, repeatable"),
        Flag("c,cap", "list", help="additional capability, repeatable", dest="caps"),
        Flag("no-new-privs", help="set no_new_privs"),
        Flag("d,detach", help="do not wait"),
        Flag("pid-file", "value", None, "write the process pid here"),
        Flag("preserve-fds", "value", "0", "pass this many extra fds"),
        Flag("process-label", "value", None, "accepted and ignored"),
        Flag("apparmor", "value", None, "accepted and ignored"),
        Flag("cgroup", "value", None, "accepted and ignored"),
    ], ("id",), rest="args"),
    Command("list", "list containers", [
        Flag("f,format", "value", "table", "table or json", choices=("table", "json")),
        Flag("q,quiet", help="ids only")], aliases=("ls",)),
    Command("ps", "list the processes of a container", [
        Flag("f,format", "value", "table", "table or json", choices=("table", "json"))], ("id",), rest="ps_args"),
    Command("pause", "freeze every process of a container", args=("id",)),
    Command("resume", "thaw a paused container", args=("id",)),
    Command("update", "change a container's resource limits", [
        Flag("r,resources", "value", None, "linux.resources JSON file, '-' for stdin"),
        *(Flag(name, "value") for name in _SIZE_FLAGS)], ("id",)),
    Command("features", "print the features this runtime supports"),
    Command("spec", "write a default config.json", [
        Flag("b,bundle", "value", ".", "bundle directory"), Flag("rootless", help="add a user namespace")]),
    Command("events", "print a container's resource usage (--stats)", [
        Flag("stats", help="one snapshot"), Flag("interval", "value", "5s", "accepted")], ("id",)),
]


def _log_error(log: str | None, log_format: str, message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    if not log:
        return
    try:
        with open(log, "a") as f:
            if log_format == "json":
                f.write(jsonfast.dumps({"level": "error", "msg": message, "time": now_rfc3339()}) + "\n")
            else:
                f.write(f'time="{now_rfc3339()}" level=error msg={jsonfast.dumps(message)}\n')
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    try:
        cmd, args = parse(sys.argv[1:] if argv is None else argv, GLOBAL_FLAGS, COMMANDS, PROG)
    except UsageError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 1
    if args.version:
        from dockyard.runtime.commands import version

        return version()
    if cmd is None or args.help:
        print(global_usage(PROG, "The OCI runtime of dockyard (runc's command line).", GLOBAL_FLAGS, COMMANDS))
        return 0
    try:
        return _run(cmd, args)
    except RuntimeFailure as e:
        _log_error(args.log, args.log_format, str(e))
        return 1
    except KeyboardInterrupt:
        return 130


def _run(cmd: Command, args: Namespace) -> int:
    if args.systemd_cgroup or args.cgroup_manager == "systemd":
        raise RuntimeFailure("the systemd cgroup driver is not supported: use cgroupfs")
    from dockyard.runtime import commands

    handler = getattr(commands, "cmd_" + cmd.name)
    return handler(StateStore(os.path.abspath(args.root)), args) or 0


def call(argv: list[str]) -> int:
    """One command line (global flags, verb, arguments) run in the calling process, its failure
    raised as RuntimeFailure rather than printed: for a caller that has imported the runtime and
    runs its light verbs (start, kill, delete) without a fork, as the shim does."""
    try:
        cmd, args = parse(argv, GLOBAL_FLAGS, COMMANDS, PROG)
    except UsageError as e:
        raise RuntimeFailure(str(e)) from None
    if cmd is None:
        raise RuntimeFailure("no command given")
    return _run(cmd, args)


def main_and_exit() -> None:
    """The launcher's entry point: main(), then leave without finalizing the interpreter.

    Freeing every imported module at exit costs ~3 ms and a runtime command has nothing left to
    clean up (the kernel closes its descriptors); only Python's own buffers need flushing. The
    cyclic garbage collector stays off in this short-lived process: the imports of a command
    would trigger a dozen collections (~1 ms), and the forked children would copy the pages
    it touches."""
    gc.disable()
    code = main()  # an unexpected exception goes on to the normal exit, which prints it
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
