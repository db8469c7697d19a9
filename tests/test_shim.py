"""dockyard-shim against real OCI runtimes: logs, attach, tty, exit codes, reaping, detaching."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.shim.client import ShimClient, ShimError, ShimInfo, launch_shim, read_exit, read_frames
from dockyard.shim.forkserver import ForkServer
from dockyard.shim.logs import JsonFileWriter, LineSplitter, encode_entry, rfc3339nano
from tests.conftest import Runtime, _make_runtime, runtime_names, unique_id

# Runtimes left out of the shim tests (e.g. while a runtime's `create` is being written); all pass now.
PENDING_RUNTIMES: set[str] = set()
SHIM_RUNTIMES = [name for name in runtime_names() if name not in PENDING_RUNTIMES]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")


@pytest.fixture(params=SHIM_RUNTIMES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """The runtimes the shim is tested with; containers are force-deleted afterwards."""
    rt = _make_runtime(request.param, tmp_path)
    try:
        yield rt
    finally:
        rt.cleanup()


@dataclass
class Shim:
    """A launched shim and its container."""

    cid: str
    state_dir: Path
    log: Path
    info: ShimInfo
    client: ShimClient

    def log_entries(self, path: Path | None = None) -> list[dict]:
        return [json.loads(line) for line in (path or self.log).read_text().splitlines()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _wait_gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of the processes whose parent is pid."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            if int(fields[1]) == pid:
                out.append((int(entry), fields[0]))
    return out


@pytest.fixture
def forkserver(tmp_path: Path) -> Iterator[ForkServer]:
    """A fork server for the test's shims (its directory path is longer than a socket address can
    hold, so it is also reached through a directory descriptor)."""
    server = ForkServer(str(tmp_path / ("fork-server-" + "d" * 90))).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["setsid", "forkserver"])
def launcher(request: pytest.FixtureRequest) -> ForkServer | None:
    """How shims start: a new interpreter through setsid, or a fork of the daemon's fork server."""
    return request.getfixturevalue("forkserver") if request.param == "forkserver" else None


@pytest.fixture
def shims(runtime: Runtime, tmp_path: Path, bundle_factory,
          launcher: ForkServer | None) -> Iterator[Callable[..., Shim]]:
    """shims(args, tty=..., stdin=..., configure=fn(config), **launch options) -> Shim, each
    test once per launcher."""
    started: list[Shim] = []

    def launch(args: list[str], *, tty: bool = False, configure: Callable[[dict], None] | None = None,
               state_parent: Path = tmp_path, **kw) -> Shim:
        bundle = bundle_factory(args, terminal=tty)
        if configure:
            configure(bundle.config)
            bundle.write()
        cid = unique_id("shim")
        state = state_parent / f"s{len(started)}"
        log = state / "ctr.log"
        info = launch_shim(cid, str(bundle.path), str(state), runtime.argv0, str(log),
                           runtime_root=str(runtime.root), tty=tty, forkserver=launcher, **kw)
        shim = Shim(cid, state, log, info, ShimClient(str(state), timeout=20))
        started.append(shim)
        return shim

    try:
        yield launch
    finally:
        for shim in started:
            runtime("delete", "--force", shim.cid, check=False)
        for shim in started:
            pid = shim.info.shim_pid
            if not _wait_gone(pid, 5) and _comm(pid) == "dockyard-shim":
                os.kill(pid, signal.SIGKILL)


def _read_until(sock: socket.socket, want: bytes, framed: bool, timeout: float = 10) -> bytes:
    """Collect payload bytes (frames decoded when framed) until want shows up."""
    sock.settimeout(timeout)
    raw = bytearray()
    payload = bytearray()
    while want not in payload:
        chunk = sock.recv(65536)
        assert chunk, f"EOF before {want!r}; got {bytes(payload)!r}"
        raw += chunk
        if framed:
            while len(raw) >= 8 and len(raw) >= 8 + int.from_bytes(raw[4:8], "big"):
                size = int.from_bytes(raw[4:8], "big")
                payload += raw[8:8 + size]
                del raw[:8 + size]
        else:
            payload += raw
            raw.clear()
    return bytes(payload)


# -- unit tests of the log format ---------------------------------------------------------------------


def test_rfc3339nano_trims_like_go() -> None:
    base = 1714557600 * 1_000_000_000  # 2024-05-01T10:00:00Z
    assert rfc3339nano(base + 123456789) == "2024-05-01T10:00:00.123456789Z"
    assert rfc3339nano(base + 120000000) == "2024-05-01T10:00:00.12Z"
    assert rfc3339nano(base) == "2024-05-01T10:00:00Z"
    assert TIME_RE.match(rfc3339nano())


