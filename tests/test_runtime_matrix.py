"""The same bundles under dockyard-runtime, runc and crun: what a container observes must match.

Each test states the expected observation; it runs once per installed runtime.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime, unique_id
from tests.console import ConsoleServer


def run(runtime: Runtime, bundle, timeout: float = 30) -> subprocess.CompletedProcess:
    bundle.write()
    return runtime("run", "--bundle", str(bundle.path), unique_id(), check=False, timeout=timeout)


def status_field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {output!r}")


def test_pid_one_and_hostname(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '"])
    b.config["hostname"] = "matrix-host"
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["1", "matrix-host", "sh -c echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' ' "]


def test_user_and_groups(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["id"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001]}
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "uid=1000(tester) gid=1000(tester) groups=1001(extra)"


def test_home_from_passwd(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "echo $HOME"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    out = run(runtime, b)
    assert out.stdout.strip() == "/home/tester"


def test_capability_sets(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["cat", "/proc/self/status"])
    b.config["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"],
    }
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    chown, kill, net_raw = 1 << 0, 1 << 5, 1 << 13
    assert int(status_field(out.stdout, "CapBnd"), 16) == chown | kill | net_raw
    assert int(status_field(out.stdout, "CapEff"), 16) == chown | kill
    assert int(status_field(out.stdout, "CapPrm"), 16) == chown | kill
    assert int(status_field(out.stdout, "CapInh"), 16) == kill
    assert int(status_field(out.stdout, "CapAmb"), 16) == kill


def test_no_new_privileges(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["cat", "/proc/self/status"])
    b.config["process"]["noNewPrivileges"] = True
    out = run(runtime, b)
    assert status_field(out.stdout, "NoNewPrivs") == "1"
    b.config["process"]["noNewPrivileges"] = False
    out = run(runtime, b)
    assert status_field(out.stdout, "NoNewPrivs") == "0"


def test_masked_and_readonly_paths(runtime: Runtime, bundle_factory) -> None:
    # /proc/timer_list exists on every kernel and is masked by /dev/null; /proc/acpi by a tmpfs.
    script = ("wc -c < /proc/timer_list; touch /proc/acpi/x 2>/dev/null && echo acpi-writable; "
              "echo 1 > /proc/sys/kernel/domainname && echo proc-sys-writable; "
              "touch /sys/x 2>/dev/null && echo sys-writable; echo end")
    b = bundle_factory(["sh", "-c", script])
    out = run(runtime, b)
    lines = out.stdout.split()
    assert lines == ["0", "end"], out


def test_readonly_root(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "touch /x && echo wrote; touch /tmp/y && echo wrote-tmp; true"])
    b.config["root"]["readonly"] = True
    out = run(runtime, b)
    assert "wrote" not in out.stdout
    assert "Read-only file system" in out.stderr or "Read-only file system" in out.stdout
    b.config["root"]["readonly"] = False
    out = run(runtime, b)
    assert "wrote" in out.stdout


def test_rlimits(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -s"])
    b.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 900},
        {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608},
    ]
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["512", "900", "4096"]


def test_unlimited_rlimits(runtime: Runtime, bundle_factory) -> None:
    """The runtime spec's limits are unsigned 64-bit: 2**64-1 is unlimited (Docker's --ulimit x=-1)."""
    b = bundle_factory(["sh", "-c", "ulimit -c; ulimit -Hc"])
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}]
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["unlimited", "unlimited"]


def test_run_pid_file_exists_when_the_process_starts(dockyard_runtime: Runtime, bundle_factory,
                                                     tmp_path: Path) -> None:
    """`run --pid-file` writes the file before the container's process runs, as crun does and as
    `create` does (runc 1.1 writes it only after the process started)."""
    piddir = tmp_path / "piddir"
    piddir.mkdir()
    b = bundle_factory(["cat", "/piddir/pid"])
    b.config["mounts"].append({"destination": "/piddir", "type": "bind", "source": str(piddir),
                               "options": ["rbind", "ro"]})
    b.write()
    out = dockyard_runtime("run", "--bundle", str(b.path), "--pid-file", str(piddir / "pid"), unique_id(),
                           check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (piddir / "pid").read_text().strip() and out.stdout.strip().isdigit()


def test_env_cwd_umask(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "echo $FOO; pwd; umask"])
    b.config["process"]["env"].append("FOO=bar baz")
    b.config["process"]["cwd"] = "/tmp"
    b.config["process"]["user"]["umask"] = 0o027
    out = run(runtime, b)
    assert out.stdout.split("\n")[:3] == ["bar baz", "/tmp", "0027"]


def test_exit_codes(runtime: Runtime, bundle_factory) -> None:
    assert run(runtime, bundle_factory(["sh", "-c", "exit 3"])).returncode == 3
    # pid 1 of a namespace ignores signals it has no handler for, unless sent from outside
    assert run(runtime, bundle_factory(["sh", "-c", "kill -9 $$; echo alive"])).stdout.strip() == "alive"


def test_killed_container_exits_137(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"]).write()
    cid = unique_id()
    proc = subprocess.Popen(runtime.cmd("run", "--bundle", str(b.path), cid), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        runtime.wait_status(cid, "running")
        runtime("kill", cid, "KILL")
        assert proc.wait(timeout=10) == 137
    finally:
        proc.kill()
        proc.wait()


def test_memory_limit_oom_kill(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"])
    b.config["linux"]["resources"] = {"memory": {"limit": 32 * 1024 * 1024}}
    out = run(runtime, b, timeout=60)
    assert "survived" not in out.stdout
    assert out.returncode == 137


def test_pids_limit(runtime: Runtime, bundle_factory) -> None:
    # The inner shell forks until the limit refuses; the outer one counts with builtins only.
    script = ('sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 5 & done" 2>/dev/null; '
              'n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n; kill -9 -1')
    b = bundle_factory(["sh", "-c", script])
    b.config["linux"]["resources"] = {"pids": {"limit": 10}}
    out = run(runtime, b)
    # At the refused fork: outer shell + inner shell + 8 sleeps = 10; the inner shell then exits.
    assert out.stdout.split()[0] == "9", out


def test_signal_reaches_the_container(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done"]).write()
    cid = unique_id()
    runtime("create", "--bundle", str(b.path), cid)
    runtime("start", cid)
    state = runtime.wait_status(cid, "running")
    assert state["pid"] > 0
    time.sleep(0.2)
    runtime("kill", cid, "TERM")
    runtime.wait_status(cid, "stopped")
    runtime("delete", cid)
    assert cid not in runtime.container_ids()


def test_lifecycle_states(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"]).write()
    cid = unique_id()
    runtime("create", "--bundle", str(b.path), cid)
    assert runtime.wait_status(cid, "created")["pid"] > 0
    runtime("start", cid)
    runtime.wait_status(cid, "running")
    assert runtime("start", cid, check=False).returncode != 0
    runtime("pause", cid)
    runtime.wait_status(cid, "paused")
    runtime("resume", cid)
    runtime.wait_status(cid, "running")
    assert runtime("delete", cid, check=False).returncode != 0  # running: needs --force
    runtime("kill", cid, "KILL")
    runtime.wait_status(cid, "stopped")
    runtime("delete", cid)
    assert runtime("state", cid, check=False).returncode != 0


def test_exec_joins_the_container(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "echo inside > /tmp/marker; exec sleep 100"]).write()
    b.config["hostname"] = "exec-host"
    b.write()
    cid = unique_id()
    runtime("create", "--bundle", str(b.path), cid)
    runtime("start", cid)
    runtime.wait_status(cid, "running")
    deadline = time.monotonic() + 5
    while True:
        out = runtime("exec", cid, "cat", "/tmp/marker", check=False)
        if out.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert out.stdout.strip() == "inside"
    out = runtime("exec", "--env", "X=1", "--cwd", "/tmp", cid, "/bin/sh", "-c", "hostname; cat /proc/1/comm; echo $X; pwd")
    assert out.stdout.split() == ["exec-host", "sleep", "1", "/tmp"]
    assert runtime("exec", cid, "sh", "-c", "exit 7", check=False).returncode == 7
    out = runtime("exec", "--user", "1000:1000", cid, "id", "-u")
    assert out.stdout.strip() == "1000"
    ps = runtime("ps", "--format", "json", cid)
    assert len(__import__("json").loads(ps.stdout)) >= 1
    runtime("delete", "--force", cid)


def test_exec_is_in_every_namespace_and_cgroup_of_the_init(runtime: Runtime, bundle_factory) -> None:
    """The exec'd process is forked straight into the container's pid namespace (no intermediate
    process): every namespace and cgroup it is in are the init's."""
    b = bundle_factory(["sleep", "100"]).write()
    cid = unique_id()
    runtime("run", "-d", "--bundle", str(b.path), cid)
    try:
        script = ("for n in pid pid_for_children mnt net ipc uts; do "
                  "[ $(readlink /proc/self/ns/$n) = $(readlink /proc/1/ns/$n) ] || echo $n differs; done; "
                  "cmp /proc/self/cgroup /proc/1/cgroup && echo same cgroups")
        out = runtime("exec", cid, "sh", "-c", script)
        assert out.stdout.split() == ["same", "cgroups"], out.stdout + out.stderr
    finally:
        runtime("delete", "--force", cid)


