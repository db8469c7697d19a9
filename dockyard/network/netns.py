"""Network namespaces kept alive by a bind mount on a file (as `ip netns` and libnetwork do).
Namespace switches happen on short-lived threads: setns/unshare(CLONE_NEWNET) affect only the
calling thread, so the daemon's other threads never leave the host namespace."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from dockyard.network.netlink import Netlink
from dockyard.runtime import syscalls

T = TypeVar("T")


def _on_thread(fn: Callable[[], T]) -> T:
    """fn() on a fresh thread that ends afterwards (whatever namespace it was left in)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # handed back to the caller
            error.append(e)

    thread = threading.Thread(target=run, name="netns")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def run_in(path: str, fn: Callable[[], T]) -> T:
    """fn() inside the network namespace bound at path."""
    def enter() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
        finally:
            os.close(fd)
        return fn()
    return _on_thread(enter)


def create(path: str, setup: Callable[[Netlink], None] | None = None) -> None:
    """A new network namespace bound at path; setup(netlink socket inside it) runs before return."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    with open(path, "x"):
        pass

    def make() -> None:
        syscalls.unshare(syscalls.CLONE_NEWNET)
        syscalls.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, syscalls.MS_BIND)
        if setup is not None:
            with Netlink() as nl:
                setup(nl)
    try:
        _on_thread(make)
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
