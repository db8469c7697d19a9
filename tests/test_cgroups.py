"""dockyard.runtime.cgroups against the real kernel: v1 controllers, and cgroup2 at /sys/fs/cgroup/unified."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from dockyard.runtime.cgroups import CgroupError, cgroup_mode, open_cgroup
from dockyard.runtime.cgroups.convert import (
    blkio_weight_to_io_weight,
    cpu_max,
    cpu_shares_to_weight,
    limit_str,
    memory_swap_to_v2,
)
from dockyard.runtime.cgroups.devices import DeviceException, DeviceState, state_from_list, state_from_rules
from dockyard.runtime.cgroups.devices_bpf import assemble, attached
from dockyard.runtime.cgroups.paths import (
    clean_path,
    hierarchies,
    inner_path,
    locate_under,
    own_cgroups,
    parse_mountinfo,
)
from dockyard.runtime.cgroups.v1 import CgroupV1
from dockyard.runtime.cgroups.v2 import CgroupV2
from tests.conftest import TEST_CGROUP_PARENT

UNIFIED_ROOT = "/sys/fs/cgroup/unified"
MB = 1024 * 1024

requires_v1 = pytest.mark.skipif(cgroup_mode() == "v2", reason="needs cgroup v1 controllers")
requires_unified = pytest.mark.skipif(not os.path.exists(f"{UNIFIED_ROOT}/cgroup.procs"),
                                      reason="needs a cgroup2 mount at /sys/fs/cgroup/unified")
DOCKER_DEVICES = [  # deny everything, then allow what Docker allows by default (shortened)
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


class Gated:
    """A child process that waits for a line on stdin before running its shell script."""

    def __init__(self, script: str) -> None:
        self.proc = subprocess.Popen(["sh", "-c", f"read _go; {script}"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.pid = self.proc.pid

    def run(self, timeout: float = 20) -> tuple[int, str]:
        out, _ = self.proc.communicate("go\n", timeout=timeout)
        return self.proc.returncode, out


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start processes (spawn(argv) or spawn(script, gated=True)); all are SIGKILLed and reaped afterwards."""
    started: list[subprocess.Popen] = []

    def start(cmd: list[str] | str, gated: bool = False):
        if gated:
            g = Gated(cmd)
            started.append(g.proc)
            return g
        p = subprocess.Popen(cmd)
        started.append(p)
        return p

    try:
        yield start
    finally:
        for p in started:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _test_path() -> str:
    return f"{TEST_CGROUP_PARENT}/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def v1cg() -> Iterator[CgroupV1]:
    """A fresh cgroup under /dockyard-test in every hierarchy; its processes are killed and it is removed."""
    cg = open_cgroup(_test_path(), "unused")
    assert isinstance(cg, CgroupV1)
    try:
        cg.create()
        yield cg
    finally:
        _teardown(cg)


@pytest.fixture
def v2cg() -> Iterator[CgroupV2]:
    """A fresh cgroup under /sys/fs/cgroup/unified/dockyard-test."""
    cg = CgroupV2(UNIFIED_ROOT + _test_path(), root=UNIFIED_ROOT)
    try:
        cg.create()
        yield cg
    finally:
        _teardown(cg)


def _teardown(cg: CgroupV1 | CgroupV2) -> None:
    try:
        if cg.exists():
            if cg.frozen():
                cg.thaw()
            cg.kill_all(signal.SIGKILL)
    finally:
        cg.destroy()


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _wait_exit(proc: subprocess.Popen) -> int:
    return proc.wait(timeout=10)


# ---------------------------------------------------------------- paths and mode


def test_mode_matches_host() -> None:
    expected = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else None
    mode = cgroup_mode()
    assert mode in ("v1", "hybrid", "v2")
    if expected:
        assert mode == expected
    else:
        assert (mode == "hybrid") == any(h.key == "" for h in hierarchies())


def test_clean_path_like_runc() -> None:
    assert clean_path("/a/b/../c/") == "/a/c"
    assert clean_path("../../x") == "x"  # relative paths cannot climb out of their base
    assert clean_path("a/../../../b/c") == "b/c"
    assert clean_path("/../x") == "/x"
    assert clean_path("") == clean_path(None) == ""
    assert inner_path("", "ctr1") == "ctr1"
    assert inner_path(None, "ctr1") == "ctr1"
    assert inner_path("/p/q", "ctr1") == "/p/q"


