"""One function per runtime verb, over the lifecycle library (the CLI's thin layer)."""

from __future__ import annotations

import sys

from dockyard.runtime import jsonfast, lifecycle
from dockyard.runtime import oslite as os
from dockyard.runtime.argv import Namespace
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.state import OCI_VERSION, StateStore

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

VERSION = "0.1.0"


def version() -> int:
    print(f"dockyard-runtime version {VERSION}\nspec: {OCI_VERSION}")
    return 0


def _count(value: str) -> int:
    if not value.isdigit():
        raise RuntimeFailure(f"--preserve-fds must be a number, got {value!r}")
    return int(value)


def _console(path: str | None) -> Any:
    if not path:
        return None
    from dockyard.runtime.console import connect_console_socket

    return connect_console_socket(path)


def cmd_create(store: StateStore, a: Namespace) -> int:
    from dockyard.runtime.create import create

    create(store, a.id, a.bundle, a.pid_file, _console(a.console_socket), a.no_pivot, _count(a.preserve_fds))
    return 0


def cmd_start(store: StateStore, a: Namespace) -> int:
    lifecycle.start(store, a.id)
    return 0


def cmd_run(store: StateStore, a: Namespace) -> int:
    from dockyard.runtime.foreground import ForegroundConsole, become_subreaper, wait_foreground

    if not a.detach:
        become_subreaper()
    console = _console(a.console_socket)
    fg = None
    loaded = None
    if console is None and not a.detach:
        from dockyard.runtime.config import check_id, load_bundle

        check_id(a.id)
        loaded = load_bundle(os.path.abspath(a.bundle))
        if loaded[0]["process"].get("terminal"):
            fg = ForegroundConsole()
            console = fg.theirs
    from dockyard.runtime.create import create

    state = create(store, a.id, a.bundle, a.pid_file, console, a.no_pivot, _count(a.preserve_fds), loaded,
                   starting=fg is None)
    try:
        if fg is not None:
            fg.receive()
        lifecycle.start(store, a.id, state)
    except BaseException:
        lifecycle.delete(store, a.id, force=True)
        raise
    if a.detach:
        return 0
    code = wait_foreground(state["pid"], fg)
    if not a.keep:
        lifecycle.delete(store, a.id, force=True, state=state)
    return code


def cmd_state(store: StateStore, a: Namespace) -> int:
    print(jsonfast.dumps_indented(store.oci_state(store.load(a.id))))
    return 0


def cmd_kill(store: StateStore, a: Namespace) -> int:
    from dockyard.runtime.signals import parse_signal

    lifecycle.kill(store, a.id, parse_signal(a.signal or "SIGTERM"), a.all)
    return 0


def cmd_delete(store: StateStore, a: Namespace) -> int:
    lifecycle.delete(store, a.id, a.force)
    return 0


def cmd_exec(store: StateStore, a: Namespace) -> int:
    from dockyard.runtime.execute import exec_process, load_process_file, process_from_args
    from dockyard.runtime.foreground import ForegroundConsole, become_subreaper, wait_foreground

    if a.process:
        proc = load_process_file(a.process)
    else:
        if not a.args:
            raise RuntimeFailure("exec needs a command (or --process FILE)")
        proc = process_from_args(store.load(a.id)["config"]["process"], a.args, vars(a))
    become_subreaper()  # also with -d: a process that fails before its exec is ours to reap
    console = _console(a.console_socket)
    fg = None
    if console is None and proc.get("terminal") and not a.detach:
        fg = ForegroundConsole()
        console = fg.theirs
    try:
        pid = exec_process(store, a.id, proc, console, a.pid_file, _count(a.preserve_fds))
    except RuntimeFailure as e:
        # The process never ran: report it with the shell's codes (127 not found, 126 cannot
        # execute), which is what Docker shows for `docker exec` of a missing command.
        code = exec_failure_code(str(e))
        if code is None:
            raise
        sys.stderr.write(f"dockyard-runtime: {e}\n")
        return code
    if fg is not None:
        fg.receive()
    if a.detach:
        return 0
    return wait_foreground(pid, fg)


