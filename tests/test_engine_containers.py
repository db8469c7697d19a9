"""The container engine core against the real kernel, dockyard-shim and dockyard-runtime."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time

import pytest

from dockyard.engine.containers import Conflict, ContainerError, NotFound
from tests import engine_fixtures
from tests.engine_fixtures import Engine

image_store = engine_fixtures.image_store
engine = engine_fixtures.engine

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_run_exit_code_and_logs(engine: Engine) -> None:
    code, out, err = engine.run(["sh", "-c", "echo hi; echo oops >&2; exit 3"])
    assert (code, out, err) == (3, "hi\n", "oops\n")


def test_env_cmd_entrypoint_merging(engine: Engine) -> None:
    code, out, _ = engine.run(["sh", "-c", "echo $FOO $HOSTNAME; echo $PATH"], Env=["FOO=bar"])
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("bar ") and len(lines[0].split()[1]) == 12
    assert lines[1] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    code, out, _ = engine.run(["hello", "world"], Entrypoint=["echo"])
    assert out == "hello world\n"
    code, out, _ = engine.run(["echo", "plain"], Entrypoint=[""])
    assert out == "plain\n"


def test_user_workdir_hostname_hosts(engine: Engine) -> None:
    code, out, _ = engine.run(["sh", "-c", "id -u; id -g; pwd; hostname"], User="nobody", WorkingDir="/new/dir",
                              Hostname="box")
    assert out.split() == ["65534", "65534", "/new/dir", "box"]
    code, out, _ = engine.run(["cat", "/etc/hosts"], {"ExtraHosts": ["db:10.1.2.3"]}, Hostname="web",
                              Domainname="example.org")
    assert "127.0.0.1\tlocalhost" in out and "10.1.2.3\tdb" in out and "web.example.org web" in out
    cid = engine.create(["true"], User="nosuchuser")
    with pytest.raises(ContainerError, match="unable to find user nosuchuser: no matching entries in passwd file"):
        engine.service.start(cid)


def test_default_hostname_and_resolv_conf(engine: Engine) -> None:
    cid = engine.create(["sh", "-c", "hostname; cat /etc/resolv.conf"], {"Dns": ["9.9.9.9"], "DnsSearch": ["a.b"]})
    engine.service.start(cid)
    engine.service.wait(cid, timeout=30)
    out = b"".join(d for _, d in engine.service.logs(cid)).decode().splitlines()
    assert out[0] == cid[:12]
    assert "nameserver 9.9.9.9" in out and "search a.b" in out
    _, flags, _ = engine.run(["cat", "/sys/class/net/lo/flags"], {"NetworkMode": "none"})
    assert int(flags, 16) & 1  # lo is up in the new network namespace


def _caps(out: str) -> dict[str, str]:
    return dict(line.split(":\t") for line in out.splitlines() if line.startswith("Cap"))


def test_capabilities(engine: Engine) -> None:
    _, out, _ = engine.run(["cat", "/proc/self/status"])
    assert _caps(out)["CapBnd"] == "00000000a80425fb"
    _, out, _ = engine.run(["cat", "/proc/self/status"], {"CapAdd": ["NET_ADMIN"], "CapDrop": ["chown"]})
    assert int(_caps(out)["CapBnd"], 16) == (0xa80425fb | 1 << 12) & ~1
    _, out, _ = engine.run(["cat", "/proc/self/status"], {"CapDrop": ["ALL"], "CapAdd": ["KILL"]})
    assert int(_caps(out)["CapBnd"], 16) == 1 << 5


def test_privileged(engine: Engine) -> None:
    code, out, _ = engine.run(["sh", "-c", "grep -E 'CapBnd|Seccomp:' /proc/self/status; ls /dev | wc -l"],
                              {"Privileged": True})
    caps = _caps(out)
    own = next(line for line in open("/proc/self/status") if line.startswith("CapBnd:")).split()[1]
    assert caps["CapBnd"] == own
    assert "Seccomp:\t0" in out
    code, out, _ = engine.run(["grep", "Seccomp:", "/proc/self/status"])
    assert "Seccomp:\t2" in out


def test_readonly_rootfs_and_tmpfs(engine: Engine) -> None:
    code, _, err = engine.run(["sh", "-c", "touch /x"], {"ReadonlyRootfs": True})
    assert code != 0 and "Read-only file system" in err
    code, out, _ = engine.run(["sh", "-c", "touch /run/x && grep ' /run ' /proc/mounts"],
                              {"ReadonlyRootfs": True, "Tmpfs": {"/run": "size=1m"}})
    assert code == 0 and "tmpfs" in out and "size=1024k" in out


def test_bind_mount(engine: Engine, tmp_path) -> None:
    (tmp_path / "f").write_text("from host\n")
    code, out, err = engine.run(["sh", "-c", "cat /h/f; touch /h/g"], {"Binds": [f"{tmp_path}:/h:ro"]})
    assert out == "from host\n" and code != 0 and "Read-only" in err


def test_memory_oom(engine: Engine) -> None:
    cid = engine.create(["sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done"],
                        {"Memory": 8 * 1024 * 1024, "MemorySwap": 8 * 1024 * 1024})
    engine.service.start(cid)
    assert engine.service.wait(cid, timeout=60)["StatusCode"] == 137
    state = engine.service.inspect(cid)["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137


def test_pids_limit(engine: Engine) -> None:
    code, out, err = engine.run(["sh", "-c", "for i in 1 2 3 4 5 6; do sleep 3 & done; echo started"],
                                {"PidsLimit": 4})
    assert code != 0 and "can't fork" in err


def test_stop_with_trap_and_ignored_sigterm(engine: Engine) -> None:
    s = engine.service
    trap = engine.create(["sh", "-c", "trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done"])
    s.start(trap)
    time.sleep(0.5)
    t0 = time.monotonic()
    s.stop(trap, timeout=10)
    assert time.monotonic() - t0 < 5
    assert s.inspect(trap)["State"]["ExitCode"] == 7
    stubborn = engine.create(["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    s.start(stubborn)
    time.sleep(0.3)
    t0 = time.monotonic()
    s.stop(stubborn, timeout=1)
    assert 0.9 < time.monotonic() - t0 < 6
    assert s.inspect(stubborn)["State"]["ExitCode"] == 137


def test_kill_with_signal_and_wait_conditions(engine: Engine) -> None:
    s = engine.service
    cid = engine.create(["sleep", "100"], {"Init": True})  # tini forwards the signal to sleep
    with pytest.raises(Conflict):
        s.kill(cid)
    with concurrent.futures.ThreadPoolExecutor() as pool:
        next_exit = pool.submit(s.wait, cid, "next-exit", 30)
        s.start(cid)
        assert s.inspect(cid)["Path"] == "sleep"
        time.sleep(0.3)
        s.kill(cid, "SIGUSR1")
        assert next_exit.result()["StatusCode"] == 128 + signal.SIGUSR1
    assert s.wait(cid, "not-running", timeout=5)["StatusCode"] == 138
    inspect = s.inspect(cid)
    assert inspect["State"]["Status"] == "exited" and inspect["State"]["Pid"] == 0


def test_next_exit_counts_from_the_wait_registration(engine: Engine) -> None:
    # the API takes exit_count() before its headers: an exit before the waiting thread runs still counts
    s = engine.service
    cid = engine.create(["sh", "-c", "exit 5"])
    seen = s.exit_count(cid)
    s.start(cid)
    assert s.wait(cid, "not-running", timeout=30)["StatusCode"] == 5
    assert s.wait(cid, "next-exit", timeout=5, seen=seen)["StatusCode"] == 5
    with pytest.raises(TimeoutError):
        s.wait(cid, "next-exit", timeout=0.2)


def test_auto_remove(engine: Engine) -> None:
    cid = engine.create(["sh", "-c", "exit 4"], {"AutoRemove": True})
    engine.service.start(cid)
    assert engine.service.wait(cid, "removed", timeout=30)["StatusCode"] == 4
    with pytest.raises(NotFound, match="No such container"):
        engine.service.inspect(cid)
    assert not os.path.exists(os.path.join(engine.data_root, "containers", cid))


def test_auto_remove_after_a_failed_start(engine: Engine) -> None:
    # `docker run --rm busybox nosuchcmd`: start fails, the container is removed, waiters return.
    from concurrent.futures import ThreadPoolExecutor

    cid = engine.create(["nosuchcmd"], {"AutoRemove": True})
    with ThreadPoolExecutor(1) as pool:
        removed = pool.submit(engine.service.wait, cid, "removed", 10)  # the docker CLI waits first
        time.sleep(0.2)
        with pytest.raises(ContainerError, match="executable file not found"):
            engine.service.start(cid)
        assert removed.result(timeout=15) == {"StatusCode": 128, "Error": None}
    with pytest.raises(NotFound, match="No such container"):
        engine.service.inspect(cid)


def test_restart_policy_always(engine: Engine) -> None:
    s = engine.service
    cid = engine.create(["sh", "-c", "echo run; sleep 0.2"], {"RestartPolicy": {"Name": "always"}})
    s.start(cid)
    deadline = time.monotonic() + 30
    while s.inspect(cid)["RestartCount"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert s.inspect(cid)["RestartCount"] >= 1
    s.stop(cid, timeout=1)
    assert s.inspect(cid)["State"]["Running"] is False


def test_rename_and_resolution(engine: Engine) -> None:
    s = engine.service
    cid = engine.create(["true"], name="first")
    other = engine.create(["true"])
    assert s.inspect(other)["Name"].count("_") == 1
    with pytest.raises(Conflict, match="already in use"):
        engine.create(["true"], name="first")
    s.rename("first", "second")
    assert s.inspect("second")["Id"] == cid == s.inspect(cid[:10])["Id"]
    with pytest.raises(NotFound, match="No such container: first"):
        s.inspect("first")


def test_remove_running_refused_then_forced(engine: Engine) -> None:
    s = engine.service
    cid = engine.create(["sleep", "100"])
    s.start(cid)
    with pytest.raises(Conflict, match="You cannot remove a running container"):
        s.remove(cid)
    cgroup = f"/sys/fs/cgroup/memory{s.inspect(cid)['HostConfig']['CgroupParent']}/{cid}"
    assert os.path.isdir(cgroup)
    s.remove(cid, force=True)
    with pytest.raises(NotFound):
        s.inspect(cid)
    assert not os.path.exists(cgroup)


def test_logs_tail_timestamps_since(engine: Engine) -> None:
    s = engine.service
    cid = engine.create(["sh", "-c", "echo one; echo two; sleep 1.2; echo three"])
    s.start(cid)
    s.wait(cid, timeout=30)
    assert [d for _, d in s.logs(cid, tail=1)] == [b"three\n"]
    stamped = [d for _, d in s.logs(cid, timestamps=True)]
    assert len(stamped) == 3 and stamped[0].endswith(b"Z one\n") and len(stamped[0].split()[0]) == 30
    first = stamped[0].split()[0].decode()
    from dockyard.engine.containers.logs import parse_time
    since = parse_time(first) / 1e9 + 1
    assert [d for _, d in s.logs(cid, since=since)] == [b"three\n"]


def test_logs_follow(engine: Engine) -> None:
    s = engine.service
    cid = engine.create(["sh", "-c", "echo a; sleep 0.5; echo b"])
    s.start(cid)
    assert [d for _, d in s.logs(cid, follow=True)] == [b"a\n", b"b\n"]


def test_inspect_and_list_shapes(engine: Engine) -> None:
    s = engine.service
    cid = engine.create(["sleep", "100"], name="shape", Labels={"k": "v"})
    info = s.inspect(cid)
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "Name", "RestartCount", "Driver", "Platform",
                "LogPath", "Mounts", "Config", "HostConfig", "NetworkSettings"):
        assert key in info
    assert info["Name"] == "/shape" and info["Path"] == "sleep" and info["Args"] == ["100"]
    assert info["State"]["Status"] == "created" and info["Image"].startswith("sha256:")
    assert s.list() == []
    assert [c["Id"] for c in s.list(all=True)] == [cid]
    s.start(cid)
    [entry] = s.list(filters={"label": ["k=v"]})
    assert entry["Names"] == ["/shape"] and entry["State"] == "running" and entry["Status"].startswith("Up")
    assert entry["Command"] == "sleep 100" and entry["Image"] == "busybox"
    assert s.list(filters={"status": ["exited"]}) == []
    s.pause(cid)
    assert s.inspect(cid)["State"]["Status"] == "paused"
    s.unpause(cid)
    s.kill(cid)
    s.wait(cid, timeout=30)


def test_reconcile_after_daemon_restart(engine: Engine) -> None:
    cid = engine.create(["sleep", "100"])
    engine.service.start(cid)
    pid = engine.service.inspect(cid)["State"]["Pid"]
    service = engine.reopen()
    service.reconcile()
    info = service.inspect(cid)
    assert info["State"]["Running"] and info["State"]["Pid"] == pid
    os.kill(pid, signal.SIGKILL)
    assert service.wait(cid, timeout=30)["StatusCode"] == 137
    assert service.inspect(cid)["State"]["Status"] == "exited"


def test_reconcile_marks_dead_container_exited(engine: Engine) -> None:
    cid = engine.create(["sleep", "100"])
    engine.service.start(cid)
    pid = engine.service.inspect(cid)["State"]["Pid"]
    engine.service.close()  # the daemon is gone
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    service = engine.reopen()
    service.reconcile()
    state = service.inspect(cid)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    assert not os.path.ismount(os.path.join(engine.data_root, "containers", cid, "rootfs"))
