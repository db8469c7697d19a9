"""ctypes binding for the few libseccomp.so.2 calls the runtime uses.

Functions raise OSError when libseccomp returns a negative errno; the caller adds context.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable
from functools import cache

LIBRARY = "libseccomp.so.2"
NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name(): unknown syscall

# enum scmp_filter_attr
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8
ATTR_API_SYSRAWRC = 9

# OCI filter flag -> filter attribute (the API levels they need: seccomp_spec.FLAG_MIN_API)
FLAG_ATTRS = {
    "SECCOMP_FILTER_FLAG_TSYNC": ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": ATTR_CTL_SSB,
}


class ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_PROTOTYPES = {
    "seccomp_version": (ctypes.POINTER(_Version), []),
    "seccomp_api_get": (ctypes.c_uint, []),
    "seccomp_init": (ctypes.c_void_p, [ctypes.c_uint32]),
    "seccomp_release": (None, [ctypes.c_void_p]),
    "seccomp_arch_resolve_name": (ctypes.c_uint32, [ctypes.c_char_p]),
    "seccomp_arch_add": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32]),
    "seccomp_attr_set": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]),
    "seccomp_syscall_resolve_name": (ctypes.c_int, [ctypes.c_char_p]),
    "seccomp_rule_add_array": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ArgCmp)],
    ),
    "seccomp_load": (ctypes.c_int, [ctypes.c_void_p]),
    "seccomp_export_bpf": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
}


@cache
def library() -> ctypes.CDLL:
    """Open libseccomp.so.2 and declare the prototypes used here (OSError if it is missing)."""
    lib = ctypes.CDLL(LIBRARY)
    for name, (restype, argtypes) in _PROTOTYPES.items():
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes
    return lib


def _check(rc: int) -> None:
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))


def version() -> str:
    """The libseccomp version, e.g. "2.5.4"."""
    v = library().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def api_level() -> int:
    """libseccomp's API level: what the library and the running kernel support together."""
    return library().seccomp_api_get()


def arch_token(name: str) -> int:
    """The token of a libseccomp architecture name such as "x86_64"; 0 if unknown."""
    return library().seccomp_arch_resolve_name(name.encode())


def syscall_number(name: str) -> int:
    """The native syscall number (negative for libseccomp pseudo-syscalls); NR_SCMP_ERROR if unknown."""
    return library().seccomp_syscall_resolve_name(name.encode())


class Context:
    """An owned scmp_filter_ctx."""

    def __init__(self, default_action: int) -> None:
        lib = library()
        handle = lib.seccomp_init(default_action)
        if not handle:
            raise OSError(0, f"seccomp_init refused default action {default_action:#x}")
        self._lib = lib
        self._handle: int | None = handle
        self._load = lib.seccomp_load  # bound now so load() only calls into C

    def add_arch(self, token: int) -> None:
        """Add an architecture; already present is fine."""
        rc = self._lib.seccomp_arch_add(self._handle, token)
        if rc != -errno.EEXIST:
            _check(rc)

    def set_attr(self, attr: int, value: int) -> None:
        """seccomp_attr_set()."""
        _check(self._lib.seccomp_attr_set(self._handle, attr, value))

    def add_rule(self, action: int, syscall: int, conditions: Iterable[tuple[int, int, int, int]]) -> None:
        """seccomp_rule_add_array() with (arg, op, datum_a, datum_b) conditions, all of which must hold."""
        conds = [ArgCmp(*c) for c in conditions]
        array = (ArgCmp * len(conds))(*conds)
        _check(self._lib.seccomp_rule_add_array(self._handle, action, syscall, len(conds), array))

    def export_bpf(self, fd: int) -> None:
        """seccomp_export_bpf(): write the filter's BPF program (struct sock_filter[]) to fd."""
        _check(self._lib.seccomp_export_bpf(self._handle, fd))

    def load(self) -> None:
        """seccomp_load() into the calling process."""
        _check(self._load(self._handle))

    def release(self) -> None:
        """Free the context; idempotent."""
        if self._handle is not None:
            self._lib.seccomp_release(self._handle)
            self._handle = None
