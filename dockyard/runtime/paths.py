"""Resolving paths inside a container root without ever leaving it (symlinks are followed
as if the root were '/', and '..' stops at the root)."""

from __future__ import annotations

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


def make_destination(path: str, is_file: bool) -> None:
    """Create a mount point (directory, or empty file for a file bind mount) at a resolved path."""
    if os.path.lexists(path):
        return
    if is_file:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o755))
    else:
        os.makedirs(path, mode=0o755, exist_ok=True)
