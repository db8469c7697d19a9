"""daemon.json settings that shape containers: runtimes and default-runtime (`--runtime`), log-opts,
default-ulimits and live-restore, with the real docker CLI; and the settings dockyardd refuses."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import DOCKYARDD, Dockyardd, busybox_archive

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
RUNC = shutil.which("runc")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_archive(tmp_path_factory.mktemp("busybox"))


def configured(archive: Path, settings: dict) -> Dockyardd:
    d = Dockyardd()
    config = d.tmp / "daemon.json"
    config.write_text(json.dumps(settings))
    d.extra_args = ["--config-file", str(config)]
    d.start()
    assert d.docker("load", "-i", str(archive)).returncode == 0
    return d


@pytest.fixture
def daemon(archive: Path) -> Iterator[Dockyardd]:
    settings: dict = {"log-opts": {"max-size": "1k", "max-file": "2"},
                      "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1000, "Hard": 2000}}}
    if RUNC:
        settings["runtimes"] = {"traced-runc": {"path": RUNC, "runtimeArgs": ["--log-format=json"]}}
    d = configured(archive, settings)
    try:
        yield d
    finally:
        d.remove_containers()
        d.cleanup()


def ok(d: Dockyardd, *args: str) -> str:
    proc = d.docker(*args)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_runtimes_by_name(daemon: Dockyardd) -> None:
    info = json.loads(daemon.request("GET", "/info")[2])
    assert info["DefaultRuntime"] == "dockyard-runtime"
    assert info["Runtimes"]["traced-runc"] == {"path": RUNC, "runtimeArgs": ["--log-format=json"]}
    assert "runc" in info["Runtimes"]
    cid = ok(daemon, "run", "-d", "--runtime", "traced-runc", "busybox", "sleep", "300").strip()
    assert (daemon.exec_root / "runtime-traced-runc" / cid).is_dir()  # runc's own state, in its own root
    assert not (daemon.exec_root / "runtime" / cid).exists()
    assert json.loads(ok(daemon, "inspect", cid))[0]["HostConfig"]["Runtime"] == "traced-runc"
    assert ok(daemon, "exec", cid, "echo", "through runc").strip() == "through runc"
    assert "sleep 300" in ok(daemon, "top", cid)
    ok(daemon, "pause", cid)
    ok(daemon, "unpause", cid)
    ok(daemon, "rm", "-f", cid)
    assert not (daemon.exec_root / "runtime-traced-runc" / cid).exists()
    default = ok(daemon, "run", "-d", "busybox", "sleep", "300").strip()
    assert json.loads(ok(daemon, "inspect", default))[0]["HostConfig"]["Runtime"] == "dockyard-runtime"
    proc = daemon.docker("run", "--rm", "--runtime", "nosuch", "busybox", "true")
    assert proc.returncode == 125 and "unknown or invalid runtime name: nosuch" in proc.stderr


def test_log_opts_and_default_ulimits(daemon: Dockyardd) -> None:
    cid = ok(daemon, "run", "-d", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn; sleep 300").strip()
    hc = json.loads(ok(daemon, "inspect", cid))[0]["HostConfig"]
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}
    own = ok(daemon, "run", "--rm", "--ulimit", "nofile=512:512", "--log-opt", "max-size=5m", "busybox",
             "sh", "-c", "ulimit -n")
    assert own.strip() == "512"
    lines = []
    for _ in range(100):
        lines = ok(daemon, "logs", cid).split()
        if len(lines) == 2:
            break
    assert lines == ["1000", "2000"]


def test_live_restore_off_stops_containers_with_the_daemon(archive: Path) -> None:
    d = configured(archive, {"live-restore": False})
    try:
        cid = ok(d, "run", "-d", "--restart", "unless-stopped", "busybox", "sleep", "300").strip()
        plain = ok(d, "run", "-d", "busybox", "sleep", "300").strip()
        pid = json.loads(ok(d, "inspect", plain))[0]["State"]["Pid"]
        d.stop()
        assert not os.path.exists(f"/proc/{pid}"), "the container outlived the daemon"
        d.start()
        states = {c: json.loads(ok(d, "inspect", c))[0]["State"] for c in (cid, plain)}
        assert states[plain]["Status"] == "exited"
        assert states[cid]["Running"], "unless-stopped comes back: the daemon, not the user, stopped it"
    finally:
        d.remove_containers()
        d.cleanup()


@pytest.mark.parametrize("settings, message", [
    ({"runtimes": {"broken": {"runtimeArgs": []}}}, "runtime 'broken' in the daemon configuration needs a \"path\""),
    ({"default-runtime": "nosuch"}, "specified default runtime 'nosuch' does not exist"),
    ({"log-driver": "syslog"}, "logging driver 'syslog' is not supported"),
    ({"default-ulimits": {"nofile": {"Soft": "x"}}}, "default-ulimits: nofile needs integer Soft and Hard values"),
    ({"ipv6": True, "fixed-cidr-v6": "fd00::1/64"}, "invalid fixed-cidr-v6 'fd00::1/64': an IPv6 subnet is expected"),
])
def test_refused_settings(tmp_path: Path, settings: dict, message: str) -> None:
    """Refused before anything is set up: no socket, pidfile, bridge or firewall chain is left."""
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps(settings))
    proc = subprocess.run([DOCKYARDD, "-H", f"unix://{tmp_path}/d.sock", "--data-root", str(tmp_path / "data"),
                           "--exec-root", str(tmp_path / "run"), "--pidfile", str(tmp_path / "d.pid"),
                           "--config-file", str(config)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "d.sock").exists() and not (tmp_path / "d.pid").exists()
    # the default bridge this data root would get (other users' links come and go on a shared host)
    bridge = "dy" + hashlib.sha256(str(tmp_path / "data").encode()).hexdigest()[:8]
    assert not os.path.exists(f"/sys/class/net/{bridge}")
