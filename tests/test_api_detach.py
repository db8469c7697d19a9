"""Detach keys with the real docker CLI on a pty: ctrl-p ctrl-q (or --detach-keys) leaves
`docker run -it`, `docker attach` and `docker exec -it` while the container keeps running."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time

import pytest

from tests.daemon import Dockyardd, busybox_daemon, containers_removed

daemon = busybox_daemon  # the module's daemon fixture
no_leftover_children = containers_removed
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


class PtyClient:
    """A docker CLI command on its own pty."""

    def __init__(self, daemon: Dockyardd, *args: str) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(["docker", *args], stdin=slave, stdout=slave, stderr=slave, env=daemon.env(),
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def expect(self, want: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while want not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{want!r} not seen; got {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # EIO: the client closed its side
                    assert want in self.seen, f"{want!r} not seen; got {self.seen!r}"

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            os.close(self.master)


def running(daemon: Dockyardd, cid: str) -> bool:
    return json.loads(daemon.docker("inspect", cid).stdout)[0]["State"]["Running"]


def test_run_it_detaches_with_ctrl_p_ctrl_q_and_attach_again(daemon: Dockyardd) -> None:
    client = PtyClient(daemon, "run", "-it", "--name", "detachme", "busybox", "sh")
    client.expect(b"# ")
    client.send(b"echo one$((1+1))\r")
    client.expect(b"one2")
    client.send(b"\x10\x11")
    assert client.wait() == 0  # docker run -it leaves quietly
    assert running(daemon, "detachme")
    again = PtyClient(daemon, "attach", "--detach-keys", "ctrl-a,x", "detachme")
    again.send(b"echo back$((2+2))\r")
    again.expect(b"back4")
    again.send(b"\x01x")
    again.expect(b"read escape sequence")  # docker attach reports the detach, with status 1
    assert again.wait() == 1
    assert running(daemon, "detachme")


def test_exec_it_detaches_and_the_process_keeps_running(daemon: Dockyardd) -> None:
    cid = daemon.docker("run", "-d", "busybox", "sleep", "300").stdout.strip()
    client = PtyClient(daemon, "exec", "-it", cid, "sh", "-c", "echo ready; exec sleep 200")
    client.expect(b"ready")
    client.send(b"\x10\x11")
    client.wait()
    top = daemon.docker("exec", cid, "ps", "-o", "args").stdout
    assert "sleep 200" in top


def test_daemon_ends_a_raw_attach_on_the_detach_keys(daemon: Dockyardd) -> None:
    """Clients other than the docker CLI (docker-py's attach_socket) rely on the daemon to detect them."""
    cid = daemon.docker("run", "-d", "-t", "-i", "busybox", "sh").stdout.strip()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    with sock:
        sock.connect(str(daemon.socket))
        sock.sendall(f"POST /v1.45/containers/{cid}/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x,y HTTP/1.1\r\n"
                     "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        sock.sendall(b"echo in$((3+3))\r")
        seen = head.split(b"\r\n\r\n", 1)[1]
        while b"in6" not in seen:
            seen += sock.recv(4096)
        sock.sendall(b"\x18y")
        while chunk := sock.recv(4096):  # the daemon closes the session
            seen += chunk
    assert running(daemon, cid)


def test_invalid_detach_keys_are_refused(daemon: Dockyardd) -> None:
    cid = daemon.docker("run", "-d", "-t", "-i", "busybox", "sh").stdout.strip()
    status, _, body = daemon.request("POST", f"/v1.45/containers/{cid}/attach?stream=1&stdin=1&detachKeys=ctrl-1")
    assert status == 400 and "Invalid detach keys (ctrl-1) provided" in json.loads(body)["message"]
    status, _, body = daemon.request("POST", f"/v1.45/containers/{cid}/exec",
                                     json.dumps({"Cmd": ["true"], "DetachKeys": "ctrl-"}).encode(),
                                     {"Content-Type": "application/json"})
    assert status == 400 and "Invalid detach keys" in json.loads(body)["message"]
