"""The fork server's own process (see forkserver.py for the protocol and the daemon's side).

It imports only what its children need (the shim and dockyard-runtime): every shim it forks
carries those pages, so the daemon-side client's imports (subprocess, threading) stay out."""

from __future__ import annotations

import json
import os
import select
import signal
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
    poller = select.poll()
    server = _Server(listener, lifeline_fd, poller)
    poller.register(listener, select.POLLIN)
    poller.register(lifeline_fd, select.POLLIN)
    server.make_spare()
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

    def __init__(self, listener: socket.socket, lifeline_fd: int, poller: Any) -> None:
        self.listener = listener
        self.lifeline_fd = lifeline_fd
        self.poller = poller
        self.waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
        # the spare: a child already in a session of its own that waits for a shim's options (see
        # _spare_main), so a launch costs no fork of this server; pidfd -> (pid, our socket end)
        self.spare: tuple[int, int, socket.socket] | None = None
        self.retired: dict[int, int] = {}  # pidfd -> pid of spares that became a shim's parent

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
                if not self._hand_to_spare(request["options"], fds):
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
        if self.spare is None:  # forked once the request's descriptors are closed: it must not hold them
            self.make_spare()

    def reap(self, pidfd: int, poller: Any) -> None:
        if pidfd in self.retired or (self.spare is not None and self.spare[1] == pidfd):
            self._reap_spare(pidfd)
            return
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
        if self.spare is not None:
            os.close(self.spare[1])
            os.close(self.spare[2].detach())
        for pidfd in self.retired:
            os.close(pidfd)

    # -- the spare ---------------------------------------------------------------------------------

    def make_spare(self) -> None:
        """Fork the next spare (after a launch, so that no launch waits for this fork)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                self._drop_server_fds()
                _spare_main(theirs)
            finally:
                os._exit(1)
        theirs.close()
        pidfd = os.pidfd_open(pid)
        os.set_inheritable(pidfd, False)
        self.poller.register(pidfd, select.POLLIN)  # readable: it exited (its shim started, or it died)
        self.spare = (pid, pidfd, ours)

    def _hand_to_spare(self, options: dict[str, Any], fds: list[int]) -> bool:
        """Give a shim's options and descriptors to the spare; False when there is none (or it is
        gone), and the caller forks the shim itself."""
        if self.spare is None:
            return False
        pid, pidfd, sock = self.spare
        self.spare = None
        try:
            socket.send_fds(sock, [protocol.encode(options)], fds[:2])
        except OSError:  # it died (its end is closed): reap it, killed first should it still be there
            sock.close()
            self.poller.unregister(pidfd)
            os.close(pidfd)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        sock.close()
        self.retired[pidfd] = pid
        return True

    def _reap_spare(self, pidfd: int) -> None:
        pid = self.retired.pop(pidfd, None)
        if pid is None:  # the waiting spare itself died
            assert self.spare is not None
            pid, _, sock = self.spare
            sock.close()
            self.spare = None
        self.poller.unregister(pidfd)
        os.close(pidfd)
        os.waitpid(pid, 0)

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
            for fd in fds[2:]:
                os.close(fd)
            _become_shim(sync_fd, log_fd, json.dumps(options))
        finally:
            os._exit(1)

    def _spawn(self, request: dict[str, Any], fds: list[int]) -> int:
        from dockyard.shim import oci

        argv = [str(a) for a in request["argv"]]
        stdin, stdout, stderr = fds[0], fds[1], fds[2]
        if request.get("in_process"):
            return oci.fork_main(argv, stdin, stdout, stderr, prepare=self._drop_server_fds)
        return oci.spawn(argv, stdin, stdout, stderr)


def _spare_main(sock: socket.socket) -> None:
    """The spare: a new session at once, then wait for one shim's options and its sync and log
    descriptors; the shim is a fork of it (which then exits: the shim is nobody's child, as with
    `setsid -f`). The server's end closing (it exited) ends the spare."""
    os.setsid()
    data, fds, _, _ = socket.recv_fds(sock, protocol.MAX_LINE, 2)
    while data and not data.endswith(b"\n") and len(data) < protocol.MAX_LINE:
        chunk = sock.recv(protocol.MAX_LINE)
        if not chunk:
            break
        data += chunk
    if not data.endswith(b"\n") or len(fds) < 2:
        os._exit(0)
    if os.fork():
        os._exit(0)
    sock.close()
    _become_shim(fds[0], fds[1], data.decode())


def _become_shim(sync_fd: int, log_fd: int, options: str) -> None:
    """In the shim's process: stdio (the shim log as stderr), then the shim; never returns."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log_fd, 2)
    for fd in (null, log_fd):
        os.close(fd)
    from dockyard.shim import daemon

    daemon.run(sync_fd, options)


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
