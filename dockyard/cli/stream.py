"""Copying a hijacked attach/exec connection to the terminal: demultiplexed output to stdout and
stderr, stdin to the container, raw mode and size tracking on a real tty, and the detach keys
(ctrl-p ctrl-q)."""

from __future__ import annotations

import _socket
import os
import sys

from dockyard.client import http

TYPE_CHECKING = False  # threading and collections.abc cost milliseconds to import: used lazily
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


class Detached(Exception):
    """The user typed the detach keys."""


def terminal_size() -> tuple[int, int]:
    """(rows, columns) of stdout's terminal."""
    size = os.get_terminal_size(sys.stdout.fileno())
    return size.lines, size.columns


class RawTerminal:
    """stdin in raw mode for the duration of a `with` block, and SIGWINCH forwarded to resize."""

    def __init__(self, resize: Callable[[int, int], None]) -> None:
        self.resize = resize
        self.saved: list | None = None

    def __enter__(self) -> RawTerminal:
        import signal
        import termios
        import tty
        if sys.stdin.isatty():
            self.saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setraw(sys.stdin.fileno())
        signal.signal(signal.SIGWINCH, lambda *_: self.send_size())
        return self

    def send_size(self) -> None:
        try:
            self.resize(*terminal_size())
        except Exception:  # the container may be gone already: docker ignores it too
            pass

    def __exit__(self, *exc: object) -> None:
        import signal
        import termios
        signal.signal(signal.SIGWINCH, signal.SIG_DFL)
        if self.saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self.saved)


def _pump_stdin(sock: _socket.socket, tty: bool, detached: threading.Event) -> None:
    """stdin → the container; with a tty, ctrl-p ctrl-q detaches. Half-closes at EOF."""
    fd = sys.stdin.fileno()
    pending = b""
    try:
        while data := os.read(fd, 32 * 1024):
            if tty:
                data = pending + data
                if DETACH_KEYS in data:  # sent on as docker does: the daemon then keeps stdin open
                    sock.sendall(data[:data.index(DETACH_KEYS) + len(DETACH_KEYS)])
                    detached.set()
                    sock.shutdown(_socket.SHUT_RDWR)
                    return
                pending = data[-1:] if data.endswith(DETACH_KEYS[:1]) else b""
                data = data[:len(data) - len(pending)]
            sock.sendall(data)
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


def copy_streams(resp: http.Response, tty: bool, stdin: bool) -> None:
    """Copy the hijacked stream until the container's output ends; Detached if the user detached.
    threading (and the functools and collections it imports) is loaded only to pump stdin."""
    detached = None
    if stdin:
        import threading

        detached = threading.Event()
        threading.Thread(target=_pump_stdin, args=(resp.sock, tty, detached), daemon=True).start()
    frames: Iterator[tuple[int, bytes]] = http.raw_stream(resp) if tty else http.demux(resp)
    outputs = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    try:
        for stream, data in frames:
            out = outputs.get(stream, sys.stdout.buffer)
            out.write(data)
            out.flush()
    except OSError:
        pass
    finally:
        resp.close()
    if detached is not None and detached.is_set():
        raise Detached
