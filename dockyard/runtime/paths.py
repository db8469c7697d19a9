"""Resolving paths inside a container root without ever leaving it (symlinks are followed
as if the root were '/', and '..' stops at the root)."""

from __future__ import annotations

import stat

from dockyard.runtime import oslite as os
from dockyard.runtime.errors import RuntimeFailure

MAX_SYMLINKS = 255
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


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


def open_in_root(root: str, unsafe: str, create: str = "") -> int:
    """An O_PATH descriptor of root + unsafe, resolved as secure_join does but one component at a
    time, each opened with O_NOFOLLOW relative to the descriptor of its (already checked) parent:
    a component swapped for a symlink meanwhile cannot lead the walk out of root. Missing
    components are created when create is "dir" or "file" (then the last one is an empty file).
    Mounting onto /proc/self/fd/<descriptor> then lands exactly there (as runc does)."""
    parts = [p for p in unsafe.split("/") if p and p != "."]
    stack = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                fd = os.open(part, _PATH, dir_fd=stack[-1])
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    if create == "file" and not parts:
                        os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                         0o755, dir_fd=stack[-1]))
                    else:
                        os.mkdir(part, 0o755, dir_fd=stack[-1])
                except FileExistsError:
                    pass  # made meanwhile: open it on the next turn
                parts.insert(0, part)
                continue
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise RuntimeFailure(f"too many levels of symbolic links resolving {unsafe} in {root}")
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            if parts and not stat.S_ISDIR(mode):
                os.close(fd)
                raise NotADirectoryError(20, "Not a directory", unsafe)
            stack.append(fd)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)

