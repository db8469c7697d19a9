"""A private dockyardd for tests: temporary data root, exec root and socket; started as a
subprocess, ready once /_ping answers, stopped by its PID with SIGTERM and checked to leave no
socket or pidfile behind. Also runs the real docker CLI and raw HTTP against it.

    with Dockyardd() as d:
        d.docker("images")               # CompletedProcess of `docker images`
        d.request("GET", "/v1.45/info")  # (status, headers, body)
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DOCKYARDD = str(Path(sys.executable).parent / "dockyardd")


def other_children(allowed: set[int], timeout: float = 5) -> list[int]:
    """Child processes of this process besides allowed (long-lived test daemons), reaping the
    ones that exit within timeout; the ones still alive after it."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in allowed:
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) != os.getpid():
                continue
            if fields[0] == "Z":
                os.waitpid(int(entry), os.WNOHANG)
            else:
                alive.append(int(entry))
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.01)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class Dockyardd:
    """One daemon on its own roots (under /tmp: unix socket paths must stay short)."""

    def __init__(self, *extra_args: str, tmp: str | None = None) -> None:
        self.tmp = Path(tmp or tempfile.mkdtemp(prefix="dy-", dir="/tmp"))
        self.data_root = self.tmp / "data"
        self.exec_root = self.tmp / "run"
        self.socket = self.tmp / "d.sock"
        self.pidfile = self.tmp / "d.pid"
        self.log = self.tmp / "dockyardd.log"
        self.docker_config = self.tmp / "docker-config"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def argv(self) -> list[str]:
        return [DOCKYARDD, "-H", self.host, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "--pidfile", str(self.pidfile), *self.extra_args]

    def start(self, timeout: float = 20) -> Dockyardd:
        """Start the daemon and wait until it answers /_ping."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockyardd exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                if self.request("GET", "/_ping")[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"dockyardd did not answer: {self.log.read_text()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM by PID, wait, check that the socket and pidfile are gone; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("dockyardd ignored SIGTERM") from None
        assert not self.socket.exists(), "socket left behind"
        assert not self.pidfile.exists(), "pidfile left behind"
        return code

    def cleanup(self) -> None:
        """Stop the daemon if it runs and remove every temporary file, and the bridges and
        iptables chains it kept (it does when it stops with containers running, or dies)."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.stop()
        finally:
            try:
                self.remove_networking()
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def remove_networking(self) -> None:
        """What the stopped daemon's own stop removes when no container runs: its networks'
        bridges and its iptables chains (nothing when none of the bridges is left)."""
        from dockyard.engine.config import ConfigError, load
        from dockyard.engine.daemon import network_options
        from dockyard.engine.networks.service import NetworkService
        from dockyard.engine.networks.store import NetworkStore

        if self.proc is None or not (self.data_root / "networks.db").exists():  # never started here
            return
        store = NetworkStore(str(self.data_root))
        try:
            bridges = [r["_Bridge"] for r in store.networks() if r["Driver"] == "bridge"]
        finally:
            store.close()
        if not any(os.path.exists(f"/sys/class/net/{name}") for name in bridges):
            return
        try:
            config = load(self.argv()[1:])
        except ConfigError:
            return
        NetworkService(config.data_root, network_options(config)).shutdown(containers_running=False)

    def remove_containers(self) -> None:
        """`rm -f` every container, if the daemon runs (a test's teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *ids)

    def __enter__(self) -> Dockyardd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def env(self) -> dict[str, str]:
        """The environment for docker CLI / docker-py against this daemon."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.docker_config)}

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the real docker CLI against this daemon (never raises on a failed command)."""
        proc = subprocess.run(["docker", *args], input=input, capture_output=True, env=self.env(), timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                           proc.stderr.decode(errors="replace"))

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP request on the socket: (status, headers, body)."""
        conn = UnixHTTPConnection(str(self.socket))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def client(self) -> Any:
        """A docker-py client for this daemon."""
        import docker
        return docker.DockerClient(base_url=self.host, timeout=60)


def ula_prefix() -> str:
    """A random IPv6 ULA /48 prefix ("fdxx:xxxx:xxxx::"), made on this machine for one test."""
    return str(ipaddress.IPv6Address((0xFD << 120) | (secrets.randbelow(1 << 40) << 80)))


def busybox_archive(directory: Path) -> Path:
    """busybox, built offline, as a `docker save` archive at directory/busybox.tar."""
    from dockyard.image.archive import docker_archive
    from dockyard.image.bootstrap import bootstrap_busybox
    from dockyard.image.store import ImageStore

    store = ImageStore(str(directory / "store"))
    try:
        bootstrap_busybox(store)
        with open(directory / "busybox.tar", "wb") as out:
            docker_archive.save(store, ["busybox:latest"], out)
    finally:
        store.close()
    return directory / "busybox.tar"


@contextlib.contextmanager
def build_daemon(directory: Path) -> Iterator[Dockyardd]:
    """A private dockyardd with busybox loaded (its archive made in directory), build steps'
    containers under the test session's cgroup parent."""
    from tests.conftest import TEST_CGROUP_PARENT

    os.environ["DOCKYARD_BUILD_CGROUP_PARENT"] = TEST_CGROUP_PARENT
    try:
        with Dockyardd() as d:
            proc = d.docker("load", "-i", str(busybox_archive(directory)))
            assert proc.returncode == 0, proc.stderr
            yield d
    finally:
        os.environ.pop("DOCKYARD_BUILD_CGROUP_PARENT", None)


@pytest.fixture(scope="module", name="daemon")
def busybox_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyardd]:
    """A module's private dockyardd with busybox loaded (import it as `daemon` into a test module)."""
    archive = busybox_archive(tmp_path_factory.mktemp("busybox"))
    with Dockyardd() as d:
        proc = d.docker("load", "-i", str(archive))
        assert proc.returncode == 0, proc.stderr
        yield d


@pytest.fixture(autouse=True, name="no_leftover_children")
def containers_removed(daemon: Dockyardd) -> Iterator[None]:
    """conftest's check, after removing every container of the module's daemon (which stays: its
    shims come back to pytest, a subreaper, and go once their container is removed)."""
    try:
        yield
    finally:
        daemon.remove_containers()
    assert not other_children({daemon.proc.pid}, timeout=15), "a test left child processes running"  # type: ignore[union-attr]


@pytest.fixture(scope="module", name="daemon")
def build_busybox_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyardd]:
    """A module's private build_daemon (busybox loaded; import it as `daemon` into a test module)."""
    with build_daemon(tmp_path_factory.mktemp("busybox")) as d:
        yield d


@pytest.fixture(autouse=True, name="no_leftover_children")
def daemon_children_only(daemon: Dockyardd) -> Iterator[None]:
    """conftest's check, except for the module's daemon (shared by its tests, stopped at the end)."""
    yield
    assert not other_children({daemon.proc.pid}), "a test left child processes running"  # type: ignore[union-attr]
