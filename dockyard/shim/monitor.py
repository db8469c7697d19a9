"""The shim's single-threaded event loop: container output, logs, stdin, control clients, reaping."""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import time
from collections.abc import Callable

from dockyard.shim import protocol
from dockyard.shim.logs import JsonFileWriter, LineSplitter, rfc3339nano
from dockyard.shim.oci import OciRuntime, RuntimeFailed, exit_code
from dockyard.shim.oom import bundle_oom_killed
from dockyard.shim.protocol import Message
from dockyard.shim.startup import Stdio

READ_SIZE = 32 * 1024
CLIENT_BUFFER_LIMIT = 1 << 20  # an attach client this far behind is disconnected
STDIN_BUFFER_LIMIT = 256 * 1024  # past this, attach clients' input is not read until stdin drains
DRAIN_TIMEOUT = 2.0  # how long output is still read after init exited
LINGER_TIMEOUT = 2.0  # how long clients may take to receive their last bytes

Handler = Callable[[], None]


class Client:
    """One control-socket connection: a command stream, then possibly `wait` or `attach` mode."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.mode = "command"  # "command" | "wait" | "attach"
        self.streams: frozenset[str] = frozenset()
        self.stdin = False
        self.stdin_once = False
        self.eof = False
        self.closing = False  # close once wbuf is sent


class Monitor:
    """Watches one container from creation until its exit is recorded."""

    def __init__(self, cid: str, runtime: OciRuntime, pid: int, stdio: Stdio, listener: socket.socket,
                 logger: JsonFileWriter, state_dir: str, delete_on_exit: bool = False, bundle: str = "") -> None:
        self.cid = cid
        self.bundle = bundle  # read at the exit for the container's cgroup (its OOM count)
        self.runtime = runtime
        self.pid = pid
        self.stdio = stdio
        self.master = next(iter(stdio.outputs)) if stdio.tty else None
        self.listener = listener
        self.logger = logger
        self.state_dir = state_dir
        self.delete_on_exit = delete_on_exit
        self.sel = selectors.DefaultSelector()
        self.handlers: dict[int, tuple[Handler | None, Handler | None]] = {}
        self.clients: dict[int, Client] = {}
        self.splitters = {fd: LineSplitter() for fd in stdio.outputs}
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.status = "created"
        self.started_at: str | None = None
        self.reaped: Message | None = None
        self.exit: Message | None = None
        self.drain_deadline = 0.0
        self.linger_deadline = 0.0
        self.ops: dict[str, Callable[[Client, Message], Message | None]] = {
            "state": self._op_state, "start": self._op_start, "signal": self._op_signal,
            "resize": self._op_resize, "wait": self._op_wait, "close_stdin": self._op_close_stdin,
            "attach": self._op_attach,
        }
        # SIGCHLD wakes the loop through a socketpair (the handler itself does nothing)
        self.wake_r, self._wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        listener.setblocking(False)

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until the exit is recorded and clients got their last bytes."""
        self._watch(self.wake_r.fileno(), self._on_signal, None)
        self._watch(self.listener.fileno(), self._on_accept, None)
        for fd in self.stdio.outputs:
            self._refresh_stdio(fd)
        self._reap()
        while not self._finished():
            for key, mask in self.sel.select(self._timeout()):
                self._dispatch(key.fd, mask)
            drained = not self.stdio.outputs or time.monotonic() >= self.drain_deadline
            if self.reaped is not None and self.exit is None and drained:
                self._record_exit()
        self._shutdown()

    def _finished(self) -> bool:
        if self.exit is None:
            return False
        return time.monotonic() >= self.linger_deadline or not any(c.wbuf for c in self.clients.values())

    def _timeout(self) -> float | None:
        if self.exit is not None:
            deadline = self.linger_deadline
        elif self.reaped is not None:
            deadline = self.drain_deadline
        else:
            return None
        return max(0.0, deadline - time.monotonic())

    def _dispatch(self, fd: int, mask: int) -> None:
        handlers = self.handlers.get(fd)
        if handlers and mask & selectors.EVENT_READ and handlers[0]:
            handlers[0]()
        handlers = self.handlers.get(fd)
        if handlers and mask & selectors.EVENT_WRITE and handlers[1]:
            handlers[1]()

    def _watch(self, fd: int, reader: Handler | None, writer: Handler | None) -> None:
        """Set (or with two Nones, drop) the read and write handlers of fd."""
        events = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        old = self.handlers.pop(fd, None)
        if not events:
            if old:
                self.sel.unregister(fd)
            return
        self.handlers[fd] = (reader, writer)
        if old is None:
            self.sel.register(fd, events)
        elif self.sel.get_key(fd).events != events:
            self.sel.modify(fd, events)

    def _shutdown(self) -> None:
        for client in list(self.clients.values()):
            self._drop(client)
        self.listener.close()
        try:
            os.unlink(os.path.join(self.state_dir, protocol.SOCKET_NAME))
        except FileNotFoundError:
            pass
        self.logger.close()
        self._reap()

    # -- children ---------------------------------------------------------------------------------

    def _on_signal(self) -> None:
        try:
            while self.wake_r.recv(512):
                pass
        except BlockingIOError:
            pass
        self._reap()

    def _reap(self) -> None:
        """Collect every exited child (the shim is a subreaper); note the init's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and self.reaped is None:
                code, sig = exit_code(status)
                self.reaped = {"exit_code": code, "exited_at": rfc3339nano()}
                if sig is not None:
                    self.reaped["signal"] = sig
                self.drain_deadline = time.monotonic() + DRAIN_TIMEOUT

    def _record_exit(self) -> None:
        for fd in list(self.stdio.outputs):
            for _ in range(64):  # bounded: a leftover process (no pid namespace) may write forever
                if fd not in self.stdio.outputs or not self._read_output(fd):
                    break
            if fd in self.stdio.outputs:
                self._close_output(fd)
        assert self.reaped is not None
        if self.delete_on_exit:
            self._delete()
        path = os.path.join(self.state_dir, protocol.EXIT_FILE)
        with open(path + ".tmp", "w") as f:
            f.write(protocol.encode(self.reaped).decode())
        os.replace(path + ".tmp", path)
        self.exit = self.reaped
        self.status = "stopped"
        if self.stdio.stdin_fd is not None:
            self._stdin_gone()
        for client in list(self.clients.values()):
            if client.mode == "wait":
                self._send(client, protocol.encode({"ok": True, **self.exit}))
            if client.mode != "command":
                client.closing = True
                self._flush_client(client)
        self.linger_deadline = time.monotonic() + LINGER_TIMEOUT

    def _delete(self) -> None:
        """`runtime delete` before the exit is recorded (so the record means the runtime is done
        with the container); whether the OOM killer fired is noted first, from the cgroup that
        the delete removes."""
        assert self.reaped is not None
        if self.bundle and bundle_oom_killed(self.bundle):
            self.reaped["oom_killed"] = True
        try:
            self.runtime.run("delete", "--force", self.cid)
        except RuntimeFailed as exc:
            print(f"dockyard-shim: delete failed: {exc}", file=sys.stderr)
            return
        self.reaped["deleted"] = True

    # -- container stdio --------------------------------------------------------------------------

    def _refresh_stdio(self, fd: int) -> None:
        reader = (lambda: self._read_output(fd)) if fd in self.stdio.outputs else None
        writer = self._flush_stdin if fd == self.stdio.stdin_fd and self.stdin_buf else None
        self._watch(fd, reader, writer)

    def _read_output(self, fd: int) -> bool:
        """Read one chunk of output into the log and attach clients; False when nothing came."""
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError as exc:  # EIO: the pty's last slave end closed
            if exc.errno != errno.EIO:
                print(f"dockyard-shim: reading output: {exc}", file=sys.stderr)
            data = b""
        if not data:
            self._close_output(fd)
            return False
        stream = self.stdio.outputs[fd]
        self._log(stream, self.splitters[fd].feed(data))
        payload = data if self.stdio.tty else protocol.frame(protocol.STREAM_IDS[stream], data)
        for client in list(self.clients.values()):
            if client.mode == "attach" and stream in client.streams and not client.closing:
                self._send(client, payload)
        return True

    def _log(self, stream: str, messages: list[bytes]) -> None:
        stamp = rfc3339nano()
        try:
            for msg in messages:
                self.logger.write(stream, msg, stamp)
        except OSError as exc:
            print(f"dockyard-shim: writing log: {exc}", file=sys.stderr)

    def _close_output(self, fd: int) -> None:
        stream = self.stdio.outputs.pop(fd)
        self._log(stream, self.splitters.pop(fd).flush())
        if fd == self.stdio.stdin_fd:
            self.stdio.stdin_fd = None
            self.stdin_buf.clear()
        if fd == self.master:
            self.master = None
        self._watch(fd, None, None)
        os.close(fd)

    def _write_stdin(self, data: bytes) -> None:
        if self.stdio.stdin_fd is None or self.stdin_closing:
            return
        self.stdin_buf += data
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        fd = self.stdio.stdin_fd
        if fd is None:
            return
        if self.stdin_buf:
            try:
                del self.stdin_buf[:os.write(fd, self.stdin_buf)]
            except BlockingIOError:
                pass
            except OSError:  # EPIPE: the container closed its stdin
                self._stdin_gone()
                return
        if self.stdin_closing and not self.stdin_buf:
            if self.stdio.tty:
                try:
                    os.write(fd, b"\x04")  # EOT: end of input for a reader in canonical mode
                except OSError:
                    pass
            self._stdin_gone()
            return
        self._refresh_stdio(fd)
        self._refresh_stdin_clients()

    def _stdin_gone(self) -> None:
        """Stop forwarding input; close the stdin pipe (a pty master stays open for output)."""
        fd = self.stdio.stdin_fd
        self.stdio.stdin_fd = None
        self.stdin_buf.clear()
        self.stdin_closing = False
        if fd is None:
            return
        if fd in self.stdio.outputs:
            self._refresh_stdio(fd)
        else:
            self._watch(fd, None, None)
            os.close(fd)
        self._refresh_stdin_clients()

    def _refresh_stdin_clients(self) -> None:
        for client in list(self.clients.values()):
            if client.mode == "attach" and client.stdin:
                self._refresh_client(client)

    # -- control clients --------------------------------------------------------------------------

    def _on_accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # BlockingIOError when the backlog is empty
                return
            sock.setblocking(False)
            client = Client(sock)
            self.clients[client.fd] = client
            self._refresh_client(client)

    def _refresh_client(self, client: Client) -> None:
        if self.clients.get(client.fd) is not client:
            return
        stdin_full = client.mode == "attach" and client.stdin and len(self.stdin_buf) >= STDIN_BUFFER_LIMIT
        reading = not (client.eof or client.closing or stdin_full)
        self._watch(client.fd, (lambda: self._on_client_read(client)) if reading else None,
                    (lambda: self._flush_client(client)) if client.wbuf else None)

    def _drop(self, client: Client) -> None:
        if self.clients.get(client.fd) is client:
            del self.clients[client.fd]
            self._watch(client.fd, None, None)
        client.sock.close()

    def _send(self, client: Client, data: bytes) -> None:
        client.wbuf += data
        if len(client.wbuf) > CLIENT_BUFFER_LIMIT:
            print("dockyard-shim: disconnecting a client that does not keep up", file=sys.stderr)
            self._drop(client)
        else:
            self._flush_client(client)

    def _flush_client(self, client: Client) -> None:
        if client.wbuf:
            try:
                del client.wbuf[:client.sock.send(client.wbuf)]
            except BlockingIOError:
                pass
            except OSError:
                self._drop(client)
                return
        if client.closing and not client.wbuf:
            self._drop(client)
        else:
            self._refresh_client(client)

    def _on_client_read(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        if not data:
            client.eof = True
            if client.mode == "attach" and client.stdin and client.stdin_once:
                self._close_stdin()
            elif client.mode == "command":
                client.closing = True
            self._flush_client(client)
        elif client.mode == "attach":
            if client.stdin:
                self._write_stdin(data)
        else:
            client.rbuf += data
            self._handle_lines(client)

    def _handle_lines(self, client: Client) -> None:
        while client.mode == "command" and self.clients.get(client.fd) is client:
            nl = client.rbuf.find(b"\n")
            if nl < 0:
                if len(client.rbuf) > protocol.MAX_LINE:
                    client.rbuf.clear()
                    client.closing = True
                    self._send(client, protocol.encode(protocol.error("request too long")))
                return
            line = bytes(client.rbuf[:nl])
            del client.rbuf[:nl + 1]
            if line.strip():
                self._handle(client, line)
        if client.mode == "attach" and client.rbuf:
            data = bytes(client.rbuf)
            client.rbuf.clear()
            if client.stdin:
                self._write_stdin(data)

    def _handle(self, client: Client, line: bytes) -> None:
        try:
            request = protocol.decode(line)
            op = self.ops.get(request.get("op"))  # type: ignore[arg-type]
            if op is None:
                raise protocol.ProtocolError(f"unknown op {request.get('op')!r}")
            reply = op(client, request)
        except (protocol.ProtocolError, RuntimeFailed, OSError, LookupError, ValueError, TypeError) as exc:
            reply = protocol.error(str(exc))
        if reply is not None:
            self._send(client, protocol.encode(reply))

    # -- operations -------------------------------------------------------------------------------

    def _op_state(self, client: Client, request: Message) -> Message:
        return {"ok": True, "id": self.cid, "pid": self.pid, "shim_pid": os.getpid(), "status": self.status,
                "tty": self.stdio.tty, "started_at": self.started_at, "exit": self.exit}

    def _op_start(self, client: Client, request: Message) -> Message:
        if self.status != "created" or self.reaped:
            raise protocol.ProtocolError(f"container is not in created state ({self.status})")
        return {"ok": True, "started_at": self.start()}

    def start(self) -> str:
        """`runtime start`: the container runs; its start time (RFC 3339). RuntimeFailed if it fails."""
        self.runtime.run("start", self.cid)
        self.status = "running"
        self.started_at = rfc3339nano()
        return self.started_at

    def _op_signal(self, client: Client, request: Message) -> Message:
        sig = request.get("signal")
        if not isinstance(sig, int | str) or isinstance(sig, bool) or sig == "":
            raise protocol.ProtocolError("signal must be a number or a name")
        self.runtime.run("kill", *(["--all"] if request.get("all") else []), self.cid, str(sig))
        return {"ok": True}

    def _op_resize(self, client: Client, request: Message) -> Message:
        if self.master is None:
            raise protocol.ProtocolError("the container has no terminal")
        size = struct.pack("HHHH", int(request["height"]), int(request["width"]), 0, 0)
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
        return {"ok": True}

    def _op_wait(self, client: Client, request: Message) -> Message | None:
        if self.exit is not None:
            return {"ok": True, **self.exit}
        client.mode = "wait"
        return None

    def _op_close_stdin(self, client: Client, request: Message) -> Message:
        self._close_stdin()
        return {"ok": True}

    def _close_stdin(self) -> None:
        if self.stdio.stdin_fd is not None:
            self.stdin_closing = True
            self._flush_stdin()

    def _op_attach(self, client: Client, request: Message) -> Message:
        started: Message = {}
        if request.get("start"):  # attached first, then started: the loop reads no output in between
            if self.status != "created" or self.reaped:
                raise protocol.ProtocolError(f"container is not in created state ({self.status})")
            started["started_at"] = self.start()
        client.mode = "attach"
        client.streams = frozenset(s for s in ("stdout", "stderr") if request.get(s, True))
        client.stdin = bool(request.get("stdin")) and self.stdio.stdin_fd is not None
        client.stdin_once = bool(request.get("stdin_once"))
        client.closing = self.exit is not None
        return {"ok": True, "tty": self.stdio.tty, "stdin": client.stdin, **started}
