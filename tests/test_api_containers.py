"""dockyardd's container and exec endpoints, driven by the real docker CLI and docker-py on a
private daemon loaded with an offline busybox image (tests/daemon.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.daemon import Dockyardd, busybox_daemon, containers_removed

daemon = busybox_daemon  # the module's daemon fixture
no_leftover_children = containers_removed
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def ok(d: Dockyardd, *args: str, input: bytes | None = None) -> str:
    proc = d.docker(*args, input=input)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_run_foreground(daemon: Dockyardd) -> None:
    assert ok(daemon, "run", "--rm", "busybox", "echo", "hi") == "hi\n"
    proc = daemon.docker("run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    out = ok(daemon, "run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1000", "busybox", "sh", "-c",
             "echo $A $(pwd) $(id -u)")
    assert out == "1 /tmp 1000\n"
    assert ok(daemon, "ps", "-aq", "--filter", "status=exited") != ""
    assert ok(daemon, "run", "-i", "--rm", "busybox", "cat", input=b"piped\n") == "piped\n"


def test_tty(daemon: Dockyardd) -> None:
    env = daemon.env()
    for cmd in ('docker run --rm -it busybox sh -c "tty; stty size"', 'docker exec -it web sh -c "tty; stty size"'):
        if "exec" in cmd:
            ok(daemon, "run", "-d", "--name", "web", "busybox", "sleep", "100")
        proc = subprocess.run(["script", "-qc", f"stty rows 40 cols 120; {cmd}", "/dev/null"], env=env,
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        out = proc.stdout.decode(errors="replace")
        assert proc.returncode == 0 and "/dev/pts/0" in out and "40 120" in out, out


def test_detached_lifecycle(daemon: Dockyardd) -> None:
    cid = ok(daemon, "run", "-d", "--name", "web", "busybox", "sh", "-c", "echo started; exec sleep 100").strip()
    assert len(cid) == 64
    lines = ok(daemon, "ps").splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    row = next(line for line in lines[1:] if line.startswith(cid[:12]))
    assert row.split()[1] == "busybox" and row.split()[-1] == "web" and "Up " in row
    deadline = time.monotonic() + 10
    while ok(daemon, "logs", "web") != "started\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ok(daemon, "logs", "web") == "started\n"
    assert ok(daemon, "exec", "web", "echo", "hi") == "hi\n"
    assert ok(daemon, "exec", "-i", "web", "cat", input=b"in\n") == "in\n"
    assert daemon.docker("exec", "web", "sh", "-c", "exit 5").returncode == 5
    missing = daemon.docker("exec", "web", "nosuchcmd")  # as Docker: 127 and the runtime's reason
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
    assert ok(daemon, "exec", "-u", "nobody", "-e", "X=y", "web", "sh", "-c", "echo $X $(id -u)") == "y 65534\n"
    doc = json.loads(ok(daemon, "inspect", "web"))[0]
    assert doc["Name"] == "/web" and doc["Config"]["Cmd"] == ["sh", "-c", "echo started; exec sleep 100"]
    assert doc["State"]["Running"] and doc["State"]["ExitCode"] == 0
    ok(daemon, "kill", "-s", "USR1", "web")  # pid 1 without a handler: ignored
    ok(daemon, "rename", "web", "web2")
    ok(daemon, "pause", "web2")
    assert "(Paused)" in ok(daemon, "ps", "--format", "{{.Status}}", "--filter", "name=web2")
    ok(daemon, "unpause", "web2")
    ok(daemon, "stop", "-t", "1", "web2")
    assert "Exited (137)" in ok(daemon, "ps", "-a", "--filter", "name=web2", "--format", "{{.Status}}")
    assert ok(daemon, "inspect", "-f", "{{.State.ExitCode}}", "web2").strip() == "137"
    ok(daemon, "rm", "web2")
    assert daemon.docker("inspect", "--type", "container", "web2").returncode == 1


def test_wait_kill_and_remove(daemon: Dockyardd) -> None:
    cid = ok(daemon, "run", "-d", "busybox", "sh", "-c", "sleep 0.5; exit 7").strip()
    assert ok(daemon, "wait", cid).strip() == "7"
    running = ok(daemon, "run", "-d", "busybox", "sleep", "100").strip()
    proc = daemon.docker("rm", running)
    assert proc.returncode == 1 and "You cannot remove a running container" in proc.stderr
    proc = daemon.docker("rmi", "busybox")
    assert proc.returncode == 1 and "conflict: unable to remove repository reference" in proc.stderr
    assert f"container {running[:12]} is using its referenced image" in proc.stderr
    assert ok(daemon, "info", "--format", "{{.Containers}} {{.ContainersRunning}}").split() == ["2", "1"]
    assert ok(daemon, "system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}").splitlines()[1] == \
        "Containers 2 1"
    ok(daemon, "rm", "-f", running)
    assert daemon.docker("start", "-a", cid).returncode == 7  # attached before the start, its exit code

    restarted = ok(daemon, "run", "-d", "busybox", "sh", "-c", "echo run; sleep 100").strip()
    ok(daemon, "restart", "-t", "0", restarted)
    assert ok(daemon, "inspect", "-f", "{{.State.Running}}", restarted).strip() == "true"
    deadline = time.monotonic() + 10
    while ok(daemon, "logs", restarted) != "run\nrun\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ok(daemon, "logs", restarted) == "run\nrun\n"
    ok(daemon, "rm", "-f", restarted)
    ok(daemon, "container", "prune", "-f")
    assert ok(daemon, "ps", "-aq") == ""


def test_run_rm_of_a_missing_command(daemon: Dockyardd) -> None:
    # The start fails; the --rm container is removed so the CLI's wait returns (it used to hang).
    proc = daemon.docker("run", "--rm", "busybox", "nosuchcmd", timeout=30)
    assert proc.returncode == 127, proc
    assert "executable file not found" in proc.stderr
    assert "Error waiting for container" not in proc.stderr
    assert daemon.docker("ps", "-aq").stdout.strip() == ""


def test_missing_image(daemon: Dockyardd) -> None:
    # a registry on a closed loopback port: the pull fails without leaving this machine
    proc = daemon.docker("run", "--rm", "127.0.0.1:9/nosuch:1", "true")
    assert proc.returncode == 125
    assert "Unable to find image '127.0.0.1:9/nosuch:1' locally" in proc.stderr
    assert 'Get "https://127.0.0.1:9/v2/"' in proc.stderr and "refused" in proc.stderr
    status, _, body = daemon.request("POST", "/v1.45/containers/create", json.dumps({"Image": "busybox:nope"}).encode(),
                                     {"Content-Type": "application/json"})
    assert status == 404 and json.loads(body) == {"message": "No such image: busybox:nope"}
    status, _, body = daemon.request("GET", "/v1.45/containers/nosuch/json")
    assert status == 404 and json.loads(body) == {"message": "No such container: nosuch"}


def test_events(daemon: Dockyardd) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = ok(daemon, "run", "-d", "busybox", "true").strip()
    ok(daemon, "wait", cid)
    running = ok(daemon, "run", "-d", "busybox", "sleep", "100").strip()
    ok(daemon, "stop", "-t", "5", running)
    until = f"{time.time() + 0.5:.3f}"
    out = ok(daemon, "events", "--since", since, "--until", until, "--filter", f"container={cid}", "--format",
             "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}")
    assert out.split("\n")[:3] == ["create ", "start ", "die 0"]
    out = ok(daemon, "events", "--since", since, "--until", until, "--filter", f"container={running}", "--format",
             "{{.Action}} {{index .Actor.Attributes \"signal\"}}{{index .Actor.Attributes \"exitCode\"}}")
    assert out.split("\n")[:5] == ["create ", "start ", "kill 15", "die 137", "stop "]


def test_exec_events(daemon: Dockyardd) -> None:
    since = f"{time.time() - 1:.3f}"
    running = ok(daemon, "run", "-d", "--name", "execev", "busybox", "sleep", "100").strip()
    try:
        assert daemon.docker("exec", running, "sh", "-c", "exit 3").returncode == 3
        until = f"{time.time() + 0.5:.3f}"
        out = ok(daemon, "events", "--since", since, "--until", until, "--filter", f"container={running}",
                 "--format", "{{.Action}}|{{.Actor.Attributes.name}}|{{index .Actor.Attributes \"exitCode\"}}")
        assert [line for line in out.splitlines() if line.startswith("exec_")] == [
            "exec_create: sh -c exit 3|execev|", "exec_start: sh -c exit 3|execev|", "exec_die|execev|3"]
    finally:
        ok(daemon, "rm", "-f", running)


def test_attach_hijack_headers(daemon: Dockyardd) -> None:
    cid = ok(daemon, "create", "busybox", "echo", "attached").strip()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(daemon.socket))
        sock.sendall(f"POST /v1.41/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\n"
                     "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        ok(daemon, "start", cid)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 UPGRADED"
    assert sorted(lines[1:-2]) == ["Connection: Upgrade", "Content-Type: application/vnd.docker.raw-stream",
                                   "Upgrade: tcp"]
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x09attached\n"
    status, headers, body = daemon.request("GET", f"/v1.45/containers/{cid}/logs?stdout=1")
    assert status == 200 and headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
    assert body == data
    with socket.socket(socket.AF_UNIX) as sock:  # logs=1 without stream=1: the log, then the end
        sock.settimeout(30)
        sock.connect(str(daemon.socket))
        sock.sendall(f"POST /v1.45/containers/{cid}/attach?logs=1&stdout=1 HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 0\r\n\r\n".encode())
        replay = b""
        while chunk := sock.recv(4096):
            replay += chunk
    assert replay.startswith(b"HTTP/1.1 200 OK\r\n") and replay.endswith(b"\r\n\r\n" + data)


def test_live_restore(daemon: Dockyardd) -> None:
    ok(daemon, "run", "-d", "--name", "survivor", "busybox", "sleep", "100")
    daemon.stop()
    daemon.start()
    assert ok(daemon, "ps", "--format", "{{.Names}} {{.State}}").split() == ["survivor", "running"]
    ok(daemon, "stop", "-t", "1", "survivor")
    assert "Exited" in ok(daemon, "ps", "-a", "--format", "{{.Status}}")


def test_docker_py(daemon: Dockyardd) -> None:
    client = daemon.client()
    try:
        assert client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True) == b"out\n"
        ct = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done"],
                                   detach=True)
        assert b"".join(ct.logs(stream=True)) == b"1\n2\n3\n"
        assert ct.wait(timeout=30) == {"Error": None, "StatusCode": 0}
        ct.remove()
        ct = client.containers.run("busybox", ["sleep", "100"], detach=True)
        assert tuple(ct.exec_run(["sh", "-c", "echo x; exit 4"])) == (4, b"x\n")
        ct.remove(force=True)
        body = {"Image": "busybox", "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True, "AttachStdin": True}
        created = daemon.request("POST", "/v1.45/containers/create", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
        ct = client.containers.get(json.loads(created[2])["Id"])
        sock = ct.attach_socket(params={"stdin": 1, "stream": 1, "stdout": 1})
        ct.start()
        sock._sock.sendall(b"ping\n")
        sock._sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock._sock.recv(4096):
            data += chunk
        sock.close()
        assert data == b"\x01\x00\x00\x00\x00\x00\x00\x05ping\n"
        assert ct.wait(timeout=30)["StatusCode"] == 0
        ct.remove()
    finally:
        client.close()


def test_exec_inspect(daemon: Dockyardd, tmp_path: Path) -> None:
    ok(daemon, "run", "-d", "--name", "ex", "busybox", "sleep", "100")
    status, _, body = daemon.request("POST", "/v1.45/containers/ex/exec",
                                     json.dumps({"Cmd": ["sh", "-c", "exit 2"], "Detach": True}).encode(),
                                     {"Content-Type": "application/json"})
    assert status == 201
    exec_id = json.loads(body)["Id"]
    status, _, _ = daemon.request("POST", f"/v1.45/exec/{exec_id}/start", b'{"Detach":true}',
                                  {"Content-Type": "application/json"})
    assert status == 200
    deadline = time.monotonic() + 10
    while True:
        doc = json.loads(daemon.request("GET", f"/v1.45/exec/{exec_id}/json")[2])
        if not doc["Running"] and doc["ExitCode"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert doc["ExitCode"] == 2 and doc["ProcessConfig"]["entrypoint"] == "sh" and doc["Pid"] > 0
    status, _, body = daemon.request("POST", f"/v1.45/exec/{exec_id}/start", b'{"Detach":true}',
                                     {"Content-Type": "application/json"})
    assert status == 409 and json.loads(body) == {"message": f"Exec {exec_id} has already run"}
    status, _, body = daemon.request("GET", "/v1.45/exec/nosuch/json")
    assert status == 404 and json.loads(body) == {"message": "No such exec instance: nosuch"}


def test_label_filters_must_all_match(daemon: Dockyardd) -> None:
    """Several label filters are AND-ed (docker-compose v1 numbers its containers by them)."""
    both = ok(daemon, "create", "--label", "app=x", "--label", "role=web", "busybox", "true").strip()
    ok(daemon, "create", "--label", "app=x", "--label", "role=db", "busybox", "true")
    found = ok(daemon, "ps", "-aq", "--no-trunc", "--filter", "label=app=x", "--filter", "label=role=web").split()
    assert found == [both]
    assert len(ok(daemon, "ps", "-aq", "--filter", "label=app=x").split()) == 2


def test_kill_returns_once_the_container_stopped(daemon: Dockyardd) -> None:
    """As dockerd: `docker kill` (SIGKILL) waits for the exit, so an inspect right after sees it."""
    for _ in range(3):
        cid = ok(daemon, "run", "-d", "busybox", "sleep", "300").strip()
        ok(daemon, "kill", cid)
        state = json.loads(ok(daemon, "inspect", cid))[0]["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 137)


def test_stop_without_grace_of_a_container_that_exits_on_its_own_signal(daemon: Dockyardd) -> None:
    """`stop -t 0` sends the stop signal and SIGKILL at once; with --init the container exits on
    the first, so the second finds its shim gone: that is a stopped container, not an error."""
    for _ in range(3):
        cid = ok(daemon, "run", "-d", "--init", "--network", "none", "busybox", "sleep", "300").strip()
        ok(daemon, "stop", "-t", "0", cid)
        state = json.loads(ok(daemon, "inspect", cid))[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] in (137, 143)
        ok(daemon, "rm", cid)


def _rootfs_options(daemon: Dockyardd, cid: str) -> str:
    """The super options of the overlay mounted as the container's root filesystem."""
    rootfs = str(daemon.data_root / "containers" / cid / "rootfs")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == rootfs:
                return fields[-1]
    raise AssertionError(f"{rootfs} is not mounted")


def test_rm_containers_get_volatile_overlays(daemon: Dockyardd) -> None:
    """A --rm container's writable layer is thrown away, so it is mounted volatile (no sync when
    unmounted, as Podman does); others are not, even after a volatile mount for the copy-up of
    a new volume at create (whose mark in the work directory is cleared before the next mount)."""
    gone = ok(daemon, "run", "-d", "--rm", "--network", "none", "busybox", "sleep", "300").strip()
    kept = ok(daemon, "run", "-d", "--network", "none", "-v", "/etc", "busybox", "sleep", "300").strip()
    try:
        volatile = {"volatile", "fsync=volatile"}  # the kernel's names for it, older and newer
        assert volatile & set(_rootfs_options(daemon, gone).split(","))
        assert not volatile & set(_rootfs_options(daemon, kept).split(","))
        ok(daemon, "restart", "-t", "0", kept)  # mounted again: no mark refuses it
        assert ok(daemon, "exec", kept, "ls", "/etc/passwd").strip() == "/etc/passwd"
    finally:
        ok(daemon, "rm", "-f", gone, kept)
