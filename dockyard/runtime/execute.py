"""`exec`: run another process inside a running container, joining everything it is in."""

from __future__ import annotations

from dockyard.runtime import jsonfast
from dockyard.runtime import oslite as os
from dockyard.runtime.caps import normalise
from dockyard.runtime.cgroups import open_cgroup
from dockyard.runtime.config import validate_process
from dockyard.runtime.create import compile_seccomp, spawn_joined
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.init import Launch, exec_child
from dockyard.runtime.lifecycle import write_pid_file
from dockyard.runtime.namespaces import NamespacePlan, process_namespace_fds
from dockyard.runtime.process import ProcessSetup
from dockyard.runtime.state import StateStore
from dockyard.runtime.sync import SyncChannel

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any


def process_from_args(base: dict[str, Any], args: list[str], opts: dict[str, Any]) -> dict[str, Any]:
    """runc's exec without --process: the container's process, with args and flags applied."""
    proc: dict[str, Any] = jsonfast.loads(jsonfast.dumps(base))  # type: ignore[assignment]
    proc["args"] = args
    proc["terminal"] = bool(opts.get("tty"))
    if opts.get("cwd"):
        proc["cwd"] = opts["cwd"]
    if opts.get("env"):
        proc["env"] = list(proc.get("env") or []) + list(opts["env"])
    if opts.get("user"):
        uid, _, gid = opts["user"].partition(":")
        try:
            proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise RuntimeFailure(f"--user must be UID[:GID], got {opts['user']!r}") from None
    if opts.get("additional_gids"):
        proc.setdefault("user", {})["additionalGids"] = [int(g) for g in opts["additional_gids"]]
    if opts.get("caps"):
        caps = proc.setdefault("capabilities", {})
        for key in ("bounding", "effective", "permitted", "ambient"):
            caps[key] = list(caps.get(key) or []) + [normalise(c) for c in opts["caps"]]
    if opts.get("no_new_privs"):
        proc["noNewPrivileges"] = True
    return proc


def load_process_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            proc = jsonfast.loads(f.read())
    except (OSError, ValueError) as e:
        raise RuntimeFailure(f"cannot read process file {path}: {e}") from None
    validate_process(proc, "process")
    return proc


def _reap_failed(pid: int) -> None:
    """Reap a process that failed before its exec (it was reparented to us, a subreaper): a
    zombie left in the container's pid namespace would keep its init from finishing its exit."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == 0:  # our child, still exiting (or stuck): end it
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    except ChildProcessError:  # not reparented to us: its reaper's business
        pass


def exec_process(store: StateStore, cid: str, proc: dict[str, Any], console: Any = None,
                 pid_file: str | None = None, preserve_fds: int = 0) -> int:
    """Start proc inside the container; return its host pid once it is about to exec."""
    state = store.load(cid)
    status = store.status(state)
    if status in ("stopped", "paused", "created"):
        raise RuntimeFailure(f"cannot exec in a {status} container")
    validate_process(proc)
    if proc.get("terminal"):
        if console is None:
            raise RuntimeFailure("cannot allocate tty if the runtime will detach without setting console socket")
        import dockyard.runtime.console  # noqa: F401 - used by the child after entering the container
    config = state["config"]
    namespaces = (config.get("linux") or {}).get("namespaces") or []
    plan = NamespacePlan.joining({ns["type"] for ns in namespaces})
    launch = Launch(config=config, rootfs=state["rootfs"], namespaces=plan, process=ProcessSetup(proc),
                    seccomp=compile_seccomp(config, store.root), console=console, preserve_fds=preserve_fds)
    join_fds = process_namespace_fds(state["pid"], plan.types | {"user"})
    launch.cgroup = open_cgroup(state.get("cgroups_path"), cid)
    parent, child = SyncChannel.pair()
    pid = spawn_joined(launch, parent, child, launch.cgroup, join_fds, exec_child)
    try:
        parent.expect("ready")
    except BaseException:
        _reap_failed(pid)
        raise
    finally:
        parent.close()
    write_pid_file(pid_file, pid)
    return pid
