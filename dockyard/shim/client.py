"""A small synchronous client for dockyard-shim, used by the daemon and the tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from dockyard.shim import protocol

SHIM_COMMAND = [sys.executable, "-m", "dockyard.shim.main"]


class ShimError(Exception):
    """The shim refused a request, failed to start, or is gone without an exit record."""


@dataclass
class ShimInfo:
    """What a successful launch reports."""

    pid: int  # the container's init process
    socket: str
    shim_pid: int


def launch_shim(cid: str, bundle: str, state_dir: str, runtime: str, log_path: str, *,
                runtime_root: str | None = None, runtime_args: tuple[str, ...] = (), stdin: bool = False,
                tty: bool = False, log_max_size: int | None = None, log_max_file: int | None = None,
                delete_on_exit: bool = False, command: list[str] | None = None, timeout: float = 60) -> ShimInfo:
    """Start a shim (which creates the container); raise ShimError with the runtime's error text."""
    argv = [*(command or SHIM_COMMAND), "--id", cid, "--bundle", bundle, "--state-dir", state_dir,
            "--runtime", runtime, "--log-path", log_path]
    if runtime_root:
        argv += ["--runtime-root", runtime_root]
    argv += [f"--runtime-arg={arg}" for arg in runtime_args]
    if log_max_size is not None:
        argv += ["--log-max-size", str(log_max_size)]
    if log_max_file is not None:
        argv += ["--log-max-file", str(log_max_file)]
    argv += [flag for flag, on in (("--stdin", stdin), ("--tty", tty), ("--delete-on-exit", delete_on_exit)) if on]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ShimError(proc.stderr.strip() or f"dockyard-shim exited with status {proc.returncode}")
    report = json.loads(proc.stdout)
    return ShimInfo(pid=report["pid"], socket=report["socket"], shim_pid=report["shim_pid"])


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
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
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
        sock = self._connect(self.timeout)
        try:
            sock.sendall(protocol.encode({"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr,
                                          "stdin_once": stdin_once}))
            self._read_reply(sock)
        except BaseException:
            sock.close()
            raise
        return sock


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
