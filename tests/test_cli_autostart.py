"""`dockyard` starts dockyardd on demand when the default socket is absent and the user is root
(and says so), unless DOCKYARD_NO_AUTOSTART=1. Runs only on a machine where no dockyard state exists
at the default paths, and removes everything the started daemon created."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
DEFAULT_PATHS = [Path("/run/dockyard"), Path("/var/lib/dockyard"), Path("/etc/dockyard")]
PIDFILE = Path("/run/dockyard/dockyardd.pid")
LOG = Path("/var/log/dockyardd.log")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(any(p.exists() for p in DEFAULT_PATHS), reason="dockyard state exists at the default paths"),
]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKYARD_HOST", "DOCKER_HOST", "DOCKYARD_NO_AUTOSTART")}
    return {**env, **extra}


@pytest.fixture
def default_paths() -> Iterator[None]:
    """Stop a daemon started on the default paths (by its pidfile) and remove what it created."""
    log_existed = LOG.exists()
    try:
        yield
    finally:
        if PIDFILE.exists():
            pid = int(PIDFILE.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                try:
                    os.waitpid(pid, os.WNOHANG)  # ours if pytest is the subreaper of the CLI's children
                except ChildProcessError:
                    pass
                time.sleep(0.05)
        for path in DEFAULT_PATHS:
            shutil.rmtree(path, ignore_errors=True)
        if not log_existed:
            LOG.unlink(missing_ok=True)


def test_opt_out_reports_the_missing_daemon(default_paths: None) -> None:
    proc = subprocess.run([DOCKYARD, "ps"], env=cli_env(DOCKYARD_NO_AUTOSTART="1"), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1
    assert "Cannot connect to the dockyard daemon at unix:///run/dockyard/dockyard.sock" in proc.stderr
    assert not Path("/run/dockyard/dockyard.sock").exists()


def test_starts_the_daemon_on_demand_and_says_so(default_paths: None) -> None:
    proc = subprocess.run([DOCKYARD, "ps", "-a"], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "starting dockyardd in the background" in proc.stderr
    assert proc.stdout.startswith("CONTAINER ID")
    again = subprocess.run([DOCKYARD, "version", "--format", "{{.Server.Version}}"], env=cli_env(),
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 0 and again.stdout.strip() and again.stderr == ""  # no second start
    assert PIDFILE.exists()