def exec_failure_code(message: str) -> int | None:
    """127 / 126 for a command that could not be found / executed, else None."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message:
        return 126
    return None


def cmd_list(store: StateStore, a: Namespace) -> int:
    states = []
    for cid in store.ids():
        try:
            states.append(store.oci_state(store.load(cid)))
        except RuntimeFailure:
            continue
    if a.quiet:
        for s in states:
            print(s["id"])
    elif a.format == "json":
        print(jsonfast.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root") for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _container_cgroup(store: StateStore, cid: str) -> Any:
    state = store.load(cid)
    return state, lifecycle.container_cgroup(state)


def cmd_ps(store: StateStore, a: Namespace) -> int:
    state, cgroup = _container_cgroup(store, a.id)
    if store.status(state) == "stopped":
        raise RuntimeFailure("container not running")
    pids = sorted(cgroup.pids())
    if a.format == "json":
        print(jsonfast.dumps(pids))
        return 0
    import subprocess

    out = subprocess.run(["ps", *(a.ps_args or ["-ef"])], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeFailure(f"ps failed: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise RuntimeFailure("couldn't find PID field in ps output") from None
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def cmd_pause(store: StateStore, a: Namespace) -> int:
    state, cgroup = _container_cgroup(store, a.id)
    status = store.status(state)
    if status != "running":
        raise RuntimeFailure(f"container not running (status: {status})")
    cgroup.freeze()
    return 0


def cmd_resume(store: StateStore, a: Namespace) -> int:
    state, cgroup = _container_cgroup(store, a.id)
    if store.status(state) != "paused":
        raise RuntimeFailure("container not paused")
    cgroup.thaw()
    return 0


def _int_flag(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    from dockyard.runtime.units import parse_bytes_or_int

    return parse_bytes_or_int(value, name)


def resources_from_flags(a: Namespace) -> dict[str, Any]:
    """linux.resources from `update`'s flags (sizes accept k/m/g suffixes, -1 = unlimited)."""
    res: dict[str, Any] = {}
    mem = {k: _int_flag(getattr(a, f), f) for k, f in (("limit", "memory"), ("reservation", "memory_reservation"),
                                                       ("swap", "memory_swap"))}
    cpu: dict[str, Any] = {k: _int_flag(getattr(a, f), f) for k, f in (
        ("shares", "cpu_shares"), ("quota", "cpu_quota"), ("period", "cpu_period"),
        ("realtimePeriod", "cpu_rt_period"), ("realtimeRuntime", "cpu_rt_runtime"))}
    cpu.update({"cpus": a.cpuset_cpus, "mems": a.cpuset_mems})
    for key, values in (("memory", mem), ("cpu", cpu)):
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            res[key] = values
    if a.pids_limit is not None:
        res["pids"] = {"limit": _int_flag(a.pids_limit, "pids-limit")}
    if a.blkio_weight is not None:
        res["blockIO"] = {"weight": _int_flag(a.blkio_weight, "blkio-weight")}
    return res


def cmd_update(store: StateStore, a: Namespace) -> int:
    state, cgroup = _container_cgroup(store, a.id)
    if store.status(state) == "stopped":
        raise RuntimeFailure("container not running")
    if a.resources:
        try:
            text = sys.stdin.read() if a.resources == "-" else open(a.resources).read()
            res = jsonfast.loads(text)
        except (OSError, ValueError) as e:
            raise RuntimeFailure(f"cannot read resources {a.resources}: {e}") from None
        if not isinstance(res, dict):
            raise RuntimeFailure("resources must be a JSON object (linux.resources)")
    else:
        res = resources_from_flags(a)
    cgroup.apply(res)
    linux = state["config"].setdefault("linux", {})
    merged = linux.setdefault("resources", {})
    for key, value in res.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    store.save(state)
    return 0


def cmd_features(store: StateStore, a: Namespace) -> int:
    from dockyard.runtime.features import features

    print(jsonfast.dumps_indented(features(), indent=4))
    return 0


def cmd_spec(store: StateStore, a: Namespace) -> int:
    from dockyard.runtime.spec_template import default_spec

    path = os.path.join(a.bundle, "config.json")
    if os.path.exists(path):
        raise RuntimeFailure(f"File {path} exists. Remove it first")
    spec = default_spec()
    if a.rootless:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
    import json

    with open(path, "w") as f:
        json.dump(spec, f, indent=2)
    return 0


def cmd_events(store: StateStore, a: Namespace) -> int:
    if not a.stats:
        raise RuntimeFailure("only `events --stats` is supported")
    state, cgroup = _container_cgroup(store, a.id)
    print(jsonfast.dumps({"type": "stats", "id": a.id, "data": cgroup.stats()}))
    return 0


def preload() -> None:
    """Import what the verbs import lazily (create, start, exec, kill, delete, state, pause):
    for a long-lived process that runs this command line in forks (the shim, the daemon's fork
    server), so that no fork pays for imports. A standalone command imports only its own."""
    import dockyard.runtime.cgroups.devices
    import dockyard.runtime.cgroups.v1
    import dockyard.runtime.cgroups.v2
    import dockyard.runtime.console
    import dockyard.runtime.create
    import dockyard.runtime.execute
    import dockyard.runtime.foreground
    import dockyard.runtime.seccomp_bpf
    import dockyard.runtime.signals  # noqa: F401
    from dockyard.runtime import seccomp
    from dockyard.runtime.cgroups.paths import cgroup_mode

    # host facts every fork would otherwise look up again (each process asks once)
    cgroup_mode()  # the cgroup mounts, from mountinfo
    try:
        seccomp.library_info()  # the library's version and the kernel's seccomp API level
    except seccomp.SeccompError:
        pass  # no libseccomp: the commands that need it report that themselves

