"""A small synchronous client for dockyard-shim, used by the daemon and the tests."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from dockyard.shim import protocol
from dockyard.shim.forkserver import ForkServer, ForkServerError, ForkServerUnavailable

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# what the shim's interpreter runs: argv is [-c, project root, sync fd, options as JSON]
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from dockyard.shim import daemon; "
         "daemon.run(int(sys.argv[2]), sys.argv[3])")


class ShimError(Exception):
    """The shim refused a request, failed to start, or is gone without an exit record."""


@dataclass
class ShimInfo:
    """What a successful launch reports."""

    pid: int  # the container's init process
    socket: str
    shim_pid: int
    started_at: str | None = None  # when the shim started the container itself (launch_shim's start)


def launch_shim(cid: str, bundle: str, state_dir: str, runtime: str, log_path: str, *,
                runtime_root: str | None = None, runtime_args: tuple[str, ...] = (), stdin: bool = False,
                tty: bool = False, log_max_size: int | None = None, log_max_file: int | None = None,
                delete_on_exit: bool = False, start: bool = False, python: str | None = None,
                in_process: bool | None = None, timeout: float = 60, forkserver: ForkServer | None = None) -> ShimInfo:
    """Start a detached shim (which creates the container, and with start starts it at once: one
    step less when nobody has to attach in the created state); raise ShimError with the runtime's error.

    `setsid -f` forks the shim's interpreter into a new session and returns at once, so the shim is
    never our child (it outlives us, and nobody has to reap it) and no interpreter runs in between;
    the shim reports on a pipe once the container is created. in_process (default: whether runtime
    is this project's dockyard-runtime beside the interpreter) runs the runtime's commands in forks
    of the shim instead of new interpreters. With a running forkserver the shim is a fork of that
    pre-imported interpreter instead (same session and parentage; setsid is the fallback)."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    python = python or sys.executable
    if in_process is None:
        in_process = is_own_runtime(runtime, python)
    options = {"id": cid, "bundle": os.path.abspath(bundle), "state_dir": os.path.abspath(state_dir),
               "runtime": os.path.abspath(runtime) if os.sep in runtime else runtime,
               "runtime_root": runtime_root and os.path.abspath(runtime_root), "runtime_arg": list(runtime_args),
               "log_path": os.path.abspath(log_path), "log_max_size": -1 if log_max_size is None else log_max_size,
               "log_max_file": 1 if log_max_file is None else log_max_file, "stdin": stdin, "tty": tty,
               "delete_on_exit": delete_on_exit, "start": start, "runtime_in_process": in_process}
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    log_fd = os.open(os.path.join(state_dir, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
    try:
        if not _fork_shim(forkserver, options, write_fd, log_fd, timeout):
            # -I -S: no site-packages, no environment: a smaller interpreter per container
            argv = ["setsid", "-f", python, "-I", "-S", "-c", _BOOT, PROJECT_ROOT, str(write_fd),
                    json.dumps(options)]
            code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_fd,
                                  cwd="/", pass_fds=(write_fd,), timeout=timeout).returncode
            if code != 0:
                raise ShimError(f"cannot start dockyard-shim: setsid exited with status {code}")
        os.close(write_fd)
        write_fd = -1
        report = _read_report(read_fd, timeout, state_dir)
    finally:
        for fd in (read_fd, write_fd, log_fd):
            if fd >= 0:
                os.close(fd)
    if "error" in report:
        raise ShimError(str(report["error"]))
    return ShimInfo(pid=report["pid"], socket=report["socket"], shim_pid=report["shim_pid"],
                    started_at=report.get("started_at"))


def _fork_shim(forkserver: ForkServer | None, options: dict[str, Any], sync_fd: int, log_fd: int,
               timeout: float) -> bool:
    """Whether forkserver started the shim (False: it is absent or not answering, so the caller
    starts one itself); ShimError when it failed while starting one."""
    if forkserver is None:
        return False
    try:
        forkserver.launch_shim(options, sync_fd, log_fd, timeout)
    except ForkServerUnavailable:
        return False
    except ForkServerError as exc:
        raise ShimError(f"cannot start dockyard-shim: {exc}") from None
    return True


def is_own_runtime(runtime: str, python: str) -> bool:
    """Whether runtime is the dockyard-runtime launcher of the venv that python belongs to."""
    beside = os.path.join(os.path.dirname(python), "dockyard-runtime")
    return os.path.realpath(runtime) == os.path.realpath(beside) and os.access(beside, os.X_OK)


def _read_report(fd: int, timeout: float, state_dir: str) -> dict[str, Any]:
    """The shim's start-up report: everything written to the sync pipe until it is closed."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise ShimError(f"dockyard-shim did not report within {timeout:g}s (see {state_dir}/shim.log)")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    try:
        return json.loads(data)
    except ValueError:
        return {"error": f"dockyard-shim died during start-up (see {state_dir}/shim.log)"}


def read_exit(state_dir: str) -> dict[str, Any] | None:
    """The exit record the shim wrote, or None if there is none (yet)."""
    try:
        with open(os.path.join(state_dir, protocol.EXIT_FILE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class ShimClient:
    """Talks to the shim of one container through <state-dir>/shim.sock."""

    def __init__(self, state_dir: str, timeout: float | None = 30.0) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, protocol.SOCKET_NAME)
        self.timeout = timeout

    def _connect(self, timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        name, dir_fd = protocol.short_name(self.path)
        try:
            sock.connect(name)
        except OSError:
            sock.close()
            raise
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
        return sock

    @staticmethod
    def _read_reply(sock: socket.socket) -> dict[str, Any]:
        line = bytearray()
        while not line.endswith(b"\n"):  # byte by byte: what follows may be an attach stream
            byte = sock.recv(1)
            if not byte:
                raise ConnectionResetError("the shim closed the connection")
            line += byte
        reply = protocol.decode(bytes(line))
        if not reply.get("ok"):
            raise ShimError(reply.get("error", "unknown error"))
        return reply

    def call(self, op: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Send one request and return the reply; raise ShimError on a failure reply."""
        with self._connect(timeout if timeout is not None else self.timeout) as sock:
            sock.sendall(protocol.encode({"op": op, **args}))
            return self._read_reply(sock)

    def state(self) -> dict[str, Any]:
        """pid, status (created|running|stopped), started_at, exit, tty, shim_pid."""
        return self.call("state")

    def start(self) -> dict[str, Any]:
        """Run `runtime start`."""
        return self.call("start")

    def signal(self, sig: int | str, all: bool = False) -> None:
        """Send sig (number or name) to the init process, or with all=True to every process."""
        self.call("signal", signal=sig, all=all)

    def resize(self, width: int, height: int) -> None:
        """Set the terminal size (tty containers)."""
        self.call("resize", width=width, height=height)

    def close_stdin(self) -> None:
        """Close the container's stdin (send EOT with a tty)."""
        self.call("close_stdin")

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the container exits; return {"exit_code", "exited_at"[, "signal"]}."""
        try:
            reply = self.call("wait", timeout=timeout)
            reply.pop("ok")
            return reply
        except (FileNotFoundError, ConnectionError):  # refused, reset or broken pipe: the shim is exiting
            record = read_exit(self.state_dir)  # the shim already exited
            if record is None:
                raise ShimError("the shim is gone and recorded no exit") from None
            return record

    def attach(self, stdin: bool = False, stdout: bool = True, stderr: bool = True,
               stdin_once: bool = False) -> socket.socket:
        """Attach to the container's stdio; return the stream socket. Without a tty the output is
        framed (protocol.frame); shutting down the write side closes stdin when stdin_once."""
        return self._attach({"stdin": stdin, "stdout": stdout, "stderr": stderr, "stdin_once": stdin_once})[0]

    def attach_and_start(self, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                         stdin_once: bool = False) -> tuple[socket.socket, str]:
        """attach() to a created container and start it in the same request: (stream socket, the
        start time). A ShimError is the start's failure."""
        sock, reply = self._attach({"stdin": stdin, "stdout": stdout, "stderr": stderr, "stdin_once": stdin_once,
                                    "start": True})
        return sock, reply["started_at"]

    def _attach(self, args: dict[str, Any]) -> tuple[socket.socket, dict[str, Any]]:
        sock = self._connect(self.timeout)
        try:
            sock.sendall(protocol.encode({"op": "attach", **args}))
            reply = self._read_reply(sock)
        except BaseException:
            sock.close()
            raise
        return sock, reply


def read_frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Read a framed attach stream until EOF; return (stream, payload) pairs."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    frames = []
    while len(data) >= 8:
        size = int.from_bytes(data[4:8], "big")
        frames.append((data[0], bytes(data[8:8 + size])))
        del data[:8 + size]
    return frames