def test_parse_mountinfo_comounted_and_named() -> None:
    text = (
        "31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
        "33 31 0:30 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory,clone_children\n"
        "34 31 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,name=systemd\n"
        "35 31 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
        "36 31 0:33 / /mnt/with\\040space rw - cgroup cgroup rw,pids\n"
        "37 31 0:29 / /elsewhere rw - cgroup cgroup rw,cpu,cpuacct\n"
    )
    hs = {h.key: h for h in parse_mountinfo(text)}
    assert set(hs) == {"cpu,cpuacct", "memory", "name=systemd", "", "pids"}
    assert hs["cpu,cpuacct"].controllers == ["cpu", "cpuacct"]
    assert hs["cpu,cpuacct"].mountpoint == "/sys/fs/cgroup/cpu,cpuacct"  # first mount wins
    assert hs["pids"].mountpoint == "/mnt/with space"
    # a mount whose root is not "/" maps /proc/<pid>/cgroup paths below that root
    assert hs["memory"].host_path("/docker/abc/sub") == "/sys/fs/cgroup/memory/sub"
    assert hs["memory"].host_path("/docker/abc") == "/sys/fs/cgroup/memory"


def test_locate_under() -> None:
    assert locate_under("/a/b/ctr/sub", "b/ctr") == "/a/b/ctr"
    assert locate_under("/a/ctr/x/ctr", "ctr") == "/a/ctr/x/ctr"
    assert locate_under("/a/b", "zzz") is None
    assert locate_under("", "x") is None


@requires_v1
def test_open_cgroup_resolves_like_runc() -> None:
    own = own_cgroups()
    cg = open_cgroup("/dockyard-test/abs", "ignored")
    assert isinstance(cg, CgroupV1)
    for h, path in cg.targets:
        assert path == f"{h.mountpoint}/dockyard-test/abs"
    rel = open_cgroup("", "ctr-7")  # empty: the container id, relative to our own cgroups
    for h, path in rel.targets:
        assert path == h.host_path(own[h.key]).rstrip("/") + "/ctr-7"
    if cgroup_mode() == "hybrid":
        # A hybrid host's cgroup2 hierarchy is used only when it holds controllers (this one doesn't).
        with open(f"{UNIFIED_ROOT}/cgroup.controllers") as f:
            assert ("" in rel.paths) == bool(f.read().strip())


@requires_v1
def test_open_relative_path_through_root_pid(spawn) -> None:
    rel = "dockyard-test/" + uuid.uuid4().hex[:12]
    cg = open_cgroup(rel, "x")
    try:
        cg.create()
        sleeper = spawn(["sleep", "60"])
        cg.add_process(sleeper.pid)
        again = open_cgroup(rel, "x", root_pid=sleeper.pid)
        assert again.paths == cg.paths
        assert sleeper.pid in again.pids()
    finally:
        _teardown(cg)


# ---------------------------------------------------------------- v1, for real


@requires_v1
def test_v1_create_and_destroy(v1cg: CgroupV1) -> None:
    assert v1cg.version == 1
    for path in v1cg.paths.values():
        assert os.path.isdir(path), path
    cpuset = v1cg.dirs.get("cpuset")
    if cpuset:  # copied down from the parent, or no task could join
        parent = os.path.dirname(cpuset)
        assert _read(f"{cpuset}/cpuset.cpus") == _read(f"{parent}/cpuset.cpus") != ""
        assert _read(f"{cpuset}/cpuset.mems") == _read(f"{parent}/cpuset.mems") != ""
    v1cg.create()  # idempotent
    assert v1cg.exists()
    v1cg.destroy()
    assert not v1cg.exists()
    v1cg.destroy()  # idempotent


@requires_v1
def test_v1_add_process_pids_and_enter(v1cg: CgroupV1, spawn) -> None:
    a, b = spawn(["sleep", "60"]), spawn(["sleep", "60"])
    v1cg.add_process(a.pid)
    v1cg.enter(b.pid)
    assert sorted(v1cg.pids()) == sorted([a.pid, b.pid])
    inner = v1cg.paths["memory"].removeprefix("/sys/fs/cgroup/memory")
    with open(f"/proc/{a.pid}/cgroup") as f:
        lines = f.read().splitlines()
    assert any(line.endswith(f":memory:{inner}") for line in lines)
    if "" in v1cg.paths:
        assert f"0::{inner}" in lines


@requires_v1
def test_v1_mount_sources(v1cg: CgroupV1) -> None:
    sources = dict(v1cg.mount_sources())
    assert "" not in sources
    for h, path in v1cg.targets:
        if h.key:
            assert sources[os.path.basename(h.mountpoint)] == path


