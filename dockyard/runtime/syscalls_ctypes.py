"""The ctypes back end of `syscalls`: used when the C extension `_linux` is not built (or when
DOCKYARD_RUNTIME_CTYPES=1 asks for it). Same functions, same convention: each returns the
system call's result, or -errno on failure; string arguments are bytes or None."""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NUMBERS = {  # glibc has no wrapper for these
    "pivot_root": {"x86_64": 155, "aarch64": 41},
    "seccomp": {"x86_64": 317, "aarch64": 277, "riscv64": 277, "ppc64le": 358, "s390x": 348, "i686": 354,
                "armv7l": 383},
}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SECCOMP_SET_MODE_FILTER = 1


SECCOMP_FILTER = os.uname().machine in _NUMBERS["seccomp"]  # seccomp_filter works


def _result(ret: int) -> int:
    return -ctypes.get_errno() if ret < 0 else ret


def _nr(name: str) -> int:
    machine = os.uname().machine
    try:
        return _NUMBERS[name][machine]
    except KeyError:
        raise OSError(f"{name}: system call number unknown on {machine}") from None


def unshare(flags: int) -> int:
    return _result(_libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int) -> int:
    return _result(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


def mount(source: bytes | None, target: bytes, fstype: bytes | None, flags: int, data: bytes | None) -> int:
    return _result(_libc.mount(source, target, fstype, ctypes.c_ulong(flags), data))


def umount2(target: bytes, flags: int) -> int:
    return _result(_libc.umount2(target, ctypes.c_int(flags)))


def pivot_root(new_root: bytes, put_old: bytes) -> int:
    return _result(_libc.syscall(ctypes.c_long(_nr("pivot_root")), new_root, put_old))


def prctl(option: int, arg2: int, arg3: int, arg4: int, arg5: int) -> int:
    return _result(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                               ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)))


def sethostname(name: bytes) -> int:
    return _result(_libc.sethostname(name, ctypes.c_size_t(len(name))))


def setdomainname(name: bytes) -> int:
    return _result(_libc.setdomainname(name, ctypes.c_size_t(len(name))))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> int:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    return _result(_libc.capset(ctypes.byref(header), data))


RLIMITS = {name: value for name, value in (
    ("RLIMIT_CPU", 0), ("RLIMIT_FSIZE", 1), ("RLIMIT_DATA", 2), ("RLIMIT_STACK", 3), ("RLIMIT_CORE", 4),
    ("RLIMIT_RSS", 5), ("RLIMIT_NPROC", 6), ("RLIMIT_NOFILE", 7), ("RLIMIT_MEMLOCK", 8), ("RLIMIT_AS", 9),
    ("RLIMIT_LOCKS", 10), ("RLIMIT_SIGPENDING", 11), ("RLIMIT_MSGQUEUE", 12), ("RLIMIT_NICE", 13),
    ("RLIMIT_RTPRIO", 14), ("RLIMIT_RTTIME", 15))}  # the generic Linux numbers (not alpha, sparc, mips)


class _Rlimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_uint64), ("max", ctypes.c_uint64)]


def prlimit(resource: int, limits: tuple[int, int] | None) -> tuple[int, int] | int:
    new = _Rlimit(*limits) if limits is not None else None
    old = _Rlimit()
    ret = _libc.prlimit64(ctypes.c_int(0), ctypes.c_int(resource), ctypes.byref(new) if new is not None else None,
                        ctypes.byref(old))
    return (old.cur, old.max) if ret == 0 else -ctypes.get_errno()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_filter(flags: int, program: bytes) -> int:
    if len(program) % 8 or len(program) // 8 > 0xFFFF:
        raise ValueError("a BPF program is a whole number of 8-byte instructions, at most 65535")
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    return _result(_libc.syscall(ctypes.c_long(_nr("seccomp")), ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
                                 ctypes.c_ulong(flags), ctypes.byref(prog)))
