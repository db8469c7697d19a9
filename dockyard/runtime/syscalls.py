"""The Linux system calls Python's os module lacks.

Each wrapper raises OSError with errno and a description of the call, so callers can report
exactly what the kernel refused. The calls themselves go through the C extension `_linux` when
`make setup` built it, through ctypes (`syscalls_ctypes`) otherwise or when the environment has
DOCKYARD_RUNTIME_CTYPES=1; both return the result or -errno.
"""

from __future__ import annotations

from dockyard.runtime import oslite as os

if os.environ.get("DOCKYARD_RUNTIME_CTYPES") == "1":
    from dockyard.runtime import syscalls_ctypes as _impl
else:
    try:
        from dockyard.runtime import _linux as _impl  # type: ignore[no-redef]
    except ImportError:
        from dockyard.runtime import syscalls_ctypes as _impl  # type: ignore[no-redef]

BACKEND = "ctypes" if _impl.__name__.endswith("ctypes") else "c"
SECCOMP_FILTER: bool = bool(_impl.SECCOMP_FILTER)  # whether seccomp_filter() can work on this machine
RLIMITS: dict[str, int] = _impl.RLIMITS  # RLIMIT_* name -> number
RLIM_INFINITY = (1 << 64) - 1

# Namespace flags (clone(2)).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount(2) flags.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
MNT_DETACH = 0x2

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _error(ret: int, what: str) -> OSError:
    """The OSError of a failed call (ret is -errno); descriptions are only formatted on failure."""
    return OSError(-ret, f"{what}: {os.strerror(-ret)}")


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def unshare(flags: int) -> None:
    """unshare(2) the namespaces in flags."""
    ret = _impl.unshare(flags)
    if ret < 0:
        raise _error(ret, f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace open at fd."""
    ret = _impl.setns(fd, nstype)
    if ret < 0:
        raise _error(ret, "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2)."""
    ret = _impl.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    if ret < 0:
        raise _error(ret, f"mount {source or ''} on {target} ({fstype or 'bind/remount'}, flags {flags:#x}, "
                          f"{data or ''})")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    ret = _impl.umount2(_b(target), flags)
    if ret < 0:
        raise _error(ret, f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) (glibc has no wrapper)."""
    ret = _impl.pivot_root(_b(new_root), _b(put_old))
    if ret < 0:
        raise _error(ret, "pivot_root")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    ret = _impl.prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        raise _error(ret, f"prctl({option})")
    return ret


def sethostname(name: str) -> None:
    """sethostname(2)."""
    ret = _impl.sethostname(name.encode())
    if ret < 0:
        raise _error(ret, "sethostname")


def setdomainname(name: str) -> None:
    """setdomainname(2)."""
    ret = _impl.setdomainname(name.encode())
    if ret < 0:
        raise _error(ret, "setdomainname")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread with 64-bit capability masks."""
    ret = _impl.capset(effective, permitted, inheritable)
    if ret < 0:
        raise _error(ret, "capset")


def seccomp_filter(flags: int, program: bytes) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): install a BPF program of 8-byte
    instructions in the calling thread (no_new_privs, or CAP_SYS_ADMIN, is the caller's business)."""
    ret = _impl.seccomp_filter(flags, program)
    if ret < 0:
        raise _error(ret, "seccomp")


def prlimit(resource: int, limits: tuple[int, int] | None = None) -> tuple[int, int]:
    """prlimit(2) of the calling process: set (soft, hard) when limits are given (unsigned 64-bit,
    RLIM_INFINITY for unlimited); returns the previous pair."""
    ret = _impl.prlimit(resource, limits)
    if isinstance(ret, int):
        raise _error(ret, f"prlimit({resource})")
    return ret


def libseccomp_info() -> tuple[str, int] | None:
    """(version, API level) of libseccomp through the C extension, without loading it through
    ctypes; None with the ctypes back end or when the library cannot be loaded."""
    info = getattr(_impl, "libseccomp_info", None)
    return info() if info is not None else None