def test_exec_missing_binary(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"]).write()
    cid = unique_id()
    runtime("run", "-d", "--bundle", str(b.path), cid)
    out = runtime("exec", cid, "no-such-binary", check=False)
    assert out.returncode != 0
    assert "executable file not found" in out.stderr or "No such file" in out.stderr
    runtime("delete", "--force", cid)


def test_tty_console_size(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    b = bundle_factory(["sh", "-c", "stty size; tty"], terminal=True)
    b.config["process"]["consoleSize"] = {"height": 33, "width": 101}
    b.write()
    server = ConsoleServer(tmp_path / "console.sock")
    cid = unique_id()
    try:
        runtime("create", "--bundle", str(b.path), "--console-socket", server.path, cid)
        server.receive()
        runtime("start", cid)
        out = server.read_until_eof().decode()
    finally:
        server.close()
    lines = out.replace("\r", "").split("\n")
    assert lines[0] == "33 101"
    assert lines[1].startswith("/dev/pts/")


def test_hooks_run_in_order(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    hook = logdir / "hook.sh"
    # a hook reads the state the runtime writes to its stdin (crun reports a broken pipe otherwise)
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\necho \"$1\" >> {logdir}/order\n")
    hook.chmod(0o755)
    b = bundle_factory(["true"])
    b.config["mounts"].append({"destination": str(logdir), "type": "bind", "source": str(logdir),
                               "options": ["rbind", "rw"]})
    kinds = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    # startContainer runs inside the container, whose /bin/sh is busybox: the same script works there
    b.config["hooks"] = {k: [{"path": str(hook), "args": ["hook.sh", k]}] for k in kinds}
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    order = (logdir / "order").read_text().split()
    assert sorted(order) == sorted(kinds)
    assert order[:3] == kinds[:3]
    assert order[-1] == "poststop"
    assert order.index("startContainer") < order.index("poststop")


def test_mount_destination_symlink_stays_inside(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    b = bundle_factory(["sh", "-c", "ls -d /escape/x && echo mounted"])
    (b.rootfs / "escape").symlink_to(str(outside))  # absolute link: must resolve inside the rootfs
    b.config["mounts"].append({"destination": "/escape/x", "type": "tmpfs", "source": "tmpfs", "options": []})
    out = run(runtime, b)
    assert not (outside / "x").exists(), "a mount destination escaped the rootfs"
    # runc and dockyard create the mount point inside the rootfs; crun refuses the path instead.
    assert out.returncode != 0 or "mounted" in out.stdout


def test_dotdot_destination_stays_inside(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    b = bundle_factory(["true"])
    b.config["mounts"].append({"destination": "/../../../../escaped-dir", "type": "tmpfs",
                               "source": "tmpfs", "options": []})
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert not os.path.exists("/escaped-dir")
    assert (b.rootfs / "escaped-dir").is_dir()


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c.pop("process"), "process"),
    (lambda c: c["process"].__setitem__("args", "sh"), "args"),
    (lambda c: c["process"].__setitem__("cwd", "relative"), "cwd"),
    (lambda c: c["mounts"].append({"type": "tmpfs"}), "destination"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "bogus"),
])
def test_hostile_bundles_fail_cleanly(dockyard_runtime: Runtime, bundle_factory, mutate, needle) -> None:
    b = bundle_factory(["true"])
    mutate(b.config)
    b.write()
    cid = unique_id()
    out = dockyard_runtime("create", "--bundle", str(b.path), cid, check=False)
    assert out.returncode == 1
    assert needle in out.stderr
    assert dockyard_runtime.container_ids() == []
    assert not (dockyard_runtime.root / cid).exists()


def test_failed_create_leaves_nothing(dockyard_runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["/no/such/binary"]).write()
    cid = unique_id()
    out = dockyard_runtime("create", "--bundle", str(b.path), cid, check=False)
    assert out.returncode == 1
    assert 'exec: "/no/such/binary"' in out.stderr
    assert not (dockyard_runtime.root / cid).exists()
    cg = b.config["linux"]["cgroupsPath"].strip("/")
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{cg}")


def test_init_failing_before_the_cgroup_is_ready(dockyard_runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    """The init starts on its mounts while the runtime sets up the cgroup: when it fails first
    (a missing bind source; the runtime is slowed by 1500 device rules), its own error is
    reported, not the broken channel, and nothing is left."""
    b = bundle_factory(["true"])
    b.config["mounts"].insert(0, {"destination": "/mnt", "type": "bind", "source": str(tmp_path / "absent"),
                                  "options": ["rbind"]})
    b.config["linux"]["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 10, "minor": i, "access": "r"} for i in range(1500)]
    b.write()
    cid = unique_id()
    out = dockyard_runtime("run", "--bundle", str(b.path), cid, check=False)
    assert out.returncode == 1
    assert f"bind source {tmp_path / 'absent'} does not exist" in out.stderr
    assert not (dockyard_runtime.root / cid).exists()
    assert not os.path.exists(f"/sys/fs/cgroup/devices/{b.config['linux']['cgroupsPath'].strip('/')}")


def test_cgroup_failure_while_the_init_mounts(dockyard_runtime: Runtime, bundle_factory) -> None:
    """The runtime's cgroup set-up fails while the init is already building its rootfs: the
    error is the cgroup's, the init is gone and nothing is left."""
    b = bundle_factory(["true"])
    b.config["linux"]["resources"]["cpu"] = {"shares": 1}  # the kernel's minimum is 2
    b.write()
    cid = unique_id()
    out = dockyard_runtime("run", "--bundle", str(b.path), cid, check=False)
    assert out.returncode == 1
    assert "cpu shares 1 out of range" in out.stderr
    assert not (dockyard_runtime.root / cid).exists()
    assert not os.path.exists(f"/sys/fs/cgroup/cpu/{b.config['linux']['cgroupsPath'].strip('/')}")


def test_raising_hard_rlimit_is_explained(dockyard_runtime: Runtime, bundle_factory) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    b = bundle_factory(["true"])
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]
    out = run(dockyard_runtime, b)
    if out.returncode == 0:
        pytest.skip("this machine lets root raise hard limits")
    assert "RLIMIT_NOFILE" in out.stderr and "CAP_SYS_RESOURCE" in out.stderr


def test_no_pivot_uses_move_and_chroot(runtime: Runtime, bundle_factory) -> None:
    # The MS_MOVE + chroot path is what a ramfs root needs (pivot_root refuses it).
    b = bundle_factory(["sh", "-c", "cat /etc/passwd | head -1; ls /"]).write()
    out = runtime("run", "--no-pivot", "--bundle", str(b.path), unique_id(), check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("root:x:0:0:")
    assert "bin" in out.stdout.split()
