"""Terminals: a pty made inside the container, its master handed over a console socket."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

from dockyard.runtime import syscalls

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any


def connect_console_socket(path: str) -> socket.socket:
    """Connect to the caller's console socket (done before entering the container)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        from dockyard.runtime.errors import RuntimeFailure

        raise RuntimeFailure(f"cannot connect to console socket {path}: {e.strerror}") from None
    return sock


def set_size(fd: int, size: dict[str, Any] | None) -> None:
    if size and (size.get("height") or size.get("width")):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))


def setup_terminal(console_sock: socket.socket, size: dict[str, Any] | None, bind_console: bool) -> None:
    """Open a pty in the container's devpts, send its master, make the slave our controlling tty
    and stdio. With bind_console the slave is also bind-mounted over /dev/console."""
    master, slave = os.openpty()
    try:
        set_size(master, size)
        slave_path = os.ttyname(slave)
        if bind_console:
            if not os.path.exists("/dev/console"):
                os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY, 0o600))
            syscalls.mount(slave_path, "/dev/console", None, syscalls.MS_BIND)
        socket.send_fds(console_sock, [b"/dev/ptmx"], [master])
    finally:
        os.close(master)
        console_sock.close()
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
