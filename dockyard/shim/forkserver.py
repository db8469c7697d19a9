"""A fork server: one pre-imported interpreter that forks shims and runtime commands.

A new interpreter per shim or per `dockyard-runtime` command costs its start-up and imports every
time (~25 ms on a small VM, most of a container start). The daemon starts one fork server instead:
a single-threaded interpreter (no aiohttp, no threads, so fork is safe) that has imported the shim
and dockyard-runtime once and forks a child per request, which runs what a new interpreter would.

Requests come on a unix socket, one connection each: a JSON line whose first chunk carries file
descriptors (SCM_RIGHTS).

  {"op": "shim", "options": {...}}   fds: [sync pipe, shim log]
      a detached shim, exactly as `setsid -f python -c BOOT`: a new session, double-forked so that
      it is nobody's child; it reports on the sync pipe as usual (client.launch_shim reads it)
      -> {"ok": true}
  {"op": "spawn", "argv": [...], "in_process": bool}   fds: [stdin, stdout, stderr]
      a runtime command: in_process runs dockyard-runtime's entry point in the fork, else argv is
      spawned; the fork server is its parent and reports its end on the same connection
      -> {"ok": true, "pid": N} ... {"exit": CODE, "signal": SIG|null}

This module is the daemon's side; the server's loop is forkserver_process.py. The server exits
when its lifeline pipe (whose write end only the daemon holds) reaches EOF.
Children outlive it: shims are in their own sessions, spawned commands are reaped by init.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from dockyard.shim import protocol

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOCKET_NAME = "forkserver.sock"
# what the server's interpreter runs: argv is [-c, project root, listening fd, lifeline fd]
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from dockyard.shim import forkserver_process; "
         "forkserver_process.serve(int(sys.argv[2]), int(sys.argv[3]))")


class ForkServerError(Exception):
    """The fork server refused a request or failed while handling it."""


class ForkServerUnavailable(ForkServerError):
    """The fork server is not running or not answering: nothing was asked of it."""


# -- client (in the daemon) --------------------------------------------------------------------------


class Spawned:
    """A runtime command the fork server started: its pid, and its end on the connection."""

    def __init__(self, pid: int, conn: socket.socket, pending: bytes) -> None:
        self.pid = pid
        self.returncode: int | None = None  # exit code with Docker's 128+signal convention
        self._conn = conn
        self._pending = pending

    def _settle(self, data: bytes) -> int:
        self._conn.close()
        try:
            self.returncode = int(protocol.decode(data)["exit"])  # type: ignore[call-overload]
        except (protocol.ProtocolError, KeyError, TypeError, ValueError):
            self.returncode = 255  # the server died before the command ended
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until the command ended (TimeoutError after timeout seconds); its exit code."""
        if self.returncode is not None:
            return self.returncode
        data = self._pending
        self._conn.setblocking(True)
        self._conn.settimeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not data.endswith(b"\n"):
                if deadline is not None:
                    self._conn.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = self._conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            self._pending = data
            raise TimeoutError(f"process {self.pid} still runs after {timeout:g}s") from None
        return self._settle(data)

    async def wait_async(self) -> int:
        """wait() for asyncio code."""
        import asyncio

        if self.returncode is not None:
            return self.returncode
        loop = asyncio.get_running_loop()
        data = self._pending
        self._conn.setblocking(False)
        while not data.endswith(b"\n") and (chunk := await loop.sock_recv(self._conn, 4096)):
            data += chunk
        return self._settle(data)

    def kill(self, sig: int = 9) -> None:
        """Signal the command (if it still runs)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


class ForkServer:
    """The daemon's handle on its fork server (started by start(), stopped by close())."""

    def __init__(self, run_dir: str, python: str | None = None) -> None:
        self.path = os.path.join(run_dir, SOCKET_NAME)
        self.python = python or sys.executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._lifeline = -1
        self._restarted_at = 0.0
        self._restart_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> ForkServer:
        """Start the server; requests may be sent at once (they wait in the socket's backlog)."""
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        name, dir_fd = protocol.short_name(self.path)
        try:
            if os.path.lexists(self.path):
                os.unlink(self.path)
            listener.bind(name)
            os.chmod(self.path, 0o600)
            listener.listen(128)
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
        lifeline_r, self._lifeline = os.pipe2(os.O_CLOEXEC)
        try:
            self._proc = subprocess.Popen(
                [self.python, "-I", "-S", "-c", _BOOT, PROJECT_ROOT, str(listener.fileno()), str(lifeline_r)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(listener.fileno(), lifeline_r),
                cwd="/")
        finally:
            listener.close()
            os.close(lifeline_r)
        return self

    def _restart(self) -> None:
        """Start the server again if it died (at most once a second); ForkServerUnavailable if it
        was never started, was closed, or cannot start."""
        if self._lifeline < 0:
            raise ForkServerUnavailable("the fork server is not running")
        now = time.monotonic()
        if now - self._restarted_at < 1:
            raise ForkServerUnavailable("the fork server died and was restarted less than a second ago")
        self._restarted_at = now
        if self._proc is not None:
            self._proc.wait()
        os.close(self._lifeline)
        self._lifeline = -1
        try:
            self.start()
        except OSError as exc:
            raise ForkServerUnavailable(f"cannot restart the fork server: {exc}") from None

    def close(self, timeout: float = 5) -> None:
        """Stop the server (its children keep running) and remove its socket."""
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _send(self, message: dict[str, Any], fds: list[int], timeout: float) -> socket.socket:
        """Connect and send one request (a unix socket's connect and a short send do not block:
        the listener's backlog and the socket buffer take them)."""
        if not self.running:
            with self._restart_lock:
                if not self.running:
                    self._restart()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        name, dir_fd = protocol.short_name(self.path)
        try:
            sock.connect(name)
        except OSError as exc:
            sock.close()
            raise ForkServerUnavailable(f"cannot reach the fork server: {exc}") from None
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
        try:
            socket.send_fds(sock, [protocol.encode(message)], fds)
        except OSError as exc:
            sock.close()
            raise ForkServerError(f"fork server request failed: {exc}") from None
        return sock

    @staticmethod
    def _first_reply(sock: socket.socket, data: bytes) -> tuple[dict[str, Any], bytes]:
        """The first reply line of data (which holds one), and what followed it."""
        line, _, rest = data.partition(b"\n")
        reply = protocol.decode(line)
        if not reply.get("ok"):
            sock.close()
            raise ForkServerError(str(reply.get("error")))
        return reply, rest

    def _request(self, message: dict[str, Any], fds: list[int],
                 timeout: float) -> tuple[socket.socket, dict[str, Any], bytes]:
        """Send one request: the connection, the first reply, and what followed it on the connection."""
        sock = self._send(message, fds, timeout)
        try:
            data = b""
            while b"\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ForkServerError("the fork server closed the connection")
                data += chunk
        except (OSError, ForkServerError) as exc:
            sock.close()
            raise ForkServerError(f"fork server request failed: {exc}") from None
        return (sock, *self._first_reply(sock, data))

    def launch_shim(self, options: dict[str, Any], sync_fd: int, log_fd: int, timeout: float = 30) -> None:
        """Fork a detached shim with options (see client.launch_shim); it reports on sync_fd."""
        sock, _, _ = self._request({"op": "shim", "options": options}, [sync_fd, log_fd], timeout)
        sock.close()

    def run(self, argv: list[str], in_process: bool, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a runtime command to completion, its output captured (as subprocess.run with
        capture_output and text); killed after timeout seconds (subprocess.TimeoutExpired)."""
        out = os.memfd_create("stdout", os.MFD_CLOEXEC)
        err = os.memfd_create("stderr", os.MFD_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            spawned = self.spawn(argv, null, out, err, in_process)
            try:
                code = spawned.wait(timeout)
            except TimeoutError:
                spawned.kill()
                spawned.wait()
                raise subprocess.TimeoutExpired(argv, timeout) from None
            texts = [os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace") for fd in (out, err)]
        finally:
            for fd in (out, err, null):
                os.close(fd)
        return subprocess.CompletedProcess(argv, code, texts[0], texts[1])

    def spawn(self, argv: list[str], stdin: int, stdout: int, stderr: int, in_process: bool,
              timeout: float = 30) -> Spawned:
        """Start a runtime command with the given stdio (in_process: dockyard-runtime's entry point
        in a fork, argv[0] being this project's dockyard-runtime)."""
        sock, reply, rest = self._request({"op": "spawn", "argv": argv, "in_process": in_process},
                                          [stdin, stdout, stderr], timeout)
        return Spawned(int(reply["pid"]), sock, rest)

    async def spawn_async(self, argv: list[str], stdin: int, stdout: int, stderr: int, in_process: bool,
                          timeout: float = 30) -> Spawned:
        """spawn() for asyncio code: the reply is awaited on the event loop (no worker thread)."""
        import asyncio

        sock = self._send({"op": "spawn", "argv": argv, "in_process": in_process}, [stdin, stdout, stderr],
                          timeout)
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        data = b""
        try:
            async with asyncio.timeout(timeout):
                while b"\n" not in data:
                    chunk = await loop.sock_recv(sock, 4096)
                    if not chunk:
                        raise ForkServerError("the fork server closed the connection")
                    data += chunk
        except (OSError, TimeoutError, ForkServerError) as exc:
            sock.close()
            raise ForkServerError(f"fork server request failed: {exc}") from None
        except BaseException:
            sock.close()
            raise
        reply, rest = self._first_reply(sock, data)
        return Spawned(int(reply["pid"]), sock, rest)