def test_entry_encoding_matches_docker() -> None:
    line = encode_entry(b"a<b>&\xff\n", "stderr", "2024-05-01T10:00:00Z")
    assert line == b'{"log":"a\\u003cb\\u003e\\u0026\xef\xbf\xbd\\n","stream":"stderr","time":"2024-05-01T10:00:00Z"}\n'


def test_splitter_lines_and_partials() -> None:
    s = LineSplitter()
    assert s.feed(b"one\ntw") == [b"one\n"]
    assert s.feed(b"o\n\nthr") == [b"two\n", b"\n"]
    assert s.flush() == [b"thr"]
    long = b"x" * 40000
    assert s.feed(long) == [long[:16384], long[16384:32768]]
    assert s.feed(b"y\n") == [long[32768:] + b"y\n"]
    assert s.flush() == []


def test_writer_max_file_one_truncates(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JsonFileWriter(str(path), max_size=200, max_file=1)
    for i in range(20):
        w.write("stdout", f"line {i}\n".encode(), "2024-05-01T10:00:00Z")
    w.close()
    entries = [json.loads(x) for x in path.read_text().splitlines()]
    assert entries and entries[-1]["log"] == "line 19\n"
    assert path.stat().st_size < 200 + 100
    assert not (tmp_path / "log.1").exists()


# -- the shim with real runtimes ----------------------------------------------------------------------


def test_logs_streams_times_and_state(shims) -> None:
    shim = shims(["sh", "-c", "echo out1; echo err1 >&2; echo out2; printf partial"])
    state = shim.client.state()
    assert state["status"] == "created" and state["pid"] == shim.info.pid
    assert oct(os.stat(shim.info.socket).st_mode & 0o777) == "0o600"
    assert shim.client.start()["started_at"]
    assert shim.client.wait(timeout=20)["exit_code"] == 0
    entries = shim.log_entries()
    by_stream = {s: [e["log"] for e in entries if e["stream"] == s] for s in ("stdout", "stderr")}
    assert by_stream == {"stdout": ["out1\n", "out2\n", "partial"], "stderr": ["err1\n"]}
    for entry in entries:
        assert list(entry) == ["log", "stream", "time"]
        assert TIME_RE.match(entry["time"]), entry["time"]
    record = read_exit(str(shim.state_dir))
    assert record is not None and record["exit_code"] == 0 and TIME_RE.match(record["exited_at"])
    assert _wait_gone(shim.info.shim_pid, 10)
    assert not os.path.exists(shim.info.socket)


def test_log_rotation(shims) -> None:
    script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done"
    shim = shims(["sh", "-c", script], log_max_size=2000, log_max_file=3)
    shim.client.start()
    assert shim.client.wait(timeout=20)["exit_code"] == 0
    files = [Path(f"{shim.log}.2"), Path(f"{shim.log}.1"), shim.log]
    assert all(f.exists() for f in files) and not Path(f"{shim.log}.3").exists()
    lines = [e["log"] for f in files for e in shim.log_entries(f)]
    last = int(lines[0].strip().split("-")[1])
    assert lines == [f"line-{i}\n" for i in range(last, 300)]
    assert all(f.stat().st_size < 2000 + 100 for f in files)


def test_attach_stdin_echo(shims) -> None:
    shim = shims(["cat"], stdin=True)
    sock = shim.client.attach(stdin=True, stdin_once=True)
    with sock:
        shim.client.start()
        sock.sendall(b"hello\n")
        assert _read_until(sock, b"hello\n", framed=True) == b"hello\n"
        sock.shutdown(socket.SHUT_WR)  # stdin_once: cat sees EOF and exits
        assert shim.client.wait(timeout=20)["exit_code"] == 0
        assert read_frames(sock) == []
    assert [e["log"] for e in shim.log_entries()] == ["hello\n"]


def test_attach_frames_streams(shims) -> None:
    shim = shims(["sh", "-c", "read x; echo out; echo err >&2"], stdin=True)
    sock = shim.client.attach(stdin=True)
    with sock:
        shim.client.start()
        shim.client.close_stdin()
        assert shim.client.wait(timeout=20)["exit_code"] == 0
        frames = read_frames(sock)
    assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")]


def test_slow_attach_client_does_not_block(shims) -> None:
    size = 3_000_000
    shim = shims(["sh", "-c", f"yes abcdefg | head -c {size}"])
    slow = shim.client.attach()  # never read
    fast = shim.client.attach()
    with slow, fast:
        shim.client.start()
        fast.settimeout(30)
        received = sum(len(payload) for _, payload in read_frames(fast))
        assert shim.client.wait(timeout=20)["exit_code"] == 0
    assert received == size
    assert sum(len(e["log"]) for e in shim.log_entries()) == size


def test_tty_resize_and_stdin(shims) -> None:
    shim = shims(["sh", "-c", "stty size; read x; echo got:$x"], tty=True, stdin=True)
    assert shim.client.state()["tty"] is True
    shim.client.resize(100, 40)
    sock = shim.client.attach(stdin=True)
    with sock:
        shim.client.start()
        assert b"40 100" in _read_until(sock, b"40 100", framed=False)
        sock.sendall(b"abc\n")
        assert b"got:abc" in _read_until(sock, b"got:abc", framed=False)
    assert shim.client.wait(timeout=20)["exit_code"] == 0
    logs = [e for e in shim.log_entries()]
    assert {e["stream"] for e in logs} == {"stdout"}
    assert "40 100\r\n" in [e["log"] for e in logs]


def test_tty_close_stdin_sends_eof(shims) -> None:
    shim = shims(["cat"], tty=True, stdin=True)
    sock = shim.client.attach(stdin=True)
    with sock:
        shim.client.start()
        sock.sendall(b"hi\n")
        _read_until(sock, b"hi\r\nhi\r\n", framed=False)  # the tty's echo, then cat's output
        shim.client.close_stdin()
        assert shim.client.wait(timeout=20)["exit_code"] == 0


@pytest.mark.parametrize("tty", [False, True])
def test_state_dir_longer_than_a_socket_address(shims, tmp_path: Path, tty: bool) -> None:
    """Control and console sockets work when their paths exceed sun_path's 107 bytes."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    shim = shims(["sh", "-c", "echo deep"], tty=tty, stdin=tty, state_parent=deep)
    assert len(str(shim.state_dir / "shim.sock")) > 107
    sock = shim.client.attach()
    with sock:
        shim.client.start()
        assert b"deep" in _read_until(sock, b"deep", framed=not tty)
    assert shim.client.wait(timeout=20)["exit_code"] == 0


def test_resize_without_tty_fails(shims) -> None:
    shim = shims(["true"])
    with pytest.raises(ShimError, match="terminal"):
        shim.client.resize(80, 24)


def test_wait_exit_code(shims) -> None:
    shim = shims(["sh", "-c", "exit 3"])
    shim.client.start()
    assert shim.client.wait(timeout=20)["exit_code"] == 3
    # a late waiter gets the recorded exit, from the shim or from exit.json
    assert shim.client.wait(timeout=20)["exit_code"] == 3


def test_wait_sigkill_is_137(shims) -> None:
    shim = shims(["sleep", "100"])
    shim.client.start()
    assert shim.client.state()["status"] == "running"
    shim.client.signal("KILL")
    record = shim.client.wait(timeout=20)
    assert record["exit_code"] == 137 and record["signal"] == 9


def test_delete_on_exit(shims, runtime: Runtime) -> None:
    shim = shims(["true"], delete_on_exit=True)
    assert shim.cid in runtime.container_ids()
    shim.client.start()
    record = shim.client.wait(timeout=20)
    assert record["exit_code"] == 0 and record["deleted"] is True and "oom_killed" not in record
    assert shim.cid not in runtime.container_ids()  # deleted before the exit was recorded
    assert read_exit(str(shim.state_dir))["deleted"] is True
    assert _wait_gone(shim.info.shim_pid, 10)


def test_start_at_launch(shims) -> None:
    shim = shims(["sh", "-c", "echo ran; exec sleep 30"], start=True)
    assert shim.info.started_at
    state = shim.client.state()
    assert state["status"] == "running" and state["started_at"] == shim.info.started_at
    with pytest.raises(ShimError, match="not in created state"):
        shim.client.start()
    deadline = time.monotonic() + 10
    while not shim.log.read_text() and time.monotonic() < deadline:  # its output is logged as usual
        time.sleep(0.01)
    assert [e["log"] for e in shim.log_entries()] == ["ran\n"]
    shim.client.signal("KILL")
    record = shim.client.wait(timeout=20)
    assert record["exit_code"] == 137 and "deleted" not in record


def test_survives_launcher_kill(runtime: Runtime, tmp_path: Path, bundle_factory) -> None:
    bundle = bundle_factory(["sh", "-c", "sleep 1; exit 7"])
    cid, state = unique_id("shim"), tmp_path / "orphan"
    code = (
        "import json, sys, time\n"
        "from dockyard.shim.client import launch_shim\n"
        f"info = launch_shim({cid!r}, {str(bundle.path)!r}, {str(state)!r}, {runtime.argv0!r},"
        f" {str(state / 'ctr.log')!r}, runtime_root={str(runtime.root)!r})\n"
        "print(info.shim_pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        shim_pid = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    try:
        assert _alive(shim_pid)
        client = ShimClient(str(state))
        client.start()
        assert client.wait(timeout=20)["exit_code"] == 7
        assert read_exit(str(state))["exit_code"] == 7
    finally:
        runtime("delete", "--force", cid, check=False)
        if not _wait_gone(shim_pid, 5) and str(state) in _cmdline(shim_pid):
            os.kill(shim_pid, signal.SIGKILL)


def test_reaps_orphans_no_zombies(shims) -> None:
    def no_pid_namespace(config: dict) -> None:
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]

    # without a pid namespace, the backgrounded sleeps are orphaned onto the shim (the subreaper)
    shim = shims(["sh", "-c", "(sleep 0.2 &); (sleep 0.2 &); sleep 1.5"], configure=no_pid_namespace)
    shim.client.start()
    time.sleep(0.8)
    children = _children(shim.info.shim_pid)
    assert children == [(shim.info.pid, "S")], children
    assert shim.client.wait(timeout=20)["exit_code"] == 0


def test_no_fd_leak_into_container(shims) -> None:
    shim = shims(["sh", "-c", "ls /proc/$$/fd; exit 0"])  # the shell's own fds (no exec of ls)
    shim.client.start()
    assert shim.client.wait(timeout=20)["exit_code"] == 0
    assert [e["log"] for e in shim.log_entries()] == ["0\n", "1\n", "2\n"]


def test_failing_create_reports_and_leaves_nothing(runtime: Runtime, tmp_path: Path, bundle_factory) -> None:
    bundle = bundle_factory(["/nonexistent"])
    state = tmp_path / "failed"
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard.shim.main", "--id", unique_id("shim"), "--bundle", str(bundle.path),
         "--state-dir", str(state), "--runtime", runtime.argv0, "--runtime-root", str(runtime.root),
         "--log-path", str(state / "ctr.log")],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "/nonexistent" in proc.stderr and proc.stdout == ""
    time.sleep(0.2)
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and str(state) in _cmdline(int(pid))]
    assert not (state / "shim.sock").exists() and not (state / "ctr.log").exists()
    assert runtime.container_ids() == []


def test_shim_rss(shims) -> None:
    shim = shims(["sleep", "100"])
    shim.client.start()
    shim.client.state()
    with open(f"/proc/{shim.info.shim_pid}/status") as f:
        rss_kb = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
    print(f"dockyard-shim VmRSS: {rss_kb} kB")
    assert rss_kb < 13 * 1024
    shim.client.signal("KILL")
    assert shim.client.wait(timeout=20)["exit_code"] == 137


def test_default_runtime_is_dockyard_runtime(tmp_path) -> None:
    from dockyard.shim.main import parse_args

    opts = parse_args(["--id", "x", "--bundle", str(tmp_path), "--state-dir", str(tmp_path / "s"),
                       "--log-path", str(tmp_path / "log")])
    assert os.path.basename(opts.runtime) == "dockyard-runtime"
    assert os.access(opts.runtime, os.X_OK)


def test_attach_and_start(shims) -> None:
    shim = shims(["sh", "-c", "echo out; echo err >&2; exit 3"])
    sock, started_at = shim.client.attach_and_start()
    with sock:
        assert started_at
        frames = read_frames(sock)  # nothing was lost: attached before the process ran
    assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")]
    assert shim.client.wait(timeout=20)["exit_code"] == 3


def test_attach_and_start_refused_when_started(shims) -> None:
    shim = shims(["sleep", "30"], start=True)
    with pytest.raises(ShimError, match="not in created state"):
        shim.client.attach_and_start()
    assert shim.client.state()["status"] == "running"
    shim.client.signal("KILL")
    assert shim.client.wait(timeout=20)["exit_code"] == 137
