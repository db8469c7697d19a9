"""Network namespaces kept alive by a bind mount on a file (as `ip netns` and libnetwork do).
setns/unshare(CLONE_NEWNET) affect only the calling thread: the work inside a namespace runs on
the caller's thread, which joins its own namespace back afterwards (through a descriptor opened
first), so the daemon's other threads never leave the host namespace and no thread is started
(a thread's start and join cost two scheduler hand-offs, milliseconds on a loaded host)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TypeVar

from dockyard.network.netlink import Netlink
from dockyard.runtime import syscalls

T = TypeVar("T")


class NamespaceLeakError(RuntimeError):
    """The calling thread could not join its own network namespace back (it must not go on)."""


def _switched(enter: Callable[[], None], fn: Callable[[], T]) -> T:
    """fn() on the calling thread inside the network namespace enter() moves it to; then back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter()
        try:
            return fn()
        finally:
            try:
                syscalls.setns(own, syscalls.CLONE_NEWNET)
            except OSError as e:
                raise NamespaceLeakError(f"cannot rejoin the thread's network namespace: {e}") from e
    finally:
        os.close(own)


def run_in(path: str, fn: Callable[[], T]) -> T:
    """fn() inside the network namespace bound at path."""
    def enter() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
        finally:
            os.close(fd)
    return _switched(enter, fn)


def create(path: str, setup: Callable[[Netlink], None] | None = None) -> None:
    """A new network namespace bound at path; setup(netlink socket inside it) runs before return."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    with open(path, "x"):
        pass

    def make() -> None:
        syscalls.mount("/proc/thread-self/ns/net", path, None, syscalls.MS_BIND)
        if setup is not None:
            with Netlink() as nl:
                setup(nl)
    try:
        _switched(lambda: syscalls.unshare(syscalls.CLONE_NEWNET), make)
    except BaseException:
        remove(path)
        raise


def netlink_in(path: str) -> Netlink:
    """A netlink socket that acts inside the namespace bound at path."""
    return run_in(path, Netlink)


def remove(path: str) -> None:
    """Unmount and delete a namespace file (nothing if absent); the namespace goes with its last user."""
    with contextlib.suppress(OSError):
        syscalls.umount2(path, syscalls.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