@requires_v1
def test_v1_pids_limit_is_enforced(v1cg: CgroupV1, tmp_path) -> None:
    v1cg.apply({"pids": {"limit": 3}})
    assert _read(f"{v1cg.dirs['pids']}/pids.max") == "3"
    log = tmp_path / "out"
    with open(log, "w") as out:
        shell = subprocess.Popen(["sh", "-c", "read _go; for i in 1 2 3 4 5 6; do sleep 60 & done"],
                                 stdin=subprocess.PIPE, stdout=out, stderr=out, text=True)
    try:
        v1cg.add_process(shell.pid)
        shell.communicate("go\n", timeout=10)
    finally:
        if shell.poll() is None:
            os.kill(shell.pid, signal.SIGKILL)
        shell.wait()
    assert "fork" in log.read_text().lower()
    assert len(v1cg.pids()) == 2  # the shell and two sleeps fitted in; the shell has exited since
    assert v1cg.stats()["pids_stats"] == {"current": 2, "limit": 3}
    v1cg.apply({"pids": {"limit": -1}})  # update on a running cgroup: unlimited
    assert _read(f"{v1cg.dirs['pids']}/pids.max") == "max"


@requires_v1
def test_v1_memory_values_and_update(v1cg: CgroupV1) -> None:
    d = v1cg.dirs["memory"]
    v1cg.apply({"memory": {"limit": 64 * MB, "reservation": 32 * MB, "swap": 128 * MB, "swappiness": 10,
                           "disableOOMKiller": True}})
    assert int(_read(f"{d}/memory.limit_in_bytes")) == 64 * MB
    assert int(_read(f"{d}/memory.soft_limit_in_bytes")) == 32 * MB
    assert int(_read(f"{d}/memory.memsw.limit_in_bytes")) == 128 * MB
    assert _read(f"{d}/memory.swappiness") == "10"
    assert "oom_kill_disable 1" in _read(f"{d}/memory.oom_control")
    # growing memory above the current memsw limit needs memsw written first
    v1cg.apply({"memory": {"limit": 256 * MB, "swap": 512 * MB}})
    assert int(_read(f"{d}/memory.limit_in_bytes")) == 256 * MB
    assert int(_read(f"{d}/memory.memsw.limit_in_bytes")) == 512 * MB
    # shrinking both needs the limit written first
    v1cg.apply({"memory": {"limit": 16 * MB, "swap": 16 * MB}})
    assert int(_read(f"{d}/memory.memsw.limit_in_bytes")) == 16 * MB
    v1cg.apply({"memory": {"limit": -1}})  # unlimited memory implies unlimited swap
    assert int(_read(f"{d}/memory.limit_in_bytes")) > 1 << 60
    assert int(_read(f"{d}/memory.memsw.limit_in_bytes")) > 1 << 60
    with pytest.raises(CgroupError, match="swappiness"):
        v1cg.apply({"memory": {"swappiness": 101}})


@requires_v1
def test_v1_memory_limit_is_enforced(v1cg: CgroupV1, spawn) -> None:
    v1cg.apply({"memory": {"limit": 48 * MB, "swap": 48 * MB}})
    hog = spawn(f"exec {sys.executable} -c 'b = b\"x\" * (200 << 20); print(\"survived\")'", gated=True)
    v1cg.add_process(hog.pid)
    rc, out = hog.run()
    assert rc == -signal.SIGKILL and "survived" not in out, (rc, out)
    stats = v1cg.stats()["memory_stats"]
    assert stats["limit"] == 48 * MB and stats["max_usage"] >= 40 * MB


@requires_v1
def test_v1_cpu_values(v1cg: CgroupV1) -> None:
    v1cg.apply({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}})
    cpu = v1cg.dirs["cpu"]
    assert _read(f"{cpu}/cpu.shares") == "512"
    assert _read(f"{cpu}/cpu.cfs_quota_us") == "50000"
    assert _read(f"{cpu}/cpu.cfs_period_us") == "100000"
    assert _read(f"{v1cg.dirs['cpuset']}/cpuset.cpus") == "0"
    assert _read(f"{v1cg.dirs['cpuset']}/cpuset.mems") == "0"
    v1cg.apply({"cpu": {"quota": -1}})  # update: lift the quota, keep the rest
    assert _read(f"{cpu}/cpu.cfs_quota_us") == "-1"
    assert _read(f"{cpu}/cpu.shares") == "512"
    with pytest.raises(CgroupError, match="maximum allowed is 262144"):
        v1cg.apply({"cpu": {"shares": 1 << 20}})


