"""Docker's `local` volume driver: name rules, the `type`/`device`/`o` options, and mounting a
volume's filesystem (tmpfs, bind, nfs...) on its _data directory when it has such options."""

from __future__ import annotations

import errno
import os
import re

from dockyard.engine.containers.errors import InvalidParameter
from dockyard.image.layer_size import dir_size
from dockyard.runtime import syscalls as s
from dockyard.runtime.mountopts import MountOptions

DRIVER = "local"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_VALID = ("type", "o", "device", "size")
_REQUIRES = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def check_name(name: str) -> None:
    """Docker's local volume name rule (the caller adds the "create <name>: " prefix)."""
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two alphanumeric characters")
    if not _NAME.match(name):
        raise InvalidParameter(f'"{name}" includes invalid characters for a local volume name, only '
                               '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
                               "use absolute path")


def check_options(options: dict[str, str] | None) -> None:
    """The driver options the local driver accepts, with Docker's texts."""
    for key in options or {}:
        if key not in _VALID:
            raise InvalidParameter(f'invalid option: "{key}"')
    for key in options or {}:
        for needed in _REQUIRES.get(key, ()):
            if needed not in (options or {}):
                raise InvalidParameter(f'missing required option: "{needed}"')
    if "size" in (options or {}):
        raise InvalidParameter("quota size requested but no quota support")


def needs_mount(options: dict[str, str] | None) -> bool:
    """Whether the volume's data lives on a filesystem mounted at first use."""
    return bool(options and (options.get("type") or options.get("device")))


def is_mounted(path: str) -> bool:
    """Whether something is mounted exactly at path."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        return any(line.split()[4].replace("\\040", " ") == real for line in f)


def mount(options: dict[str, str], path: str) -> None:
    """Mount the volume's filesystem on path (its _data), as the local driver does."""
    device = options.get("device") or ""
    if not device:
        raise InvalidParameter("missing device in volume options")
    opts = MountOptions([o for o in (options.get("o") or "").split(",") if o])
    kind = options.get("type") or ""
    try:
        s.mount(device, path, None if opts.is_bind else kind, opts.flags, opts.data)
        if opts.is_bind and opts.remount_flags:
            s.mount(None, path, None, s.MS_BIND | s.MS_REMOUNT | opts.remount_flags)
    except OSError as e:
        raise InvalidParameter(f"failed to mount local volume: mount {device}:{path}, flags: {opts.flags:#x}, "
                               f"data: {opts.data or ''}: {e.strerror or e}") from None


def unmount(path: str) -> None:
    """Unmount the volume's filesystem (a busy one lazily); nothing mounted is fine."""
    try:
        s.umount2(path)
    except OSError as e:
        if e.errno == errno.EBUSY:
            s.umount2(path, s.MNT_DETACH)
        elif e.errno not in (errno.EINVAL, errno.ENOENT):
            raise


def disk_usage(path: str) -> int:
    """Bytes used under path as dockerd counts them (files once per inode, symlinks not
    followed); -1 when path is gone."""
    return dir_size(path) if os.path.isdir(path) else -1
