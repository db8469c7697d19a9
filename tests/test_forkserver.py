"""The daemon's fork server: runtime commands and shims forked from one pre-imported interpreter."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.shim.client import ShimClient, launch_shim
from dockyard.shim.forkserver import ForkServer, ForkServerError, ForkServerUnavailable
from tests.conftest import DOCKYARD_RUNTIME, unique_id


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ForkServer]:
    fs = ForkServer(str(tmp_path / "fs")).start()
    try:
        yield fs
    finally:
        fs.close()


def _pipe_output(read_fd: int) -> bytes:
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    return data


def _spawn(server: ForkServer, argv: list[str], in_process: bool) -> tuple[int, bytes, bytes]:
    """Run argv through the server: (exit code, stdout, stderr)."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        spawned = server.spawn(argv, null, out_w, err_w, in_process)
    finally:
        for fd in (null, out_w, err_w):
            os.close(fd)
    out, err = _pipe_output(out_r), _pipe_output(err_r)
    return spawned.wait(), out, err


def _socket_inodes(pid: int) -> set[str]:
    links = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.add(os.readlink(f"/proc/{pid}/fd/{name}"))
        except FileNotFoundError:
            pass
    return {link for link in links if link.startswith("socket:")}


def test_spawned_commands_report_exit_codes_and_signals(server: ForkServer) -> None:
    assert _spawn(server, ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], False) == (3, b"out\n", b"err\n")
    assert _spawn(server, ["/bin/sh", "-c", "kill -9 $$"], False)[0] == 137


def test_in_process_runs_dockyard_runtime_in_a_fork(server: ForkServer, tmp_path: Path) -> None:
    code, out, _ = _spawn(server, [DOCKYARD_RUNTIME, "--version"], True)
    assert code == 0 and out.startswith(b"dockyard-runtime version")
    code, _, err = _spawn(server, [DOCKYARD_RUNTIME, "--root", str(tmp_path / "root"), "state", "nosuch"], True)
    assert code == 1 and b"nosuch" in err


def test_forked_children_hold_none_of_the_servers_descriptors(server: ForkServer) -> None:
    r, w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        spawned = server.spawn(["/bin/sh", "-c", "read x"], r, null, null, False)
    finally:
        os.close(r)
        os.close(null)
    try:
        server_pid = server._proc.pid  # type: ignore[union-attr]
        assert int(open(f"/proc/{spawned.pid}/stat").read().rsplit(")", 1)[1].split()[1]) == server_pid
        assert not _socket_inodes(spawned.pid) & _socket_inodes(server_pid)
        assert sorted(os.listdir(f"/proc/{spawned.pid}/fd")) == ["0", "1", "2"]
    finally:
        os.close(w)  # EOF: read returns non-zero
    assert spawned.wait() == 1


def test_kill_reaches_the_spawned_command(server: ForkServer) -> None:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        spawned = server.spawn(["/bin/sleep", "60"], null, null, null, False)
    finally:
        os.close(null)
    spawned.kill(signal.SIGTERM)
    assert spawned.wait() == 128 + signal.SIGTERM


def test_bad_requests_get_errors_and_the_server_goes_on(server: ForkServer) -> None:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        with pytest.raises(ForkServerError, match="missing file descriptors"):
            server._request({"op": "spawn", "argv": ["/bin/true"]}, [null], 5)
        with pytest.raises(ForkServerError, match="unknown op"):
            server._request({"op": "nope"}, [null, null, null], 5)
        with pytest.raises(ForkServerError, match="cannot run /nonexistent"):
            server.spawn(["/nonexistent"], null, null, null, False)
    finally:
        os.close(null)
    assert _spawn(server, ["/bin/true"], False)[0] == 0


def test_close_stops_the_server_and_removes_its_socket(tmp_path: Path) -> None:
    fs = ForkServer(str(tmp_path / "fs")).start()
    assert fs.running and os.path.exists(fs.path)
    fs.close()
    assert not fs.running and not os.path.exists(fs.path)
    with pytest.raises(ForkServerUnavailable):
        fs.spawn(["/bin/true"], 0, 1, 2, False)