@requires_v1
def test_v1_kernel_refusal_names_file_and_value(v1cg: CgroupV1) -> None:
    with pytest.raises(CgroupError, match=r"'500'.*cpu\.cfs_quota_us.*Invalid argument"):
        v1cg.apply({"cpu": {"quota": 500}})  # below the kernel's 1ms minimum
    with pytest.raises(CgroupError, match="unified"):
        v1cg.apply({"unified": {"memory.high": "1G"}})


@requires_v1
def test_v1_missing_keys_leave_values_alone(v1cg: CgroupV1) -> None:
    v1cg.apply({"pids": {"limit": 50}, "memory": {"limit": 64 * MB}})
    v1cg.apply({"cpu": {"shares": 300}})
    assert _read(f"{v1cg.dirs['pids']}/pids.max") == "50"
    assert int(_read(f"{v1cg.dirs['memory']}/memory.limit_in_bytes")) == 64 * MB


@requires_v1
def test_v1_hugetlb(v1cg: CgroupV1) -> None:
    if "hugetlb" not in v1cg.dirs:
        pytest.skip("no hugetlb controller")
    v1cg.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MB}]})
    assert int(_read(f"{v1cg.dirs['hugetlb']}/hugetlb.2MB.limit_in_bytes")) == 4 * MB


@requires_v1
def test_v1_devices_are_enforced(v1cg: CgroupV1, spawn) -> None:
    d = v1cg.dirs["devices"]
    v1cg.apply({"devices": DOCKER_DEVICES})
    assert _read(f"{d}/devices.list").splitlines() == ["c 1:5 rwm", "c 1:8 rwm", "c 136:* rwm"]
    child = spawn("head -c 3 /dev/zero | wc -c; cat /dev/null; echo null=$?", gated=True)
    v1cg.add_process(child.pid)
    rc, out = child.run()
    assert out.split()[0] == "3" and "Operation not permitted" in out and "null=1" in out, out
    v1cg.apply({"devices": [{"allow": True, "access": "rwm"}]})
    assert _read(f"{d}/devices.list") == "a *:* rwm"


@requires_v1
def test_v1_freeze_thaw(v1cg: CgroupV1, spawn) -> None:
    sleeper = spawn(["sleep", "60"])
    v1cg.add_process(sleeper.pid)
    assert not v1cg.frozen()
    v1cg.freeze()
    assert v1cg.frozen() and _read(f"{v1cg.dirs['freezer']}/freezer.state") == "FROZEN"
    v1cg.thaw()
    assert not v1cg.frozen() and _read(f"{v1cg.dirs['freezer']}/freezer.state") == "THAWED"


@requires_v1
def test_v1_kill_all(v1cg: CgroupV1, spawn) -> None:
    procs = [spawn(["sleep", "60"]) for _ in range(3)]
    for p in procs:
        v1cg.add_process(p.pid)
    v1cg.kill_all(signal.SIGTERM)
    assert [_wait_exit(p) for p in procs] == [-signal.SIGTERM] * 3
    assert not v1cg.frozen()


@requires_v1
def test_v1_kill_all_while_paused(v1cg: CgroupV1, spawn) -> None:
    p = spawn(["sleep", "60"])
    v1cg.add_process(p.pid)
    v1cg.freeze()
    v1cg.kill_all(signal.SIGKILL)  # paused containers must still die
    assert _wait_exit(p) == -signal.SIGKILL


@requires_v1
def test_v1_destroy_waits_for_exiting_processes(spawn) -> None:
    cg = open_cgroup(_test_path(), "x")
    try:
        cg.create()
        p = spawn(["sleep", "60"])
        cg.add_process(p.pid)
        cg.kill_all(signal.SIGKILL)
        cg.destroy()  # may race with the exit: EBUSY is retried
        assert not cg.exists()
    finally:
        _teardown(cg)


