"""The last steps before a container process runs: rlimits, user, capabilities, cwd, fds, exec.

Shared by a container's init and by `exec`. Everything that can fail for reasons in the config
is checked before the process commits to running (so `create` reports it, as runc does).
"""

from __future__ import annotations

from dockyard.runtime import oslite as os
from dockyard.runtime import syscalls
from dockyard.runtime.caps import CapabilitySets
from dockyard.runtime.errors import RuntimeFailure

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def apply_rlimits(proc: dict[str, Any]) -> None:
    """Set each process.rlimits entry (prlimit: unsigned 64-bit limits, as the runtime spec's);
    explain the missing CAP_SYS_RESOURCE case."""
    rlimits = proc.get("rlimits")
    if not rlimits:
        return
    for rl in rlimits:
        name = rl["type"]
        res = syscalls.RLIMITS.get(name)
        if res is None:
            raise RuntimeFailure(f"process.rlimits: unknown rlimit type {name!r}")
        soft, hard = rl["soft"], rl["hard"]
        if not 0 <= soft <= syscalls.RLIM_INFINITY or not 0 <= hard <= syscalls.RLIM_INFINITY:
            raise RuntimeFailure(f"process.rlimits: {name} limits must be between 0 and 2**64-1")
        if soft > hard:
            raise RuntimeFailure(f"process.rlimits: {name} soft limit {soft} exceeds hard limit {hard}")
        try:
            syscalls.prlimit(res, (soft, hard))
        except OSError as e:
            current_hard = syscalls.prlimit(res)[1]
            why = ("raising a hard limit needs CAP_SYS_RESOURCE, which this runtime does not have"
                   if current_hard != syscalls.RLIM_INFINITY and hard > current_hard else e.strerror)
            raise RuntimeFailure(f"error setting rlimit {name} to soft={soft} hard={hard} "
                                 f"(current hard limit {current_hard}): {why}") from None


def apply_oom_score_adj(proc: dict[str, Any]) -> None:
    """Write oom_score_adj when it differs from the inherited one."""
    if "oomScoreAdj" not in proc:
        return
    value = proc["oomScoreAdj"]
    with open("/proc/self/oom_score_adj", "r+") as f:
        if int(f.read()) == value:
            return
        try:
            f.seek(0)
            f.write(str(value))
            f.flush()
        except OSError as e:
            raise RuntimeFailure(f"cannot set oom_score_adj to {value}: {e.strerror} "
                                 "(lowering it needs CAP_SYS_RESOURCE)") from None


def build_env(proc: dict[str, Any], uid: int) -> dict[str, str]:
    """The process environment; HOME from the container's passwd when not given (as runc)."""
    env: dict[str, str] = {}
    for item in proc.get("env") or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise RuntimeFailure(f"process.env: entry {item!r} is not KEY=value")
        env[key] = value
    if "HOME" not in env:
        env["HOME"] = _home_of(uid)
    return env


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def lookup_executable(name: str, env: dict[str, str]) -> str:
    """Find args[0] as execve would run it, with runc's error texts."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in env.get("PATH", DEFAULT_PATH).split(":")]
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not (st.st_mode & 0o170000 == 0o100000):
            if "/" in name:
                raise RuntimeFailure(f'exec: "{name}": is a directory: permission denied')
            continue
        if os.access(path, os.X_OK):
            return path
        if "/" in name:
            raise RuntimeFailure(f'exec: "{name}": permission denied')
    if "/" in name:
        raise RuntimeFailure(f'exec: "{name}": stat {name}: no such file or directory')
    raise RuntimeFailure(f'exec: "{name}": executable file not found in $PATH')


class ProcessSetup:
    """A validated process spec, ready to be applied by the process that will exec it."""

    def __init__(self, proc: dict[str, Any]) -> None:
        self.proc = proc
        user = proc.get("user") or {}
        self.uid = user.get("uid", 0)
        self.gid = user.get("gid", 0)
        self.groups = list(user.get("additionalGids") or [])
        self.umask = user.get("umask", 0o022)
        self.caps = CapabilitySets(proc.get("capabilities"))
        self.no_new_privs = bool(proc.get("noNewPrivileges"))
        self.cwd = proc.get("cwd") or "/"

    def chdir(self) -> None:
        """chdir to cwd, refusing a cwd outside the container (compare CVE-2024-21626)."""
        try:
            os.chdir(self.cwd)
        except OSError as e:
            raise RuntimeFailure(f"chdir to cwd ({self.cwd!r}) set in config.json failed: "
                                 f"{e.strerror.lower()}") from None
        try:
            inside = os.getcwd().startswith("/")
        except OSError:  # ENOENT: the directory is unreachable from our root
            inside = False
        if not inside:
            raise RuntimeFailure(f"cwd {self.cwd!r} is outside the container root "
                                 "(possible container breakout)")

    def switch_user(self) -> None:
        """Drop the bounding set, change uid/gid/groups keeping caps, then set the cap sets."""
        self.caps.drop_bounding()
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
        try:
            os.setgroups(self.groups)
        except PermissionError:
            if self.groups:
                raise RuntimeFailure("cannot set additional groups inside this user namespace") from None
        try:
            os.setresgid(self.gid, self.gid, self.gid)
            os.setresuid(self.uid, self.uid, self.uid)
        except OSError as e:
            raise RuntimeFailure(f"cannot switch to user {self.uid}:{self.gid}: {e.strerror}") from None
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)
        self.caps.apply()
        os.umask(self.umask)

    def set_no_new_privs(self) -> None:
        if self.no_new_privs:
            syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)


def close_fds_except(keep_upto: int) -> None:
    """Close every fd above keep_upto: nothing of the runtime's reaches the container."""
    os.closerange(keep_upto + 1, 1 << 20)
