"""dockyardd under stress and abuse: many concurrent clients, kill -9 in the middle of container
starts (the next start repairs everything and loses no container), malformed request bodies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Dockyardd, busybox_archive, other_children

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
CGROUP_ROOT = Path("/sys/fs/cgroup")
DOCKYARD_RUNTIME = str(Path(sys.executable).parent / "dockyard-runtime")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_archive(tmp_path_factory.mktemp("busybox"))


@pytest.fixture
def daemon(archive: Path) -> Iterator[Dockyardd]:
    d = Dockyardd()
    try:
        d.start()
        assert d.docker("load", "-i", str(archive)).returncode == 0
        yield d
    finally:
        d.remove_containers()
        d.cleanup()
    assert not other_children(set(), timeout=15), "a test left child processes running"


def leftovers(d: Dockyardd, ids: set[str]) -> list[str]:
    """Mounts, shims, cgroups, runtime state, snapshots and directories of the given containers
    (or, for mounts and shims, of any container of this daemon)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if str(d.tmp) in line.split()[4]]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"dockyard.shim" in cmdline and str(d.tmp).encode() in cmdline:
                found.append(f"shim {entry}")
    for hierarchy in CGROUP_ROOT.iterdir():
        found += [f"cgroup {hierarchy / 'dockyard' / cid}" for cid in ids if (hierarchy / "dockyard" / cid).exists()]
    runtime_root = d.exec_root / "runtime"
    found += [f"runtime state {p}" for p in runtime_root.iterdir() if not p.name.startswith(".")] \
        if runtime_root.exists() else []
    containers = d.data_root / "containers"
    found += [f"container dir {p.name}" for p in containers.iterdir() if p.is_dir()] if containers.exists() else []
    shims = [p for p in d.exec_root.iterdir() if len(p.name) == 64] if d.exec_root.exists() else []
    found += [f"shim dir {p.name}" for p in shims]
    return found


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_50_concurrent_run_rm_from_separate_clients(daemon: Dockyardd) -> None:
    procs = [subprocess.Popen(["docker", "run", "--rm", "busybox", "true"], env=daemon.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(50)]
    results = [(p.wait(timeout=300), p.stderr.read().decode()) for p in procs]  # type: ignore[union-attr]
    for p in procs:
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    failed = [err for code, err in results if code != 0]
    assert not failed, f"{len(failed)} of 50 runs failed, e.g. {failed[0]}"
    wait_for(lambda: not daemon.docker("ps", "-aq").stdout.split(), what="--rm containers to be removed")
    assert leftovers(daemon, set()) == []


def test_kill9_during_concurrent_runs_loses_nothing(daemon: Dockyardd) -> None:
    env = daemon.env()
    detached = [subprocess.Popen(["docker", "run", "-d", "busybox", "sleep", "300"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(10)]
    removed = [subprocess.Popen(["docker", "run", "--rm", "busybox", "sleep", "0.2"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(10)]
    time.sleep(1.5)  # some containers are created, some starting, some running, some exiting
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    started = []
    for p in detached:
        out, _ = p.communicate(timeout=60)
        if p.returncode == 0:
            started.append(out.decode().strip())
    for p in removed:
        p.wait(timeout=60)

    daemon.start()  # over the stale socket and pidfile of the killed daemon
    listed = {c["Id"]: c for c in json.loads(daemon.request("GET", "/v1.45/containers/json?all=1")[2])}
    for cid in started:  # every container a client was told about is still there, and running
        assert cid in listed, f"container {cid[:12]} reported to its client is gone"
        assert listed[cid]["State"] == "running"
    for cid, summary in listed.items():  # no --rm container is left once it has stopped
        if summary["State"] != "running":
            inspect = json.loads(daemon.request("GET", f"/v1.45/containers/{cid}/json")[2])
            assert not inspect["HostConfig"]["AutoRemove"], f"stopped --rm container {cid[:12]} kept"
    for cid, summary in listed.items():  # running ones really run
        if summary["State"] == "running":
            inspect = json.loads(daemon.request("GET", f"/v1.45/containers/{cid}/json")[2])
            assert os.path.exists(f"/proc/{inspect['State']['Pid']}")

    ids = set(listed)
    if ids:
        assert daemon.docker("rm", "-f", *ids).returncode == 0
    wait_for(lambda: not leftovers(daemon, ids | set(started)), what=f"clean-up: {leftovers(daemon, ids)}")


def test_concurrent_start_rm_rename_and_same_names(daemon: Dockyardd) -> None:
    """Per-container locking keeps the races safe: starts racing a forced removal and a rename
    of the same containers leave nothing behind, and of ten creates under one name one wins."""
    env = daemon.env()
    ids = [daemon.docker("create", "busybox", "sleep", "60").stdout.strip() for _ in range(8)]
    procs = []
    for n, cid in enumerate(ids):
        procs += [subprocess.Popen(["docker", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                  for args in (["start", cid], ["rename", cid, f"race-{n}"], ["rm", "-f", cid])]
    for p in procs:
        p.wait(timeout=120)
    removals = procs[2::3]
    assert [p.returncode for p in removals] == [0] * len(ids), [p.stderr.read() for p in removals]  # type: ignore[union-attr]
    assert daemon.docker("ps", "-aq").stdout.split() == []
    wait_for(lambda: not leftovers(daemon, set(ids)), what=f"clean-up: {leftovers(daemon, set(ids))}")
    creates = [subprocess.Popen(["docker", "create", "--name", "one-name", "busybox"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(10)]
    codes = sorted(p.wait(timeout=120) for p in creates)
    assert codes == [0] + [1] * 9
    assert all(b"is already in use" in p.stderr.read() for p in creates if p.returncode)  # type: ignore[union-attr]


@pytest.mark.parametrize("body, message", [
    ({"Image": "busybox", "Cmd": 5}, "ContainerConfigWrapper.Cmd of type strslice.StrSlice"),
    ({"Image": "busybox", "Env": ["A=1", 2]}, "ContainerConfigWrapper.Env of type string"),
    ({"Image": "busybox", "Tty": "yes"}, "ContainerConfigWrapper.Tty of type bool"),
    ({"Image": "busybox", "HostConfig": {"Memory": "1g"}}, "HostConfig.Memory of type int64"),
    ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": 1}}}, "RestartPolicy.Name of type string"),
    ({"Image": "busybox", "HostConfig": []}, "ContainerConfigWrapper.HostConfig of type"),
    ([], "Config cannot be empty"),
])
def test_malformed_create_bodies_are_400_naming_the_field(daemon: Dockyardd, body: object, message: str) -> None:
    status, _, raw = daemon.request("POST", "/v1.45/containers/create", json.dumps(body).encode(),
                                    {"Content-Type": "application/json"})
    assert status == 400 and message in json.loads(raw)["message"]
    assert daemon.docker("ps", "-aq").stdout.split() == []  # nothing was created


def test_unknown_fields_are_ignored_and_string_cmd_is_a_one_element_list(daemon: Dockyardd) -> None:
    """As dockerd's Go decoder: newer clients' fields do not break older daemons."""
    body = {"Image": "busybox", "Cmd": "true", "FieldFromTheFuture": {"x": 1},
            "HostConfig": {"AlsoUnknown": True}}
    status, _, raw = daemon.request("POST", "/v1.45/containers/create", json.dumps(body).encode(),
                                    {"Content-Type": "application/json"})
    assert status == 201, raw
    cid = json.loads(raw)["Id"]
    inspect = json.loads(daemon.request("GET", f"/v1.45/containers/{cid}/json")[2])
    assert inspect["Config"]["Cmd"] == ["true"] and inspect["Path"] == "true"


def test_malformed_exec_bodies_are_400(daemon: Dockyardd) -> None:
    cid = daemon.docker("run", "-d", "busybox", "sleep", "300").stdout.strip()
    status, _, raw = daemon.request("POST", f"/v1.45/containers/{cid}/exec", b'{"Cmd": "true"}',
                                    {"Content-Type": "application/json"})
    assert status == 400 and "ExecConfig.Cmd of type []string" in json.loads(raw)["message"]
    status, _, raw = daemon.request("POST", f"/v1.45/containers/{cid}/exec", b'{"Cmd": ["true"]}',
                                    {"Content-Type": "application/json"})
    exec_id = json.loads(raw)["Id"]
    status, _, raw = daemon.request("POST", f"/v1.45/exec/{exec_id}/start", b'{"Detach": "no"}',
                                    {"Content-Type": "application/json"})
    assert status == 400 and "Detach of type bool" in json.loads(raw)["message"]


def test_wait_for_a_removed_container_by_id_gets_its_exit(daemon: Dockyardd) -> None:
    """A `run --rm` client whose wait arrives after the container is gone (a busy daemon) still
    gets the exit status, by the full ID that create returned."""
    body = json.dumps({"Image": "busybox", "Cmd": ["sh", "-c", "exit 3"], "HostConfig": {"AutoRemove": True}})
    status, _, raw = daemon.request("POST", "/v1.45/containers/create?name=gone", body.encode(),
                                    {"Content-Type": "application/json"})
    cid = json.loads(raw)["Id"]
    assert daemon.request("POST", f"/v1.45/containers/{cid}/start")[0] == 204
    wait_for(lambda: daemon.request("GET", f"/v1.45/containers/{cid}/json")[0] == 404, what="auto-removal")
    status, _, raw = daemon.request("POST", f"/v1.45/containers/{cid}/wait?condition=removed")
    assert status == 200 and json.loads(raw)["StatusCode"] == 3
    assert daemon.request("POST", "/v1.45/containers/gone/wait?condition=removed")[0] == 404


def test_starts_of_different_containers_overlap(tmp_path: Path, archive: Path) -> None:
    """Two containers whose runtime takes a second to create each start in parallel: the second
    create begins before the first ends (one container's start does not hold up another's)."""
    log = tmp_path / "creates.log"
    slow = tmp_path / "slow-runtime"
    runtime = Path(DOCKYARD_RUNTIME)
    slow.write_text('#!/bin/sh\ncase " $* " in *" create "*)\n'
                    f'  echo "begin $(date +%s.%N)" >> {log}; sleep 2; echo "end $(date +%s.%N)" >> {log};;\nesac\n'
                    f'exec {runtime} "$@"\n')
    slow.chmod(0o755)
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"runtimes": {"slow": {"path": str(slow)}}}))
    d = Dockyardd("--config-file", str(config))
    try:
        d.start()
        assert d.docker("load", "-i", str(archive)).returncode == 0
        ids = [d.docker("create", "--runtime", "slow", "busybox", "sleep", "60").stdout.strip() for _ in range(2)]
        starts = [subprocess.Popen(["docker", "start", cid], env=d.env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE) for cid in ids]
        assert [p.wait(timeout=120) for p in starts] == [0, 0], [p.stderr.read() for p in starts]  # type: ignore[union-attr]
        events = sorted((float(t), what) for what, t in (line.split() for line in log.read_text().splitlines()))
        assert [what for _, what in events] == ["begin", "begin", "end", "end"], events
    finally:
        d.remove_containers()
        d.cleanup()
    assert not other_children(set(), timeout=15), "a test left child processes running"
