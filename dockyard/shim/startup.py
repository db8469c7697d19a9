"""Creating the container: stdio set-up (pipes or a console socket) and `runtime create`."""

from __future__ import annotations

import os
import select
import socket
import time

from dockyard.shim import protocol
from dockyard.shim.oci import OciRuntime, RuntimeFailed, wait_status

CONSOLE_TIMEOUT = 10.0
ERROR_DRAIN_TIMEOUT = 2.0


class Stdio:
    """The shim's side of the container's stdio."""

    def __init__(self, tty: bool, stdin_fd: int | None, outputs: dict[int, str]) -> None:
        self.tty = tty
        self.stdin_fd = stdin_fd  # write end of the stdin pipe, or the pty master
        self.outputs = outputs  # readable fd -> "stdout" / "stderr"


def unix_listener(path: str, backlog: int = 64) -> socket.socket:
    """A listening unix stream socket at path (replacing a stale one), mode 0600; a path longer
    than a socket address holds is bound through its directory's descriptor."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name, dir_fd = protocol.short_name(path)
    try:
        if os.path.exists(path):
            os.unlink(path)
        sock.bind(name)
        os.chmod(path, 0o600)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    return sock


def _read_until_eof(fd: int, timeout: float) -> bytes:
    """What a pipe yields until EOF or timeout (for a failed create's error text)."""
    data = b""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def create(runtime: OciRuntime, cid: str, bundle: str, pid_file: str, want_stdin: bool, tty: bool,
           console_path: str) -> tuple[int, Stdio]:
    """Run `runtime create`; return the init pid and the shim's stdio ends, or raise RuntimeFailed."""
    args = ["create", "--bundle", bundle, "--pid-file", pid_file]
    if tty:
        # the runtime connects by name: a long path is named through a descriptor that we hold
        name, dir_fd = protocol.short_name(console_path, os.getpid())
        try:
            stdio = _create_tty(runtime, [*args, "--console-socket", name, cid], console_path)
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
        if not want_stdin:
            stdio.stdin_fd = None
    else:
        stdio = _create_pipes(runtime, [*args, cid], want_stdin)
    with open(pid_file) as f:
        return int(f.read().strip()), stdio


def _create_pipes(runtime: OciRuntime, args: list[str], want_stdin: bool) -> Stdio:
    child: list[int] = [os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)]
    ours: list[int] = []
    stdin_child = child[0]
    try:
        if want_stdin:
            stdin_child, stdin_w = os.pipe()
            child.append(stdin_child)
            ours.append(stdin_w)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child += [out_w, err_w]
        ours += [out_r, err_r]
        pid = runtime.spawn(args, stdin_child, out_w, err_w)
    except BaseException:
        for fd in child + ours:
            os.close(fd)
        raise
    for fd in child:
        os.close(fd)
    code = wait_status(pid)
    if code:
        text = _read_until_eof(err_r, ERROR_DRAIN_TIMEOUT) or _read_until_eof(out_r, ERROR_DRAIN_TIMEOUT)
        for fd in ours:
            os.close(fd)
        raise RuntimeFailed(text.decode(errors="replace").strip() or f"{args[0]} exited with status {code}")
    for fd in ours:
        os.set_blocking(fd, False)
    return Stdio(tty=False, stdin_fd=stdin_w if want_stdin else None, outputs={out_r: "stdout", err_r: "stderr"})


def force_delete(runtime: OciRuntime, cid: str) -> None:
    """`runtime delete --force`, its failure ignored (cleaning up after a failed start)."""
    try:
        runtime.run("delete", "--force", cid)
    except RuntimeFailed:
        pass


def _create_tty(runtime: OciRuntime, args: list[str], console_path: str) -> Stdio:
    listener = unix_listener(console_path, backlog=1)
    created = False
    try:
        runtime.run(*args)
        created = True
        listener.settimeout(CONSOLE_TIMEOUT)
        try:
            conn, _ = listener.accept()
            with conn:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        except OSError as exc:
            raise RuntimeFailed(f"no pty master received on the console socket: {exc}") from None
        if not fds:
            raise RuntimeFailed("the runtime sent no pty master on the console socket")
    except RuntimeFailed:
        if created:
            force_delete(runtime, args[-1])
        raise
    finally:
        listener.close()
        os.unlink(console_path)
    master = fds[0]
    for extra in fds[1:]:
        os.close(extra)
    os.set_inheritable(master, False)
    os.set_blocking(master, False)
    return Stdio(tty=True, stdin_fd=master, outputs={master: "stdout"})