@requires_v1
def test_v1_stats_shape(v1cg: CgroupV1, spawn) -> None:
    busy = spawn(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 60"])
    v1cg.add_process(busy.pid)
    time.sleep(0.3)
    s = v1cg.stats()
    mem, cpu = s["memory_stats"], s["cpu_stats"]
    assert mem["usage"] > 0 and mem["limit"] > 0 and "cache" in mem["stats"]
    assert cpu["cpu_usage"]["total_usage"] > 0
    assert len(cpu["cpu_usage"]["percpu_usage"]) >= cpu["online_cpus"] >= 1
    assert cpu["system_cpu_usage"] > cpu["cpu_usage"]["total_usage"]
    assert set(cpu["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    assert s["pids_stats"] == {"current": len(v1cg.pids())}
    assert isinstance(s["blkio_stats"]["io_service_bytes_recursive"], list)


# ---------------------------------------------------------------- cgroup2 (the unified mount), for real


@requires_unified
def test_v2_create_add_pids_destroy(v2cg: CgroupV2, spawn) -> None:
    assert v2cg.version == 2 and v2cg.exists()
    a = spawn(["sleep", "60"])
    v2cg.add_process(a.pid)
    inner = v2cg.path.removeprefix(UNIFIED_ROOT)
    assert f"0::{inner}" in _read(f"/proc/{a.pid}/cgroup").splitlines()
    sub = CgroupV2(v2cg.path + "/nested", root=UNIFIED_ROOT)
    sub.create()
    b = spawn(["sleep", "60"])
    sub.enter(b.pid)
    assert sorted(v2cg.pids()) == sorted([a.pid, b.pid])  # recursive
    assert v2cg.mount_sources() == [("", v2cg.path)]
    v2cg.kill_all(signal.SIGKILL)
    v2cg.destroy()  # removes the nested cgroup too
    assert not v2cg.exists()
    v2cg.destroy()


@requires_unified
def test_v2_freeze_thaw(v2cg: CgroupV2, spawn) -> None:
    p = spawn(["sleep", "60"])
    v2cg.add_process(p.pid)
    v2cg.freeze()
    assert v2cg.frozen() and "frozen 1" in _read(f"{v2cg.path}/cgroup.events")
    v2cg.thaw()
    assert not v2cg.frozen() and "frozen 0" in _read(f"{v2cg.path}/cgroup.events")


@requires_unified
def test_v2_kill_all(v2cg: CgroupV2, spawn) -> None:
    procs = [spawn(["sleep", "60"]) for _ in range(2)]
    for p in procs:
        v2cg.add_process(p.pid)
    v2cg.kill_all(signal.SIGTERM)  # freeze, signal, thaw
    assert [_wait_exit(p) for p in procs] == [-signal.SIGTERM] * 2
    assert not v2cg.frozen()
    p = spawn(["sleep", "60"])
    v2cg.add_process(p.pid)
    v2cg.kill_all(signal.SIGKILL)  # cgroup.kill
    assert _wait_exit(p) == -signal.SIGKILL


@requires_unified
def test_v2_devices_ebpf_program(v2cg: CgroupV2, spawn) -> None:
    v2cg.apply({"devices": DOCKER_DEVICES})
    child = spawn("head -c 3 /dev/zero | wc -c; cat /dev/null; echo null=$?", gated=True)
    v2cg.add_process(child.pid)
    rc, out = child.run()
    assert out.split()[0] == "3" and "Operation not permitted" in out and "null=1" in out, out

    # update: /dev/null becomes readable only; the old program is replaced, not stacked
    v2cg.apply({"devices": [*DOCKER_DEVICES, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}]})
    fd = os.open(v2cg.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(attached(fd)) == 1
    finally:
        os.close(fd)
    child = spawn("cat /dev/null && echo read=ok; (echo x > /dev/null); echo write=$?", gated=True)
    v2cg.add_process(child.pid)
    rc, out = child.run()
    assert "read=ok" in out and "write=0" not in out and "Operation not permitted" in out, out


@requires_unified
def test_v2_deny_rule_blocks_partial_access(v2cg: CgroupV2, spawn) -> None:
    # default allow with "c 1:3 w" denied: opening read-write is refused (as with v1), read-only works
    v2cg.apply({"devices": [{"allow": True, "access": "rwm"},
                            {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]})
    child = spawn("cat /dev/null && echo ro=ok; (: <> /dev/null); echo rw=$?; head -c1 /dev/zero | wc -c",
                  gated=True)
    v2cg.add_process(child.pid)
    rc, out = child.run()
    assert "ro=ok" in out and "rw=0" not in out and "Operation not permitted" in out, out
    assert out.split()[-1] == "1", out


@requires_unified
def test_v2_unified_keys_and_errors(v2cg: CgroupV2) -> None:
    v2cg.apply({"unified": {"cgroup.max.descendants": "7"}})
    assert _read(f"{v2cg.path}/cgroup.max.descendants") == "7"
    with pytest.raises(CgroupError, match=r"memory\.high.*not enabled"):
        v2cg.apply({"unified": {"memory.high": "1G"}})
    with pytest.raises(CgroupError, match="invalid"):
        v2cg.apply({"unified": {"../escape": "1"}})
    with pytest.raises(CgroupError, match=r"pids\.max"):  # no pids controller on this mount
        v2cg.apply({"pids": {"limit": 10}})
    with pytest.raises(CgroupError, match="real-time"):
        v2cg.apply({"cpu": {"realtimeRuntime": 1000}})


@requires_unified
def test_v2_stats_shape(v2cg: CgroupV2, spawn) -> None:
    p = spawn(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 60"])
    v2cg.add_process(p.pid)
    time.sleep(0.3)
    cpu = v2cg.stats()["cpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] > 0 and cpu["online_cpus"] >= 1


@requires_unified
def test_v2_create_rejects_path_outside_root() -> None:
    with pytest.raises(CgroupError):
        CgroupV2("/tmp/elsewhere", root=UNIFIED_ROOT)


# ---------------------------------------------------------------- pure conversions


def test_cpu_shares_to_weight() -> None:
    assert cpu_shares_to_weight(0) == 0
    assert cpu_shares_to_weight(2) == 1
    assert cpu_shares_to_weight(1024) == 100
    assert cpu_shares_to_weight(262144) == 10000
    assert cpu_shares_to_weight(1 << 20) == 10000
    values = [cpu_shares_to_weight(s) for s in (2, 16, 128, 512, 1024, 2048, 65536, 262144)]
    assert values == sorted(values)


def test_blkio_weight_to_io_weight() -> None:
    assert blkio_weight_to_io_weight(0) == 0
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000
    assert blkio_weight_to_io_weight(500) == 1 + 490 * 9999 // 990


def test_memory_swap_to_v2() -> None:
    assert memory_swap_to_v2(0, -1) == -1
    assert memory_swap_to_v2(-1, 100) == -1
    assert memory_swap_to_v2(0, 100) == 0
    assert memory_swap_to_v2(300, 100) == 200
    assert memory_swap_to_v2(100, 100) == 0
    with pytest.raises(CgroupError, match="without a memory limit"):
        memory_swap_to_v2(300, 0)
    with pytest.raises(CgroupError, match="at least"):
        memory_swap_to_v2(50, 100)


def test_limit_str_and_cpu_max() -> None:
    assert limit_str(None) is None and limit_str(0) is None
    assert limit_str(-1) == "max" and limit_str(42) == "42"
    assert cpu_max(50000, 100000, None) == "50000 100000"
    assert cpu_max(-1, None, None) == "max"
    assert cpu_max(None, 20000, "30000 100000") == "30000 20000"  # period alone keeps the quota
    assert cpu_max(0, 20000, "max 100000") == "max 20000"


def test_device_state_emulates_v1() -> None:
    s = state_from_rules(DOCKER_DEVICES)
    assert not s.default_allow
    assert [str(e) for e in s.exceptions] == ["c 1:5 rwm", "c 1:8 rwm", "c 136:* rwm"]
    assert state_from_list("c 1:5 rwm\nc 1:8 rwm\nc 136:* rwm\n") == s
    assert state_from_list("a *:* rwm\n") == DeviceState(default_allow=True)
    # a deny that agrees with the default withdraws access from an exception
    s = state_from_rules([*DOCKER_DEVICES, {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}])
    assert DeviceException("c", 1, 5, "rm") in s.exceptions
    # a later allow-all resets everything
    s = state_from_rules([*DOCKER_DEVICES, {"allow": True, "access": "rwm"}])
    assert s == DeviceState(default_allow=True)
    assert state_from_rules([]) == DeviceState()  # no rules: deny all
    with pytest.raises(CgroupError, match="invalid device rule type"):
        state_from_rules([{"allow": True, "type": "x"}])
    with pytest.raises(CgroupError, match="invalid device access"):
        state_from_rules([{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rx"}])


def test_bpf_program_layout() -> None:
    prog = assemble(state_from_rules(DOCKER_DEVICES))
    assert len(prog) % 8 == 0
    assert prog[-8:] == bytes([0x95]) + bytes(7)  # exit
    assert prog[-16:-8] == bytes([0xB7, 0x00]) + bytes(6)  # r0 = 0: default deny
