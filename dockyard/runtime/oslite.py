"""`os` for the runtime's hot path, without importing os: the `posix` module (which os
re-exports on Linux), `path` (pathlite), and the few helpers os adds that the runtime uses.

`import os` costs ~1.7 ms of CPU per runtime command (the collections ABCs behind os.environ);
the runtime's modules import this as `os` instead, so their code reads the same.
`environ` is a snapshot taken at import (changing it changes nothing; the runtime never does).
"""

import sys
from posix import *  # noqa: F403 - the system calls and constants, as os exports them
from posix import _exit, mkdir, scandir  # noqa: F401 - _exit: `import *` leaves out private names
from posix import environ as _environ_bytes

from dockyard.runtime import pathlite as path

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Iterator

sep = "/"
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
_ENCODING = sys.getfilesystemencoding()


def fsencode(filename: str | bytes) -> bytes:
    return filename if isinstance(filename, bytes) else filename.encode(_ENCODING, "surrogateescape")


def fsdecode(filename: str | bytes) -> str:
    return filename if isinstance(filename, str) else filename.decode(_ENCODING, "surrogateescape")


environ: dict[str, str] = {fsdecode(k): fsdecode(v) for k, v in _environ_bytes.items()}


def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """Create name and its missing parents, as os.makedirs."""
    head, tail = path.split(name)
    if not tail:
        head, tail = path.split(head)
    if head and tail and not path.exists(head):
        try:
            makedirs(head, exist_ok=exist_ok)
        except FileExistsError:
            pass  # created meanwhile
    try:
        mkdir(name, mode)
    except OSError:
        if not exist_ok or not path.isdir(name):
            raise


def walk(top: str, topdown: bool = True) -> "Iterator[tuple[str, list[str], list[str]]]":
    """os.walk(top, topdown): directories that cannot be listed are skipped, symlinks to
    directories are listed among dirs but not entered."""
    try:
        with scandir(top) as it:
            entries = list(it)
    except OSError:
        return
    dirs, files, links = [], [], set()
    for entry in entries:
        try:
            is_dir = entry.is_dir()
            if is_dir and entry.is_symlink():
                links.add(entry.name)
        except OSError:
            is_dir = False
        (dirs if is_dir else files).append(entry.name)
    if topdown:
        yield top, dirs, files
        for d in dirs:  # as the caller left them
            sub = path.join(top, d)
            if not path.islink(sub):
                yield from walk(sub, topdown)
    else:
        for d in dirs:
            if d not in links:
                yield from walk(path.join(top, d), topdown)
        yield top, dirs, files
