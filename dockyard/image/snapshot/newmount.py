"""The new mount API (fsopen/fsconfig/fsmount/move_mount) for overlay mounts whose lower layers
do not fit in mount(2)'s one-page option string: each lower layer is passed on its own with
overlayfs's "lowerdir+" parameter (Linux >= 6.8)."""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from dockyard.runtime import syscalls as s

_libc = ctypes.CDLL(None, use_errno=True)

# The same numbers on every architecture (asm-generic's unified table, Linux 5.2).
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432

FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100

# mount(2) flags that have a per-mount attribute in fsmount(2).
_ATTRS = {s.MS_RDONLY: 0x1, s.MS_NOSUID: 0x2, s.MS_NODEV: 0x4, s.MS_NOEXEC: 0x8}


def _syscall(nr: int, what: str, *args: object) -> int:
    ret = _libc.syscall(ctypes.c_long(nr), *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _fs_log(fd: int) -> str:
    """The messages the kernel queued on a filesystem context (why a parameter was refused)."""
    lines = []
    while True:
        try:
            lines.append(os.read(fd, 1024).decode(errors="replace").strip())
        except OSError:
            return "; ".join(lines)


def _fsconfig(fd: int, cmd: int, key: str | None, value: str | None) -> None:
    k = key.encode() if key is not None else None
    v = os.fsencode(value) if value is not None else None
    try:
        _syscall(_SYS_FSCONFIG, f"fsconfig {key}={value}", ctypes.c_int(fd), ctypes.c_uint(cmd),
                 ctypes.c_char_p(k), ctypes.c_char_p(v), ctypes.c_int(0))
    except OSError as e:
        log = _fs_log(fd)
        raise OSError(e.errno, f"{e.strerror}{' (' + log + ')' if log else ''}") from None


def _fsopen_overlay() -> int:
    return _syscall(_SYS_FSOPEN, "fsopen overlay", ctypes.c_char_p(b"overlay"), ctypes.c_uint(FSOPEN_CLOEXEC))


def _kernel_at_least(major: int, minor: int) -> bool:
    numbers = os.uname().release.split("-")[0].split(".")
    return (int(numbers[0]), int(numbers[1])) >= (major, minor)


@functools.cache
def lowerdir_append_supported() -> bool:
    """Whether this kernel has fsopen(2) and overlayfs takes "lowerdir+" (checked once). The
    version matters too: before 6.5 overlayfs parsed options the legacy way, which takes any
    key at fsconfig time and fails only when the filesystem is created."""
    if not _kernel_at_least(6, 8):
        return False
    try:
        fd = _fsopen_overlay()
    except OSError:
        return False
    try:
        _fsconfig(fd, FSCONFIG_SET_STRING, "lowerdir+", "/")
        return True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return False
    finally:
        os.close(fd)


def mount_overlay(source: str, params: list[str], lowers: list[str], flags: int, target: str) -> None:
    """Mount an overlay on target: params are "key=value" or bare flags (no lowerdir),
    lowers the lower layers top first, flags mount(2) flags (ro, nosuid, nodev, noexec)."""
    fd = _fsopen_overlay()
    try:
        _fsconfig(fd, FSCONFIG_SET_STRING, "source", source)
        for param in params:
            key, sep, value = param.partition("=")
            _fsconfig(fd, FSCONFIG_SET_STRING if sep else FSCONFIG_SET_FLAG, key, value if sep else None)
        for lower in lowers:
            _fsconfig(fd, FSCONFIG_SET_STRING, "lowerdir+", lower)
        _fsconfig(fd, FSCONFIG_CMD_CREATE, None, None)
        attrs = sum(attr for flag, attr in _ATTRS.items() if flags & flag)
        mfd = _syscall(_SYS_FSMOUNT, "fsmount overlay", ctypes.c_int(fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                       ctypes.c_uint(attrs))
    finally:
        os.close(fd)
    try:
        _syscall(_SYS_MOVE_MOUNT, f"move_mount overlay to {target}", ctypes.c_int(mfd), ctypes.c_char_p(b""),
                 ctypes.c_int(AT_FDCWD), ctypes.c_char_p(os.fsencode(target)),
                 ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))
    finally:
        os.close(mfd)
