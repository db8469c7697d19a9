"""Waiting on a container process in the foreground (`run`, `exec` without -d): reap it as a
subreaper, forward signals to it, and copy a terminal when the runtime owns the pty itself."""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum, too slow for every `run`
import select
import sys

from dockyard.runtime import oslite as os
from dockyard.runtime import syscalls

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)


def become_subreaper() -> None:
    """Orphans of our children (the container process) are reparented to us."""
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)


class ForegroundConsole:
    """A console socket pair whose far end goes to the container; we receive the pty master."""

    def __init__(self) -> None:
        import socket

        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.master: int | None = None

    def receive(self) -> int:
        import socket

        self.theirs.close()
        _, fds, _, _ = socket.recv_fds(self.ours, 1024, 1)
        self.ours.close()
        if not fds:
            raise OSError("no pty master received from the container")
        self.master = fds[0]
        return self.master


def _copy_size(master: int) -> None:
    if os.isatty(0):
        import fcntl
        import termios

        fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))


def wait_foreground(pid: int, console: ForegroundConsole | None = None) -> int:
    """Wait for pid (reaping other orphans too), forwarding signals; return its exit code
    (128+signal when killed)."""
    pending: list[int] = []
    signal.set_wakeup_fd(-1)
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def on_signal(signum: int, _frame: Any) -> None:
        pending.append(signum)

    old = {sig: signal.signal(sig, on_signal) for sig in FORWARDED}
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wfd)
    master = console.master if console else None
    saved_tty = None
    try:
        if master is not None:
            _copy_size(master)
            if os.isatty(0):
                import termios
                import tty

                saved_tty = termios.tcgetattr(0)
                tty.setraw(0)
        stdin_open = master is not None
        while True:
            for sig in pending:
                if sig == signal.SIGWINCH and master is not None:
                    _copy_size(master)
                else:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            pending.clear()
            status = _reap(pid)
            if status is not None:
                if master is not None:
                    _drain(master)
                return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
            fds = [rfd] + ([master] if master is not None else []) + ([0] if stdin_open else [])
            try:
                ready, _, _ = select.select(fds, [], [], 1.0)
            except InterruptedError:
                continue
            if rfd in ready:
                try:
                    os.read(rfd, 4096)
                except BlockingIOError:
                    pass
            if master is not None and master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if data:
                    _write_all(1, data)
            if stdin_open and 0 in ready:
                data = os.read(0, 65536)
                if data:
                    _write_all(master, data)
                else:
                    stdin_open = False
                    _write_all(master, b"\x04")
    finally:
        if saved_tty is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved_tty)
        signal.set_wakeup_fd(-1)
        for sig, handler in old.items():
            signal.signal(sig, handler)
        os.close(rfd)
        os.close(wfd)


def _reap(pid: int) -> int | None:
    """Reap every exited child; return pid's wait status once it has exited."""
    result = None
    while True:
        try:
            child, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return result
        if child == 0:
            return result
        if child == pid:
            result = status


def _drain(master: int) -> None:
    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(1, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]
    if fd == 1:
        sys.stdout.flush()
