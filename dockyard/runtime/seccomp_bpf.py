"""Compiled seccomp filters kept as BPF programs: a profile is compiled by libseccomp once, its
program exported and stored under the runtime root, and later containers with the same profile
load the stored program with seccomp(2) directly. Docker gives every container the same default
profile, so this saves the compilation (~350 rules through libseccomp) and libseccomp's BPF
generation at load time on every create and exec.

The cache key covers the profile as given, the libseccomp version and API level, the kernel
release and the machine; files are written atomically (write + rename) and ignored when their
size is not a whole program."""

from __future__ import annotations

from dockyard.runtime import jsonfast, syscalls
from dockyard.runtime import oslite as os

try:
    from _sha256 import sha256  # built into the interpreter: hashlib would load OpenSSL first
except ImportError:  # an interpreter without it
    from hashlib import sha256
from dockyard.runtime.seccomp_spec import SeccompError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CACHE_DIR = ".seccomp-cache"  # under the runtime root; `list` ignores entries without state.json
SOCK_FILTER_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
KERNEL_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}


class BpfFilter:
    """A stored program and the seccomp(2) flags to load it with: the container's init (after
    pivot_root) only makes the system call."""

    enabled = True

    def __init__(self, program: bytes, flags: int) -> None:
        self._program = program
        self._flags = flags

    def load(self) -> None:
        """seccomp(SECCOMP_SET_MODE_FILTER, flags, program) in the calling process (no_new_privs is
        the caller's business, as with libseccomp's load)."""
        try:
            syscalls.seccomp_filter(self._flags, self._program)
        except OSError as e:
            raise SeccompError(f"seccomp: loading the filter failed: {os.strerror(e.errno)}") from None

    def release(self) -> None:
        """Nothing to free (kept for the libseccomp filter's interface)."""


def cache_key(spec: dict[str, Any], lib_version: str, api_level: int) -> str:
    """The cache file name of a profile on this machine and library."""
    uname = os.uname()
    text = jsonfast.dumps([spec, lib_version, api_level, uname.release, uname.machine])
    return sha256(text.encode()).hexdigest()


def kernel_flags(profile_flags: list[str] | None, default_spec_allow: bool) -> int:
    """seccomp(2) flags for a profile's `flags` (None: SPEC_ALLOW when supported, as runc)."""
    if profile_flags is None:
        return KERNEL_FLAGS["SECCOMP_FILTER_FLAG_SPEC_ALLOW"] if default_spec_allow else 0
    value = 0
    for flag in profile_flags:
        value |= KERNEL_FLAGS.get(flag, 0)
    return value


def load_cached(path: str, flags: int) -> BpfFilter | None:
    """The stored program at path, or None if there is none (or it is damaged)."""
    try:
        with open(path, "rb") as f:
            program = f.read()
    except OSError:
        return None
    if not program or len(program) % SOCK_FILTER_SIZE or len(program) // SOCK_FILTER_SIZE > 0xFFFF:
        return None
    return BpfFilter(program, flags)


def export_program(context: Any) -> bytes:
    """The BPF program of a libseccomp context."""
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        context.export_bpf(fd)
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def store(path: str, program: bytes) -> None:
    """Write a program atomically (a concurrent writer of the same key writes the same bytes)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(program)
    os.rename(tmp, path)
