"""docker update against dockyardd: limits applied to the running container's cgroup at once,
kept in HostConfig for the next start; Docker's refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.daemon import Dockyardd, busybox_daemon, containers_removed

daemon = busybox_daemon  # the module's daemon fixture
no_leftover_children = containers_removed
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def cgroup_value(cid: str, v1: tuple[str, str], v2: str) -> str:
    """A cgroup file of the container under /dockyard/<id>, from v1's controller or the v2 tree."""
    unified = Path("/sys/fs/cgroup/dockyard") / cid / v2
    if unified.exists():
        return unified.read_text().strip()
    return (Path("/sys/fs/cgroup") / v1[0] / "dockyard" / cid / v1[1]).read_text().strip()


def test_update_running_container_applies_and_persists(daemon: Dockyardd) -> None:
    cid = daemon.docker("run", "-d", "busybox", "sleep", "300").stdout.strip()
    proc = daemon.docker("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5",
                         "--pids-limit", "50", "--restart", "on-failure:3", cid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == cid
    assert cgroup_value(cid, ("memory", "memory.limit_in_bytes"), "memory.max") == str(64 << 20)
    assert cgroup_value(cid, ("pids", "pids.max"), "pids.max") == "50"
    assert cgroup_value(cid, ("cpu", "cpu.cfs_quota_us"), "cpu.max").split()[0] == "50000"
    hc = json.loads(daemon.docker("inspect", cid).stdout)[0]["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == (64 << 20, 128 << 20, 500_000_000, 50)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert daemon.docker("restart", "-t", "0", cid).returncode == 0  # the next start uses the new limits
    assert cgroup_value(cid, ("memory", "memory.limit_in_bytes"), "memory.max") == str(64 << 20)


def test_update_refusals(daemon: Dockyardd) -> None:
    cid = daemon.docker("run", "-d", "--rm", "busybox", "sleep", "300").stdout.strip()
    proc = daemon.docker("update", "--restart", "always", cid)
    assert proc.returncode == 1
    assert "Restart policy cannot be updated because AutoRemove is enabled for the container" in proc.stderr
    proc = daemon.docker("update", "--memory", "1m", cid)
    assert proc.returncode == 1 and "Minimum memory limit allowed is 6MB" in proc.stderr
    proc = daemon.docker("update", "--memory", "64m", "nosuch")
    assert proc.returncode == 1 and "No such container: nosuch" in proc.stderr
