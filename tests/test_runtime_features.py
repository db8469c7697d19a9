"""Runtime features the matrix does not cover: hardening, user namespaces, devices, sysctls,
joined namespaces, mounts, the lifecycle CLI, exec, seccomp and process limits.

Most tests run under every installed runtime (dockyard-runtime, runc, crun) and assert what the
reference runtimes agree on; dockyard-only behaviour (messages, refusals) uses dockyard_runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bundles import Bundle, make_bundle
from tests.conftest import TEST_CGROUP_PARENT, Runtime, unique_id
from tests.console import ConsoleServer

# ---------------------------------------------------------------------------------------------
# helpers


def run(runtime: Runtime, bundle: Bundle, *flags: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """`run` a bundle in the foreground (the container is deleted when it exits)."""
    bundle.write()
    return runtime("run", *flags, "--bundle", str(bundle.path), unique_id(), check=False, timeout=timeout)


def start_detached(runtime: Runtime, bundle: Bundle, *flags: str) -> str:
    """`run -d` a bundle; return the id once the container runs."""
    bundle.write()
    cid = unique_id()
    runtime("run", "-d", *flags, "--bundle", str(bundle.path), cid)
    runtime.wait_status(cid, "running")
    return cid


def stop_and_reap(runtime: Runtime, cid: str) -> None:
    """Kill every process of a container and reap what comes back to pytest (the subreaper):
    a detached exec's process is pytest's child, and until it is reaped the container's init
    cannot finish exiting (runc's `delete` then waits in vain)."""
    runtime("kill", "--all", cid, "KILL", check=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        if json.loads(runtime("state", cid).stdout)["status"] == "stopped":
            return
        time.sleep(0.02)
    raise AssertionError(f"container {cid} did not stop")


def wait_for(predicate, timeout: float = 5, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cgroup_dir(bundle: Bundle, controller: str) -> Path:
    return Path("/sys/fs/cgroup") / controller / bundle.config["linux"]["cgroupsPath"].strip("/")


def open_fds(ls_output: str) -> set[int]:
    """fd numbers from `ls -l /proc/self/fd`, without the directory fd ls itself reads through."""
    fds = set()
    for line in ls_output.splitlines():
        m = re.search(r" (\d+) -> (.*)$", line)
        if m and not re.fullmatch(r"/proc/\d+/fd", m.group(2)):
            fds.add(int(m.group(1)))
    return fds


def run_with_fd3(runtime: Runtime, fd3_file: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a runtime command with fd 3 open on fd3_file (for --preserve-fds)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = subprocess.run(["sh", "-c", 'exec "$@" 3<"$F"', "sh", *runtime.cmd(*args)],
                              env={**os.environ, "F": str(fd3_file)}, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=err, timeout=timeout).returncode
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, code, out.read().decode(), err.read().decode())


def seccomp_arches() -> list[str]:
    return {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}.get(os.uname().machine, [])


# ---------------------------------------------------------------------------------------------
# 1. hardening


def test_no_host_fds_leak_into_the_container(runtime: Runtime, bundle_factory) -> None:
    out = run(runtime, bundle_factory(["ls", "-l", "/proc/self/fd"]))
    assert out.returncode == 0, out.stderr
    assert open_fds(out.stdout) == {0, 1, 2}, out.stdout


def test_preserve_fds_passes_exactly_one_extra_fd(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    secret = tmp_path / "passed.txt"
    secret.write_text("through fd 3\n")
    b = bundle_factory(["sh", "-c", "ls -l /proc/self/fd; cat <&3"]).write()
    out = run_with_fd3(runtime, secret, "run", "--preserve-fds", "1", "--bundle", str(b.path), unique_id())
    assert out.returncode == 0, out.stderr
    assert open_fds(out.stdout) == {0, 1, 2, 3}, out.stdout
    assert "through fd 3" in out.stdout


def test_no_host_fds_leak_into_exec(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    cid = start_detached(runtime, bundle_factory(["sleep", "100"]))
    out = runtime("exec", cid, "ls", "-l", "/proc/self/fd")
    assert open_fds(out.stdout) == {0, 1, 2}, out.stdout
    secret = tmp_path / "passed.txt"
    secret.write_text("exec fd 3\n")
    out = run_with_fd3(runtime, secret, "exec", "--preserve-fds", "1", cid, "sh", "-c", "ls -l /proc/self/fd; cat <&3")
    assert out.returncode == 0, out.stderr
    assert open_fds(out.stdout) == {0, 1, 2, 3}, out.stdout
    assert "exec fd 3" in out.stdout


# Walk up from the working directory: inside the container, ".." ends at the container's root.
CWD_INSIDE = ('d=.; i=0; while [ $i -lt 40 ]; do '
              '[ "$(stat -c %d:%i $d)" = "$(stat -c %d:%i /)" ] && { echo cwd-inside; exit 0; }; '
              'd=$d/..; i=$((i+1)); done; echo cwd-outside')


@pytest.mark.parametrize("fd", [3, 4, 5, 6, 7, 8, 9, 10, 15])
def test_cwd_through_proc_self_fd_stays_inside(runtime: Runtime, bundle_factory, fd: int) -> None:
    # CVE-2024-21626: a runtime fd left open to a host directory made the container's cwd escape.
    b = bundle_factory(["sh", "-c", CWD_INSIDE])
    b.config["process"]["cwd"] = f"/proc/self/fd/{fd}"
    out = run(runtime, b)
    assert "cwd-outside" not in out.stdout
    assert out.returncode != 0 or "cwd-inside" in out.stdout, out
    if runtime.name == "dockyard" and out.returncode != 0:
        assert "cwd" in out.stderr and "Error:" not in out.stderr, out.stderr


def test_exec_cwd_through_proc_self_fd_stays_inside(runtime: Runtime, bundle_factory) -> None:
    cid = start_detached(runtime, bundle_factory(["sleep", "100"]))
    for fd in (3, 4, 5, 6, 7, 8, 9, 10):
        out = runtime("exec", "--cwd", f"/proc/self/fd/{fd}", cid, "sh", "-c", CWD_INSIDE, check=False)
        assert "cwd-outside" not in out.stdout, (fd, out)
        assert out.returncode != 0 or "cwd-inside" in out.stdout, (fd, out)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# Runs in the container while a runtime helper is blocked inside it: for every visible process,
# report whether its executable can be resolved (readlink) or opened for writing.
PROBE_EXE = r"""
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  if t=$(readlink $d/exe 2>/dev/null); then echo "readable $p $t"; else echo "denied $p"; fi
  ( : >> $d/exe ) 2>/dev/null && echo "writable $p"
done > /tmp/probe.out
echo probed > /tmp/probed
"""


def test_exec_helpers_are_not_dumpable(runtime: Runtime, bundle_factory) -> None:
    """CVE-2019-5736: while `exec` is entering the container, no process inside may reach the
    runtime's executable through /proc/<pid>/exe. The container makes /etc/passwd a fifo, so the
    runtime (which reads it for $HOME before it execs) blocks inside the container."""
    script = ("rm /etc/passwd; mkfifo /etc/passwd; touch /tmp/ready; "
              "while [ ! -e /tmp/go ]; do sleep 0.02; done; " + PROBE_EXE +
              "echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd; exec sleep 100")
    b = bundle_factory(["sh", "-c", script])
    python = os.path.realpath(sys.executable)
    before = _sha256(python)
    cid = start_detached(runtime, b)
    tmp = b.rootfs / "tmp"
    wait_for(lambda: (tmp / "ready").exists(), what="the fifo")
    procs_file = cgroup_dir(b, "pids") / "cgroup.procs"
    container_pids = set(procs_file.read_text().split())
    exe_of_init = os.readlink(f"/proc/{json.loads(runtime('state', cid).stdout)['pid']}/exe")
    # No HOME in the environment: every runtime looks it up in the container's /etc/passwd.
    proc = subprocess.Popen(runtime.cmd("exec", cid, "sh", "-c", "echo exec-ran"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        def helper_inside() -> bool:
            for pid in set(procs_file.read_text().split()) - container_pids:
                try:
                    if os.readlink(f"/proc/{pid}/exe") != exe_of_init:
                        return True
                except OSError:
                    pass
            return False
        wait_for(helper_inside, what="the exec helper to enter the container")
        time.sleep(0.2)  # let it reach the fifo
        (tmp / "go").touch()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert b"exec-ran" in out, err
    report = (tmp / "probe.out").read_text()
    assert_no_runtime_exe(report)
    assert any(line.startswith("denied ") for line in report.splitlines()), f"no helper was seen: {report}"
    assert _sha256(python) == before


def assert_no_runtime_exe(report: str) -> None:
    """No process may be writable, and the only executables readable are the container's own
    (runc and crun execute a sealed memfd copy of themselves, which is harmless to read)."""
    assert "writable" not in report, report
    for line in report.splitlines():
        if line.startswith("readable "):
            # the container's busybox, under whichever applet name (hard link) ran it
            assert line.split(" ", 2)[2].startswith("/bin/") or "memfd:" in line, report


# A process image run through /proc/self/exe: for a runtime that execs its user process from
# a host binary, the kernel resolves this to the runtime's own executable (CVE-2019-5736).
# The fake stdlib makes a Python interpreter block at start-up, until /tmp/hold is written.
SELF_EXE_SETUP = (
    "mkdir -p /usr/lib/python3.11/encodings && touch /usr/lib/python3.11/os.py && "
    "printf 'import posix\\nposix.read(posix.open(\"/tmp/hold\", posix.O_RDONLY), 1)\\n' "
    "> /usr/lib/python3.11/encodings/__init__.py && mkfifo /tmp/hold && "
    "printf '#!/proc/self/exe\\n' > /bin/evil && chmod +x /bin/evil && touch /tmp/ready; exec sleep 100")


def test_exec_through_proc_self_exe(runtime: Runtime, bundle_factory) -> None:
    """exec of a "#!/proc/self/exe" script: the kernel refuses it (ENOENT) under all three
    runtimes here, since each one's executable is out of the container's reach; should it ever
    run, the runtime's binary must still not be exposed to the container."""
    b = bundle_factory(["sh", "-c", SELF_EXE_SETUP])
    python = os.path.realpath(sys.executable)
    before = _sha256(python)
    cid = start_detached(runtime, b)
    wait_for(lambda: (b.rootfs / "tmp/ready").exists(), what="the set-up")
    proc = subprocess.Popen(runtime.cmd("exec", cid, "/bin/evil"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        report = runtime("exec", cid, "sh", "-c", PROBE_EXE + "cat /tmp/probe.out").stdout
        if proc.poll() is None:
            runtime("exec", "-d", cid, "sh", "-c", "echo x > /tmp/hold")
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    stop_and_reap(runtime, cid)
    assert report.startswith("readable 1 /bin/"), report  # pid 1: the container's own busybox
    assert_no_runtime_exe(report)
    assert _sha256(python) == before


def test_proc_symlink_to_host_root_is_refused(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "test -e /proc/self/status && test -x /bin/busybox && echo fine"])
    (b.rootfs / "proc").rmdir()
    (b.rootfs / "proc").symlink_to("/")
    out = run(runtime, b)
    # All three refuse to mount procfs through a symlink (which would cover the rootfs itself).
    assert out.returncode != 0, out
    assert (b.rootfs / "bin/busybox").exists()
    if runtime.name == "dockyard":
        assert "must be mounted on an ordinary directory" in out.stderr and "/proc" in out.stderr, out.stderr


def test_proc_relative_symlink_is_refused(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["true"])
    (b.rootfs / "proc").rmdir()
    (b.rootfs / "proc").symlink_to("../../../../../../..")
    assert run(runtime, b).returncode != 0
    assert (b.rootfs / "bin/busybox").exists() and os.path.islink(b.rootfs / "proc")


def test_bind_destination_through_dotdot_stays_inside(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    src = tmp_path / "bindsrc"
    src.mkdir()
    (src / "hello").write_text("hi\n")
    b = bundle_factory(["cat", "/escaped-bind/hello"])
    b.config["mounts"].append({"destination": "/tmp/../../../../escaped-bind", "type": "bind",
                               "source": str(src), "options": ["rbind", "ro"]})
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hi\n"
    assert not os.path.exists("/escaped-bind")
    assert (b.rootfs / "escaped-bind").is_dir()


# ---------------------------------------------------------------------------------------------
# 2. user namespaces

HOST_ID = 100000


@pytest.fixture
def userns_bundle(busybox_template: Path) -> Iterator[tuple[Bundle, Path]]:
    """A bundle owned by host uid 100000 (container root), in a directory that uid can traverse,
    with a writable bind mount at /shared; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-userns-"))
    try:
        os.chmod(base, 0o755)
        b = make_bundle(base / "bundle", busybox_template, ["true"])
        b.config["linux"]["cgroupsPath"] = f"{TEST_CGROUP_PARENT}/{uuid.uuid4().hex[:12]}"
        for root, dirs, files in os.walk(b.rootfs):
            for name in dirs + files:
                st = os.lstat(os.path.join(root, name))
                os.lchown(os.path.join(root, name), HOST_ID + st.st_uid, HOST_ID + st.st_gid)
        os.chown(b.rootfs, HOST_ID, HOST_ID)
        shared = base / "shared"
        shared.mkdir()
        os.chown(shared, HOST_ID, HOST_ID)
        b.config["linux"]["namespaces"].append({"type": "user"})
        b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
        b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
        b.config["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared),
                                   "options": ["rbind", "rw"]})
        yield b.write(), shared
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_user_namespace_mapping(runtime: Runtime, userns_bundle) -> None:
    b, shared = userns_bundle
    b.config["process"]["args"] = ["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
                                   "touch /shared/made-inside; ls -ln /dev/null"]
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(HOST_ID), "65536"]
    assert lines[3].split() == ["0", str(HOST_ID), "65536"]
    st = (shared / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (HOST_ID, HOST_ID)


def test_user_namespace_exec(runtime: Runtime, userns_bundle) -> None:
    b, shared = userns_bundle
    b.config["process"]["args"] = ["sleep", "100"]
    cid = start_detached(runtime, b)
    out = runtime("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map; touch /shared/from-exec")
    lines = out.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(HOST_ID), "65536"]
    assert (shared / "from-exec").stat().st_uid == HOST_ID


# ---------------------------------------------------------------------------------------------
# 3. devices


def test_config_devices_and_defaults(runtime: Runtime, bundle_factory) -> None:
    paths = ["/dev/fuse", "/dev/myfifo", "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
             "/dev/urandom", "/dev/tty"]
    b = bundle_factory(["stat", "-c", "%n %F %t:%T %a %u:%g", *paths])
    b.config["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1000, "gid": 5},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o600, "uid": 0, "gid": 0},
    ]
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    seen = {line.split()[0]: line.split(" ", 1)[1] for line in out.stdout.splitlines()}
    assert seen["/dev/fuse"] == "character special file a:e5 640 1000:5"
    assert seen["/dev/myfifo"] == "fifo 0:0 600 0:0"
    for path, (ma, mi) in {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
                           "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}.items():
        assert seen[path] == f"character special file {ma:x}:{mi:x} 666 0:0", (path, seen[path])


def test_device_paths_stay_in_the_rootfs(dockyard_runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    """Devices are made relative to their directory's descriptor, opened inside the rootfs: a
    nested path gets its directories (0755), a symlink in the path resolves inside the rootfs,
    and the standard /dev links are there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    b = bundle_factory(["sh", "-c", "stat -c '%n %F %a' /dev/dy/sub /dev/dy/sub/null2 /escape/null3; "
                        "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done"])
    (b.rootfs / "escape").symlink_to(str(outside))  # absolute: must resolve inside the rootfs
    b.config["linux"]["devices"] = [
        {"path": "/dev/dy/sub/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
        {"path": "/escape/null3", "type": "c", "major": 1, "minor": 3, "fileMode": 0o644},
    ]
    out = run(dockyard_runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "/dev/dy/sub directory 755", "/dev/dy/sub/null2 character special file 600",
        "/escape/null3 character special file 644",
        "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx"]
    assert list(outside.iterdir()) == []
    assert (b.rootfs / str(outside).lstrip("/") / "null3").exists()


def test_config_device_is_allowed_by_the_device_cgroup(runtime: Runtime, bundle_factory) -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no fuse device on this host")
    b = bundle_factory(["sh", "-c", "exec 3<>/dev/fuse && echo opened"])
    b.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}]
    # The node alone is not enough (as runc and crun): using it takes a device cgroup rule as well.
    out = run(runtime, b)
    assert "Operation not permitted" in out.stderr, out
    b.config["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    out = run(runtime, b)
    assert "opened" in out.stdout, out


def test_device_cgroup_denies_other_devices(runtime: Runtime, bundle_factory) -> None:
    # mknod is allowed ("c *:* m", as runc), reading /dev/mem (1:1) is not.
    b = bundle_factory(["sh", "-c", "mknod /tmp/mem c 1 1 && echo made; head -c 1 /tmp/mem > /dev/null"])
    caps = b.config["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        caps[key] = caps[key] + ["CAP_MKNOD"]
    out = run(runtime, b)
    assert "made" in out.stdout, out
    assert out.returncode != 0
    assert "Operation not permitted" in out.stderr, out.stderr


# ---------------------------------------------------------------------------------------------
# 4. sysctl, domainname, cgroup namespace


def test_sysctls_in_new_namespaces(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmax",
                        "/proc/sys/kernel/domainname"])
    b.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "12345678"}
    b.config["domainname"] = "example.test"
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    # runc 1.1 does not implement domainname (added in runc 1.2)
    domain = "(none)" if runtime.name == "runc" else "example.test"
    assert out.stdout.split() == ["1", "12345678", domain]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


@pytest.mark.parametrize("key, path, drop", [
    ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", "network"),
    ("kernel.shmmax", "/proc/sys/kernel/shmmax", "ipc"),
    ("kernel.panic", "/proc/sys/kernel/panic", None),
    ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", "host-path"),
])
def test_sysctl_of_the_host_namespace_is_refused(runtime: Runtime, bundle_factory, key, path, drop) -> None:
    # The value is the host's own: a runtime that wrongly writes it changes nothing.
    host_value = _read(path)
    b = bundle_factory(["true"])
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != drop]
    if drop == "host-path":  # "joining" the host's own network namespace
        for ns in b.config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{os.getpid()}/ns/net"
    b.config["linux"]["sysctl"] = {key: host_value}
    out = run(runtime, b)
    if drop == "host-path" and runtime.name == "crun":
        pytest.skip("crun 1.8 does not notice a joined namespace that is the host's")
    assert out.returncode != 0, f"{key} accepted without its own namespace"
    assert _read(path) == host_value
    if runtime.name == "dockyard":
        assert key in out.stderr and "namespace" in out.stderr, out.stderr


def test_domainname_needs_a_uts_namespace(runtime: Runtime, bundle_factory) -> None:
    host = _read("/proc/sys/kernel/domainname")
    b = bundle_factory(["true"])
    b.config.pop("hostname", None)
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "uts"]
    b.config["domainname"] = "leaked.example"
    try:
        out = run(runtime, b)
        assert _read("/proc/sys/kernel/domainname") == host, "the host's domainname was changed"
        # runc 1.1 accepts the config and ignores the domainname (runc 1.2 refuses it, as crun does).
        if runtime.name != "runc":
            assert out.returncode != 0
    finally:
        with open("/proc/sys/kernel/domainname", "w") as f:
            f.write(host)


def test_cgroup_namespace_root(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["cat", "/proc/self/cgroup"])
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and all(line.rsplit(":", 1)[1] == "/" for line in lines), out.stdout


@pytest.mark.parametrize("cgroupns", [True, False])
def test_cgroup_mount_shows_the_container_cgroup(runtime: Runtime, bundle_factory, cgroupns: bool) -> None:
    b = bundle_factory(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"])
    b.config["linux"]["resources"] = {"memory": {"limit": 48 * 1024 * 1024}, "pids": {"limit": 77}}
    if not cgroupns:
        b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(48 * 1024 * 1024), "77"]


# ---------------------------------------------------------------------------------------------
# 5. joining a network namespace by path


@pytest.fixture
def netns_holder() -> Iterator[int]:
    """A sleeping process in a new network namespace with loopback up; killed afterwards."""
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep 100"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{proc.pid}/ns/net") != os.readlink("/proc/self/ns/net")
                 and _read(f"/proc/{proc.pid}/comm") == "sleep", what="the netns holder")
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_join_network_namespace_by_path(runtime: Runtime, bundle_factory, netns_holder: int) -> None:
    path = f"/proc/{netns_holder}/ns/net"
    b = bundle_factory(["sh", "-c", "readlink /proc/self/ns/net; cat /sys/class/net/lo/operstate"])
    for ns in b.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = path
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [os.readlink(path), "unknown"]  # lo is up ("unknown" for loopback)


def test_join_named_network_namespace(runtime: Runtime, bundle_factory) -> None:
    name = f"dytest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        path = f"/run/netns/{name}"
        b = bundle_factory(["readlink", "/proc/self/ns/net"])
        for ns in b.config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = path
        out = run(runtime, b)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"net:[{os.stat(path).st_ino}]"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


# ---------------------------------------------------------------------------------------------
# 6. bind mounts and tmpfs


def test_bind_mounts(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "f").write_text("read-only source\n")
    host_file = tmp_path / "file.conf"
    host_file.write_text("file bind\n")
    script = ("cat /mnt/ro/f; touch /mnt/ro/new 2>&1 || echo ro-refused; echo written > /mnt/rw/out; "
              "cat /etc/app.conf")
    b = bundle_factory(["sh", "-c", script])
    b.config["mounts"] += [
        {"destination": "/mnt/ro", "type": "bind", "source": str(ro), "options": ["rbind", "ro"]},
        {"destination": "/mnt/rw", "type": "bind", "source": str(rw), "options": ["rbind", "rw"]},
        {"destination": "/etc/app.conf", "type": "bind", "source": str(host_file), "options": ["bind", "ro"]},
    ]
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert "read-only source" in out.stdout
    assert "Read-only file system" in out.stdout and "ro-refused" in out.stdout
    assert not (ro / "new").exists()
    assert (rw / "out").read_text() == "written\n"
    assert "file bind" in out.stdout
    assert (b.rootfs / "etc/app.conf").read_text() == ""  # the mount point only


def test_tmpfs_size_and_mode(runtime: Runtime, bundle_factory) -> None:
    script = ("stat -c %a /scratch; dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>&1; "
              "echo dd=$?")
    b = bundle_factory(["sh", "-c", script])
    b.config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "size=1m", "mode=1777"]})
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "1777"
    assert "No space left on device" in out.stdout
    assert lines[-1] == "dd=1"


@pytest.mark.parametrize("propagation", ["rslave", "rprivate", "slave", "private"])
def test_bind_propagation_options_accepted(runtime: Runtime, bundle_factory, tmp_path: Path, propagation) -> None:
    src = tmp_path / "prop"
    src.mkdir()
    b = bundle_factory(["sh", "-c", "grep ' /mnt/prop ' /proc/self/mountinfo"])
    b.config["mounts"].append({"destination": "/mnt/prop", "type": "bind", "source": str(src),
                               "options": ["rbind", propagation]})
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    fields = out.stdout.split(" - ")[0].split()
    tags = [f for f in fields[6:] if ":" in f]
    assert not any(t.startswith("shared:") for t in tags), out.stdout
    if "private" in propagation:
        assert tags == [], out.stdout


# ---------------------------------------------------------------------------------------------
# 7. lifecycle CLI


def test_run_detached_state_and_pid_file(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    b = bundle_factory(["sleep", "100"]).write()
    cid = unique_id()
    pid_file = tmp_path / "init.pid"
    runtime("run", "-d", "--pid-file", str(pid_file), "--bundle", str(b.path), cid)
    state = runtime.wait_status(cid, "running")
    assert state["id"] == cid and state["pid"] > 0
    assert state["bundle"] == str(b.path)
    assert int(pid_file.read_text()) == state["pid"]
    assert _read(f"/proc/{state['pid']}/comm") == "sleep"


def test_create_pid_file(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    b = bundle_factory(["sleep", "100"]).write()
    cid = unique_id()
    pid_file = tmp_path / "created.pid"
    runtime("create", "--pid-file", str(pid_file), "--bundle", str(b.path), cid)
    state = runtime.wait_status(cid, "created")
    assert int(pid_file.read_text()) == state["pid"]


def test_kill_all(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "sleep 100 & sleep 100 & wait"])
    cid = start_detached(runtime, b)
    procs = cgroup_dir(b, "pids") / "cgroup.procs"
    wait_for(lambda: len(procs.read_text().split()) == 3, what="three processes")
    runtime("kill", "--all", cid, "KILL")
    runtime.wait_status(cid, "stopped")
    wait_for(lambda: procs.read_text().split() == [], what="an empty cgroup")


def test_delete_created_container_without_force(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"]).write()
    cid = unique_id()
    runtime("create", "--bundle", str(b.path), cid)
    pid = runtime.wait_status(cid, "created")["pid"]
    runtime("delete", cid)
    assert cid not in runtime.container_ids()
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _read(f"/proc/{pid}/stat").split()[2] == "Z",
             what="the init to die")
    wait_for(lambda: not cgroup_dir(b, "pids").exists(), what="the cgroup to go")


def test_delete_force_of_missing_container(runtime: Runtime) -> None:
    assert runtime("delete", "--force", unique_id("missing"), check=False).returncode == 0
    assert runtime("delete", unique_id("missing"), check=False).returncode != 0


def test_list_formats(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"])
    cid = start_detached(runtime, b)
    table = runtime("list").stdout.splitlines()
    header = table[0].split()
    # crun names the first column NAME and the fourth "BUNDLE PATH"
    assert header[0] in ("ID", "NAME") and header[1:3] == ["PID", "STATUS"] and "CREATED" in header
    if runtime.name != "crun":
        assert header == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    row = next(line.split() for line in table[1:] if line.split()[0] == cid)
    assert row[2] == "running" and row[3] == str(b.path)
    entries = json.loads(runtime("list", "--format", "json").stdout)
    entry = next(e for e in entries if e["id"] == cid)
    assert entry["status"] == "running" and entry["pid"] > 0
    assert runtime("list", "-q").stdout.split() == [cid]


def test_ps_table(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "sleep 123 & wait"])
    cid = start_detached(runtime, b)
    wait_for(lambda: len((cgroup_dir(b, "pids") / "cgroup.procs").read_text().split()) == 2, what="sleep")
    pids = json.loads(runtime("ps", "--format", "json", cid).stdout)
    assert sorted(pids) == sorted(int(p) for p in (cgroup_dir(b, "pids") / "cgroup.procs").read_text().split())
    lines = runtime("ps", cid).stdout.splitlines()
    assert len(lines) == 3, lines
    assert "PID" in lines[0].split()
    if runtime.name == "crun":
        assert sorted(int(line) for line in lines[1:]) == sorted(pids)  # crun prints the pids alone
    else:  # runc and dockyard filter `ps -ef`
        assert "CMD" in lines[0].split()
        assert any("sleep 123" in line for line in lines[1:]), lines


def test_update_running_container(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"])
    b.config["linux"]["resources"] = {"pids": {"limit": 100}, "memory": {"limit": 128 * 1024 * 1024}}
    cid = start_detached(runtime, b)
    runtime("update", "--pids-limit", "5", "--memory", str(64 * 1024 * 1024), cid)
    assert _read(str(cgroup_dir(b, "pids") / "pids.max")) == "5"
    assert _read(str(cgroup_dir(b, "memory") / "memory.limit_in_bytes")) == str(64 * 1024 * 1024)
    if runtime.name != "crun":  # crun takes plain numbers only
        runtime("update", "--memory", "32m", cid)
        assert _read(str(cgroup_dir(b, "memory") / "memory.limit_in_bytes")) == str(32 * 1024 * 1024)


def test_pause_resume(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"])
    cid = start_detached(runtime, b)
    runtime("pause", cid)
    runtime.wait_status(cid, "paused")
    assert _read(str(cgroup_dir(b, "freezer") / "freezer.state")) == "FROZEN"
    runtime("resume", cid)
    runtime.wait_status(cid, "running")
    assert _read(str(cgroup_dir(b, "freezer") / "freezer.state")) == "THAWED"
    if runtime.name != "crun":  # crun resumes a running container without complaint
        assert runtime("resume", cid, check=False).returncode != 0


def test_features_document(runtime: Runtime) -> None:
    out = runtime("features", check=False)
    if out.returncode != 0 and runtime.name == "crun":
        pytest.skip("this crun has no `features` command")
    doc = json.loads(out.stdout)
    assert "prestart" in doc["hooks"] and "poststop" in doc["hooks"]
    assert {"pid", "network", "mount", "user", "cgroup"} <= set(doc["linux"]["namespaces"])
    seccomp = doc["linux"]["seccomp"]
    assert seccomp["enabled"] is True
    assert "SCMP_ACT_ERRNO" in seccomp["actions"]
    assert "SCMP_ARCH_X86_64" in seccomp["archs"] or os.uname().machine != "x86_64"


def test_spec_roundtrip(runtime: Runtime, tmp_path: Path, busybox_template: Path) -> None:
    bundle = tmp_path / "specbundle"
    bundle.mkdir()
    runtime("spec", "--bundle", str(bundle))
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["sh"]
    again = runtime("spec", "--bundle", str(bundle), check=False)
    assert again.returncode != 0
    assert "exists" in again.stderr
    subprocess.run(["cp", "-a", str(busybox_template), str(bundle / "rootfs")], check=True)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo from-spec"]
    config["linux"]["cgroupsPath"] = f"{TEST_CGROUP_PARENT}/{uuid.uuid4().hex[:12]}"
    (bundle / "config.json").write_text(json.dumps(config))
    out = runtime("run", "--bundle", str(bundle), unique_id(), check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from-spec"


def test_log_file_json(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    out = subprocess.run([runtime.argv0, "--root", str(runtime.root), "--log", str(log), "--log-format", "json",
                          "state", unique_id("nope")], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [r for r in records if r.get("level") == "error"]
    assert errors, records
    assert "msg" in errors[-1] and "time" in errors[-1]


def test_systemd_cgroup_is_refused(dockyard_runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["true"]).write()
    for flags in (["--systemd-cgroup"], ["--cgroup-manager", "systemd"]):
        out = subprocess.run([dockyard_runtime.argv0, "--root", str(dockyard_runtime.root), *flags, "create",
                              "--bundle", str(b.path), unique_id()], capture_output=True, text=True, timeout=10)
        assert out.returncode == 1
        assert "systemd cgroup driver is not supported" in out.stderr
    assert dockyard_runtime.container_ids() == []


@pytest.mark.parametrize("argv, needle", [
    (["--bogus", "list"], "flag provided but not defined: --bogus"),
    (["list", "--bogus"], "flag provided but not defined: --bogus"),
    (["create", "--no-such-flag", "x"], "flag provided but not defined: --no-such-flag"),
    (["frobnicate"], "unknown command"),
    (["kill"], "missing <id>"),
    (["list", "--format", "yaml"], "invalid value"),
])
def test_usage_errors(dockyard_runtime: Runtime, argv: list[str], needle: str) -> None:
    out = dockyard_runtime(*argv, check=False)
    assert out.returncode == 1
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------------------
# 8. exec


def test_exec_tty_console_socket(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    cid = start_detached(runtime, bundle_factory(["sleep", "100"]))
    server = ConsoleServer(tmp_path / "exec-console.sock")
    try:
        # runc accepts a console socket only when it detaches.
        runtime("exec", "-d", "--tty", "--console-socket", server.path, cid, "sh", "-c", "tty; echo done")
        server.receive()
        out = server.read_until_eof().decode().replace("\r", "")
    finally:
        server.close()
    stop_and_reap(runtime, cid)
    lines = out.split("\n")
    assert re.fullmatch(r"/dev/pts/\d+", lines[0]), out
    assert lines[1] == "done"


def test_exec_process_file(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    cid = start_detached(runtime, bundle_factory(["sleep", "100"]))
    process = {"terminal": False, "user": {"uid": 1000, "gid": 1000, "additionalGids": [1001]},
               "args": ["sh", "-c", "id; pwd; echo $FOO; umask"], "env": ["PATH=/bin:/usr/bin", "FOO=from-json"],
               "cwd": "/home/tester", "noNewPrivileges": True}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    out = runtime("exec", "--process", str(path), cid)
    assert out.stdout.splitlines()[:3] == ["uid=1000(tester) gid=1000(tester) groups=1001(extra)", "/home/tester",
                                           "from-json"]


def test_exec_into_stopped_container_fails(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["true"]).write()
    cid = unique_id()
    runtime("run", "-d", "--bundle", str(b.path), cid)
    runtime.wait_status(cid, "stopped")
    out = runtime("exec", cid, "true", check=False)
    assert out.returncode != 0
    assert re.search(r"stopped|not running", out.stderr), out.stderr


def test_exec_into_created_container_fails(dockyard_runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["true"]).write()
    cid = unique_id()
    dockyard_runtime("create", "--bundle", str(b.path), cid)
    out = dockyard_runtime("exec", cid, "true", check=False)
    assert out.returncode == 1
    assert "cannot exec in a created container" in out.stderr


def test_exec_detached(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"])
    cid = start_detached(runtime, b)
    t0 = time.monotonic()
    runtime("exec", "-d", cid, "sh", "-c", "echo started > /tmp/exec-d; exec sleep 77")
    assert time.monotonic() - t0 < 3
    wait_for(lambda: (b.rootfs / "tmp/exec-d").exists(), what="the detached exec")
    out = runtime("exec", cid, "ps", "-o", "args")
    stop_and_reap(runtime, cid)
    assert "sleep 77" in out.stdout


def test_failed_exec_leaves_no_zombie(runtime: Runtime, bundle_factory) -> None:
    # A process that fails before its exec must be reaped by the runtime: left as a zombie in the
    # container's pid namespace, it keeps the killed init from exiting and `delete` waits.
    cid = start_detached(runtime, bundle_factory(["sleep", "100"]))
    assert runtime("exec", cid, "/no/such/binary", check=False).returncode != 0
    assert runtime("exec", "-d", cid, "/no/such/binary", check=False).returncode != 0
    t0 = time.monotonic()
    runtime("delete", "--force", cid)
    assert time.monotonic() - t0 < 3


def test_exec_exit_codes(runtime: Runtime, bundle_factory) -> None:
    cid = start_detached(runtime, bundle_factory(["sleep", "100"]))
    assert runtime("exec", cid, "sh", "-c", "exit 42", check=False).returncode == 42
    assert runtime("exec", cid, "sh", "-c", "kill -9 $$", check=False).returncode == 137
    assert runtime("exec", cid, "sh", "-c", "kill -15 $$", check=False).returncode == 143


# ---------------------------------------------------------------------------------------------
# 9. seccomp end to end


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_errno_rule(runtime: Runtime, bundle_factory, nnp: bool) -> None:
    b = bundle_factory(["sh", "-c", "mkdir /x; touch /y && echo touched"])
    b.config["process"]["noNewPrivileges"] = nnp
    b.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": seccomp_arches(),
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    out = run(runtime, b)
    assert "Operation not permitted" in out.stderr, out
    assert "touched" in out.stdout
    assert not (b.rootfs / "x").exists()
    # exec gets the container's filter too
    b.config["process"]["args"] = ["sleep", "100"]
    cid = start_detached(runtime, b)
    out = runtime("exec", cid, "mkdir", "/z", check=False)
    assert out.returncode != 0 and "Operation not permitted" in out.stderr


def test_seccomp_program_cache(runtime: Runtime, bundle_factory) -> None:
    """dockyard-runtime stores a compiled profile's BPF program under its root and loads it from
    there for the next container with the same profile (a damaged file is recompiled)."""
    if runtime.name != "dockyard":
        pytest.skip("the program cache is dockyard-runtime's")
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": seccomp_arches(),
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    b = bundle_factory(["sh", "-c", "mkdir /x || echo refused"])
    b.config["linux"]["seccomp"] = profile
    assert "refused" in run(runtime, b).stdout
    cache = runtime.root / ".seccomp-cache"
    (stored,) = cache.iterdir()
    assert stored.stat().st_size % 8 == 0 and runtime("list", "-q").stdout.strip() == ""
    assert "refused" in run(runtime, b).stdout  # from the cache
    # the stored program is what gets loaded: swap in an allow-everything program (ret ALLOW)
    stored.write_bytes((0x06).to_bytes(2, "little") + b"\0\0" + (0x7FFF0000).to_bytes(4, "little"))
    out = run(runtime, b)
    assert "refused" not in out.stdout and out.returncode == 0
    stored.write_bytes(b"\0" * 5)  # not a whole program: ignored and replaced
    assert "refused" in run(runtime, b).stdout
    assert stored.stat().st_size % 8 == 0 and stored.stat().st_size > 8


# ---------------------------------------------------------------------------------------------
# 10. rlimits and oom_score_adj


def test_more_rlimits(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "ulimit -u; ulimit -Hu; ulimit -c; ulimit -Hc"])
    b.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 1024 * 1024},
    ]
    out = run(runtime, b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["300", "400", "0", "2048"]  # ash counts core size in 512-byte blocks


def test_oom_score_adj(runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sleep", "100"])
    b.config["process"]["oomScoreAdj"] = 500
    cid = start_detached(runtime, b)
    pid = json.loads(runtime("state", cid).stdout)["pid"]
    assert _read(f"/proc/{pid}/oom_score_adj") == "500"
    out = runtime("exec", cid, "cat", "/proc/self/oom_score_adj")
    # runc and dockyard exec with the container's process settings; crun 1.8 leaves it inherited
    assert out.stdout.strip() == ("0" if runtime.name == "crun" else "500")


def test_cwd_through_a_preserved_host_directory_fd(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    # The caller hands the container a host directory as fd 3, and the config makes it the cwd.
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    b = bundle_factory(["sh", "-c", CWD_INSIDE])
    b.config["process"]["cwd"] = "/proc/self/fd/3"
    b.write()
    out = run_with_fd3(runtime, hostdir, "run", "--preserve-fds", "1", "--bundle", str(b.path), unique_id())
    if runtime.name == "crun":
        pytest.skip("crun 1.8 does not check where the cwd is (runc and dockyard refuse it)")
    assert "cwd-outside" not in out.stdout
    assert out.returncode != 0, out
    if runtime.name == "dockyard":
        assert "cwd '/proc/self/fd/3' is outside the container root" in out.stderr, out.stderr


def test_exec_cwd_through_a_preserved_host_directory_fd(runtime: Runtime, bundle_factory, tmp_path: Path) -> None:
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    cid = start_detached(runtime, bundle_factory(["sleep", "100"]))
    out = run_with_fd3(runtime, hostdir, "exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3", cid,
                       "sh", "-c", CWD_INSIDE)
    if runtime.name == "crun":
        pytest.skip("crun 1.8 does not check where the cwd is (runc and dockyard refuse it)")
    assert "cwd-outside" not in out.stdout
    assert out.returncode != 0, out
    if runtime.name == "dockyard":
        assert "outside the container root" in out.stderr, out.stderr
