"""Resolving paths inside a container root without ever leaving it (symlinks are followed
as if the root were '/', and '..' stops at the root)."""

from __future__ import annotations

import errno
import os

from dockyard.runtime.errors import RuntimeFailure

MAX_SYMLINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """Return root + unsafe with every symlink resolved inside root."""
    parts = [p for p in unsafe.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except (FileNotFoundError, NotADirectoryError, OSError):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise RuntimeFailure(f"too many levels of symbolic links resolving {unsafe} in {root}")
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p and p != "."] + parts
    return os.path.join(root, *resolved)


def open_in_root(root: str, unsafe: str, flags: int = os.O_PATH) -> int:
    """An fd of root + unsafe resolved as secure_join does, but by the kernel in one step
    (openat2 RESOLVE_IN_ROOT), so a concurrent rename or symlink swap cannot lead it out of
    root; secure_join and open on kernels without openat2 (before 5.6)."""
    from dockyard.runtime import syscalls

    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return syscalls.openat2(root_fd, unsafe.lstrip("/") or ".", flags | os.O_CLOEXEC,
                                syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    finally:
        os.close(root_fd)
    return os.open(secure_join(root, unsafe), flags | os.O_CLOEXEC)


def make_destination(path: str, is_file: bool) -> None:
    """Create a mount point (directory, or empty file for a file bind mount) at a resolved path."""
    if os.path.lexists(path):
        return
    if is_file:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o755))
    else:
        os.makedirs(path, mode=0o755, exist_ok=True)
