"""A createRuntime hook that brings `lo` up in the container's new network namespace.

Run as `python -I loopback.py`-style command by the runtime with the container state on stdin."""

from __future__ import annotations

import ctypes
import fcntl
import json
import socket
import struct
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
CLONE_NEWNET = 0x40000000


def bring_up_loopback(pid: int) -> None:
    """Enter pid's network namespace and set IFF_UP on lo."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/proc/{pid}/ns/net") as ns:
        if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def hook(python: str, project_root: str) -> dict:
    """The OCI hook entry that runs this module."""
    code = (f"import sys; sys.path.insert(0, {project_root!r}); "
            "from dockyard.engine.containers.loopback import main; main()")
    return {"path": python, "args": [python, "-I", "-c", code]}


def main() -> None:
    """Hook entry point: the OCI state arrives on stdin."""
    bring_up_loopback(int(json.load(sys.stdin)["pid"]))


if __name__ == "__main__":
    main()
