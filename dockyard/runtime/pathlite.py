"""The path functions of `os.path` that the runtime uses, for str paths (or path-like objects
naming them), without importing os.

`import os` costs ~1.7 ms of CPU on every runtime command (it builds os.environ, and the
collections ABCs it needs for that are ~25 classes); the runtime's hot path uses `oslite` (the
`posix` module plus these) instead. Same results as posixpath for str arguments, which
tests/test_runtime_oslite.py checks case by case.
"""

import posix
from stat import S_ISDIR, S_ISLNK, S_ISREG


def join(a: str, *parts: str) -> str:
    path = posix.fspath(a)
    for part in map(posix.fspath, parts):
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def split(p: str) -> tuple[str, str]:
    p = posix.fspath(p)
    i = p.rfind("/") + 1
    head, tail = p[:i], p[i:]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head, tail


def dirname(p: str) -> str:
    return split(p)[0]


def basename(p: str) -> str:
    p = posix.fspath(p)
    return p[p.rfind("/") + 1:]


def normpath(path: str) -> str:
    path = posix.fspath(path)
    if not path:
        return "."
    initial = 2 if path.startswith("//") and not path.startswith("///") else 1 if path.startswith("/") else 0
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp != ".." or (not initial and not parts) or (parts and parts[-1] == ".."):
            parts.append(comp)
        elif parts:
            parts.pop()
    return "/" * initial + "/".join(parts) or "."


def abspath(path: str) -> str:
    path = posix.fspath(path)
    return normpath(path if path.startswith("/") else join(posix.getcwd(), path))


def relpath(path: str, start: str = ".") -> str:
    path = posix.fspath(path)
    if not path:
        raise ValueError("no path specified")
    start_list = [x for x in abspath(start).split("/") if x]
    path_list = [x for x in abspath(path).split("/") if x]
    common = 0
    for a, b in zip(start_list, path_list, strict=False):
        if a != b:
            break
        common += 1
    rel = [".."] * (len(start_list) - common) + path_list[common:]
    return join(*rel) if rel else "."


def realpath(path: str) -> str:
    """The canonical path, symlinks and `..` resolved by the kernel (open + /proc/self/fd); of a
    path that does not exist, the part that does, then the rest as posixpath.realpath does
    (except a dangling symlink at the end, which is not followed)."""
    path = posix.fspath(path)
    if not path.startswith("/"):
        path = join(posix.getcwd(), path)
    try:
        fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
    except OSError:
        head, tail = split(path)
        return normpath(path) if head == path else normpath(join(realpath(head), tail))
    try:
        return posix.readlink(f"/proc/self/fd/{fd}")
    finally:
        posix.close(fd)


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def lexists(path: str) -> bool:
    try:
        posix.lstat(path)
    except (OSError, ValueError):
        return False
    return True


def isdir(path: str) -> bool:
    try:
        return S_ISDIR(posix.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def isfile(path: str) -> bool:
    try:
        return S_ISREG(posix.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def islink(path: str) -> bool:
    try:
        return S_ISLNK(posix.lstat(path).st_mode)
    except (OSError, ValueError):
        return False
