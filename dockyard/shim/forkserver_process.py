"""The fork server's own process (see forkserver.py for the protocol and the daemon's side).

It imports only what its children need (the shim and dockyard-runtime): every shim it forks
carries those pages, so the daemon-side client's imports (subprocess, threading) stay out."""

from __future__ import annotations

import json
import os
import select
import socket
import time

from dockyard.shim import protocol

TYPE_CHECKING = False  # typing costs resident memory in every forked shim; annotations only
if TYPE_CHECKING:
    from typing import Any

MAX_FDS = 4



def serve(listen_fd: int, lifeline_fd: int) -> None:
    """The server's loop; never returns (exits when the lifeline closes)."""
    from dockyard.shim import daemon as shim_daemon  # noqa: F401 - the imports every child shares
    from dockyard.shim.oci import OciRuntime

    OciRuntime.preload()
    os.set_inheritable(listen_fd, False)
    os.set_inheritable(lifeline_fd, False)
    listener = socket.socket(fileno=listen_fd)
    server = _Server(listener, lifeline_fd)
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(lifeline_fd, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == lifeline_fd:
                os._exit(0)
            if fd == listener.fileno():
                server.accept(poller)
            else:
                server.reap(fd, poller)


class _Server:
    """The fork server's state: the listener, and the spawned commands it waits for."""

    def __init__(self, listener: socket.socket, lifeline_fd: int) -> None:
        self.listener = listener
        self.lifeline_fd = lifeline_fd
        self.waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)

    def accept(self, poller: Any) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(5)
            request, fds = _read_request(conn)
            op = request.get("op")
            if op == "shim":
                self._shim(request["options"], fds, conn)
                conn.sendall(protocol.encode({"ok": True}))
            elif op == "spawn":
                pid = self._spawn(request, fds)
                pidfd = os.pidfd_open(pid)
                os.set_inheritable(pidfd, False)
                self.waiting[pidfd] = (pid, conn)
                poller.register(pidfd, select.POLLIN)  # readable: the process exited
                conn.sendall(protocol.encode({"ok": True, "pid": pid}))
                conn = None  # kept until the command ends
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:  # noqa: BLE001 - a bad request must not end the server
            if conn is not None:
                try:
                    conn.sendall(protocol.encode(protocol.error(str(exc))))
                except OSError:
                    pass
        finally:
            for fd in fds:
                os.close(fd)
            if conn is not None:
                conn.close()

    def reap(self, pidfd: int, poller: Any) -> None:
        pid, conn = self.waiting.pop(pidfd)
        poller.unregister(pidfd)
        os.close(pidfd)
        from dockyard.shim.oci import exit_code

        code, sig = exit_code(os.waitpid(pid, 0)[1])
        try:
            conn.sendall(protocol.encode({"exit": code, "signal": sig}))
        except OSError:
            pass  # the daemon stopped waiting
        conn.close()

    def _drop_server_fds(self) -> None:
        """In a child: close the server's own descriptors (nothing of it may leak into a container)."""
        os.close(self.listener.detach())
        os.close(self.lifeline_fd)
        for pidfd, (_, conn) in self.waiting.items():
            os.close(pidfd)
            os.close(conn.detach())

    def _shim(self, options: dict[str, Any], fds: list[int], conn: socket.socket) -> None:
        sync_fd, log_fd = fds[0], fds[1]
        child = os.fork()
        if child:
            os.waitpid(child, 0)
            return
        try:  # the intermediate child: a new session, then the shim in a fork of it
            os.setsid()
            if os.fork():
                os._exit(0)
            self._drop_server_fds()
            os.close(conn.detach())
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(log_fd, 2)
            for fd in (null, log_fd, *fds[2:]):
                os.close(fd)
            from dockyard.shim import daemon

            daemon.run(sync_fd, json.dumps(options))
        finally:
            os._exit(1)

    def _spawn(self, request: dict[str, Any], fds: list[int]) -> int:
        from dockyard.shim import oci

        argv = [str(a) for a in request["argv"]]
        stdin, stdout, stderr = fds[0], fds[1], fds[2]
        if request.get("in_process"):
            return oci.fork_main(argv, stdin, stdout, stderr, prepare=self._drop_server_fds)
        return oci.spawn(argv, stdin, stdout, stderr)


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One JSON line and the descriptors sent with it (made close-on-exec here)."""
    data, fds, _, _ = socket.recv_fds(conn, protocol.MAX_LINE, MAX_FDS)
    for fd in fds:
        os.set_inheritable(fd, False)
    deadline = time.monotonic() + 5
    while data and not data.endswith(b"\n") and len(data) < protocol.MAX_LINE and time.monotonic() < deadline:
        chunk = conn.recv(protocol.MAX_LINE)
        if not chunk:
            break
        data += chunk
    request = protocol.decode(data)
    if len(fds) < (2 if request.get("op") == "shim" else 3):
        for fd in fds:
            os.close(fd)
        raise ValueError("missing file descriptors")
    return request, fds
