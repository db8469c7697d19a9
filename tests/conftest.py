"""Shared fixtures: busybox bundles and the OCI runtimes under test (dockyard-runtime, runc, crun)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bundles import Bundle, make_bundle, make_busybox_rootfs

VENV_BIN = Path(sys.executable).parent
DOCKYARD_RUNTIME = str(VENV_BIN / "dockyard-runtime")
# Each pytest session nests its containers under a cgroup of its own, checked at the end.
TEST_CGROUP_PARENT = f"/dockyard-test/s{os.getpid()}"


class Runtime:
    """One OCI runtime command line with a private state root."""

    def __init__(self, name: str, argv0: str, root: Path) -> None:
        self.name = name
        self.argv0 = argv0
        self.root = root

    def cmd(self, *args: str) -> list[str]:
        return [self.argv0, "--root", str(self.root), *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a runtime command. Output goes through files, not pipes: a container created
        by the command inherits them and may hold them open long after the command ends."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            code = subprocess.run(self.cmd(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  timeout=timeout).returncode
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(self.cmd(*args), code, out.read().decode(), err.read().decode())
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def wait_status(self, cid: str, want: str, timeout: float = 10) -> dict:
        """Poll `state` until the container's status is `want` ("absent" once deleted)."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self("state", cid, check=False)
            state = json.loads(proc.stdout) if proc.returncode == 0 else {"status": "absent"}
            if state["status"] == want or time.monotonic() > deadline:
                assert state["status"] == want, state
                return state
            time.sleep(0.02)

    def container_ids(self) -> list[str]:
        out = self("list", "--format", "json", check=False).stdout.strip()
        return [c["id"] for c in json.loads(out or "[]") or []]

    def cleanup(self) -> None:
        for cid in self.container_ids():
            self("delete", "--force", cid, check=False)


def runtime_names() -> list[str]:
    names = ["dockyard"]
    names += [n for n in ("runc", "crun") if shutil.which(n)]
    return names


@pytest.fixture(scope="session")
def busybox_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("template") / "rootfs")


@pytest.fixture
def bundle_factory(tmp_path: Path, busybox_template: Path):
    """Make bundles: bundle_factory(["sh", "-c", "..."]) -> Bundle with a unique cgroupsPath."""
    made: list[Bundle] = []

    def factory(args: list[str], terminal: bool = False) -> Bundle:
        b = make_bundle(tmp_path / f"bundle{len(made)}", busybox_template, args, terminal)
        b.config["linux"]["cgroupsPath"] = f"{TEST_CGROUP_PARENT}/{uuid.uuid4().hex[:12]}"
        made.append(b)
        return b.write()

    return factory


def _make_runtime(name: str, tmp_path: Path) -> Runtime:
    argv0 = DOCKYARD_RUNTIME if name == "dockyard" else shutil.which(name)
    assert argv0, f"{name} not installed"
    return Runtime(name, argv0, tmp_path / f"state-{name}")


@pytest.fixture(params=runtime_names())
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """Each runtime in turn (the matrix); containers are force-deleted afterwards."""
    rt = _make_runtime(request.param, tmp_path)
    try:
        yield rt
    finally:
        rt.cleanup()


@pytest.fixture
def dockyard_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """dockyard-runtime alone, for behaviour the other runtimes do not share."""
    rt = _make_runtime("dockyard", tmp_path)
    try:
        yield rt
    finally:
        rt.cleanup()


def unique_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session", autouse=True)
def no_leftovers() -> Iterator[None]:
    """After the session, no cgroup of this session's containers may remain in any hierarchy."""
    yield
    leftovers = []
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if not os.path.isdir(base):
            continue
        for entry in os.scandir(base):
            p = os.path.join(entry.path, TEST_CGROUP_PARENT.strip("/"))
            if not os.path.isdir(p):
                continue
            leftovers += [os.path.join(p, c) for c in os.listdir(p) if os.path.isdir(os.path.join(p, c))]
            for path in (p, os.path.dirname(p)):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
    assert not leftovers, f"cgroups left behind: {leftovers}"


@pytest.fixture(scope="session", autouse=True)
def reap_orphans() -> Iterator[None]:
    """pytest is a child subreaper: container processes orphaned by the runtimes come back to
    it, and each test must leave none alive."""
    from dockyard.runtime import syscalls

    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    yield


@pytest.fixture(autouse=True)
def no_leftover_children() -> Iterator[None]:
    """Every test must end with no child process left (orphaned containers included)."""
    yield
    deadline = time.monotonic() + 5
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                raise AssertionError("a test left child processes running")
            time.sleep(0.01)


@contextlib.contextmanager
def mount_checked_dir(prefix: str, parent: str | None = None) -> Iterator[Path]:
    """A temporary directory that must hold no mount when the test ends (any is unmounted,
    the directory removed, then the test fails)."""
    from dockyard.image.snapshot.mount import mounts_under, unmount

    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        leftover = mounts_under(str(path))
        for point in reversed(leftover):
            unmount(point)
        shutil.rmtree(path)
        assert not leftover, f"mounts left behind: {leftover}"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback (a thread) serving a directory: (base URL, the directory)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