def test_shim_outlives_the_server_and_is_nobodys_child(tmp_path: Path, bundle_factory) -> None:
    fs = ForkServer(str(tmp_path / "fs")).start()
    bundle = bundle_factory(["sh", "-c", "read x; exit 5"])
    cid, state, root = unique_id("fs"), tmp_path / "state", tmp_path / "root"
    server_pid = fs._proc.pid  # type: ignore[union-attr]
    server_sid = os.getsid(server_pid)
    info = launch_shim(cid, str(bundle.path), str(state), DOCKYARD_RUNTIME, str(state / "ctr.log"),
                       runtime_root=str(root), stdin=True, forkserver=fs)
    try:
        fs.close()
        stat = open(f"/proc/{info.shim_pid}/stat").read().rsplit(")", 1)[1].split()
        assert int(stat[1]) != server_pid and int(stat[3]) not in (os.getsid(0), server_sid)
        assert open(f"/proc/{info.shim_pid}/comm").read().strip() == "dockyard-shim"
        client = ShimClient(str(state), timeout=20)
        client.start()
        client.close_stdin()
        assert client.wait(timeout=20)["exit_code"] == 5
    finally:
        fs.close()
        subprocess.run([DOCKYARD_RUNTIME, "--root", str(root), "delete", "--force", cid], capture_output=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists(f"/proc/{info.shim_pid}"):
            time.sleep(0.02)


def test_launch_falls_back_to_a_new_interpreter_when_the_server_is_gone(tmp_path: Path, bundle_factory) -> None:
    fs = ForkServer(str(tmp_path / "fs"))  # never started
    bundle = bundle_factory(["true"])
    cid, state, root = unique_id("fs"), tmp_path / "state", tmp_path / "root"
    info = launch_shim(cid, str(bundle.path), str(state), DOCKYARD_RUNTIME, str(state / "ctr.log"),
                       runtime_root=str(root), forkserver=fs, delete_on_exit=True)
    client = ShimClient(str(state), timeout=20)
    client.start()
    assert client.wait(timeout=20)["exit_code"] == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{info.shim_pid}"):
        time.sleep(0.02)


def test_run_captures_output_and_times_out(server: ForkServer) -> None:
    done = server.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 4"], False)
    assert (done.returncode, done.stdout, done.stderr) == (4, "out\n", "err\n")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        server.run(["/bin/sleep", "30"], False, timeout=0.5)
    assert time.monotonic() - started < 10


def test_a_killed_server_is_restarted_on_the_next_request(server: ForkServer) -> None:
    first = server._proc.pid  # type: ignore[union-attr]
    os.kill(first, signal.SIGKILL)
    server._proc.wait()  # type: ignore[union-attr]
    assert _spawn(server, ["/bin/sh", "-c", "exit 2"], False)[0] == 2
    assert server.running and server._proc.pid != first  # type: ignore[union-attr]


def test_spawn_async_on_the_event_loop(server: ForkServer) -> None:
    async def run() -> tuple[int, bytes, int]:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            spawned = await server.spawn_async(["/bin/sh", "-c", "echo $$; exit 6"], null, out_w, out_w, False)
        finally:
            os.close(null)
            os.close(out_w)
        code = await spawned.wait_async()
        return code, _pipe_output(out_r), spawned.pid

    code, out, pid = asyncio.run(run())
    assert code == 6 and out.strip() == str(pid).encode()
    with pytest.raises(ForkServerError, match="No such file"):
        asyncio.run(server.spawn_async(["/no/such/program"], 0, 1, 2, False))


def _children(pid: int) -> set[int]:
    """pid's live children (zombies left out)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if entry.isdigit() and int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def _spares(server: ForkServer, timeout: float = 10) -> set[int]:
    """The server's waiting spare (its only child while nothing runs), once there is one."""
    deadline = time.monotonic() + timeout
    while not (found := _children(server._proc.pid)) and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    return found


def test_a_spare_becomes_the_shim_and_is_replaced(server: ForkServer, tmp_path: Path, bundle_factory) -> None:
    first = _spares(server)
    assert len(first) == 1
    spare = first.pop()
    assert os.getsid(spare) == spare  # already in a session of its own
    bundle = bundle_factory(["true"])
    cid, state, root = unique_id("fs"), tmp_path / "state", tmp_path / "root"
    info = launch_shim(cid, str(bundle.path), str(state), DOCKYARD_RUNTIME, str(state / "ctr.log"),
                       runtime_root=str(root), forkserver=server, delete_on_exit=True, start=True)
    assert os.getsid(info.shim_pid) == spare  # forked by the spare, which then left
    assert ShimClient(str(state), timeout=20).wait(timeout=20)["exit_code"] == 0
    second = _spares(server)
    assert len(second) == 1 and spare not in second
    deadline = time.monotonic() + 5
    while info.shim_pid in _children(os.getpid()) and time.monotonic() < deadline:  # a subreaper's child
        time.sleep(0.02)
