"""The two back ends of dockyard.runtime.syscalls: the C extension `_linux` (built by `make setup`)
and the ctypes fallback. Both must return the same results and errors for the same calls, and a
container run with the fallback forced (DOCKYARD_RUNTIME_CTYPES=1) must look the same from inside."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dockyard.runtime import syscalls, syscalls_ctypes
from tests.conftest import Runtime, unique_id
from tests.test_runtime_features import seccomp_arches

PROJECT = Path(__file__).resolve().parent.parent


def c_backend() -> ModuleType:
    from dockyard.runtime import _linux

    return _linux


BACKENDS = {"c": c_backend, "ctypes": lambda: syscalls_ctypes}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> ModuleType:
    return BACKENDS[request.param]()


def in_child(fn) -> bytes:
    """Run fn() in a forked child (namespaces and capabilities change there only); return what it
    wrote to its pipe, or raise with the child's error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.write(w, fn())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(w, f"ERROR {e!r}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = b""
        while chunk := os.read(r, 4096):
            data += chunk
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data.decode()
    return data


def test_the_c_extension_is_built_and_used() -> None:
    """`make setup` builds the extension (gcc and Python's headers are set-up packages)."""
    assert syscalls.BACKEND == "c"
    out = subprocess.run([sys.executable, "-IS", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                          "from dockyard.runtime import syscalls; print(syscalls.BACKEND)", str(PROJECT)],
                         env={**os.environ, "DOCKYARD_RUNTIME_CTYPES": "1"}, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "ctypes"


def test_errors_are_negative_errno(backend: ModuleType) -> None:
    assert backend.mount(None, b"/nonexistent-dockyard", None, syscalls.MS_BIND | syscalls.MS_REMOUNT,
                         None) == -errno.ENOENT
    assert backend.umount2(b"/nonexistent-dockyard", 0) == -errno.ENOENT
    assert backend.pivot_root(b"/nonexistent-dockyard", b"/nonexistent-dockyard") == -errno.ENOENT
    assert backend.setns(-1, 0) == -errno.EBADF
    assert backend.unshare(-1) == -errno.EINVAL
    assert backend.prctl(0x7FFF, 0, 0, 0, 0) == -errno.EINVAL
    assert backend.seccomp_filter(0, b"") == -errno.EINVAL  # an empty program is refused, nothing loaded
    with pytest.raises(ValueError, match="8-byte"):
        backend.seccomp_filter(0, b"\0" * 5)


def test_results_pass_through(backend: ModuleType) -> None:
    assert backend.prctl(syscalls.PR_CAPBSET_READ, 0, 0, 0, 0) == 1  # root holds CAP_CHOWN
    assert backend.SECCOMP_FILTER


def test_prlimit(backend: ModuleType) -> None:
    """prlimit reads and sets unsigned 64-bit limits (unlimited is 2**64-1, not -1); the RLIMIT
    numbers match the resource module's (which this module no longer loads on the hot path)."""
    import resource

    assert len(backend.RLIMITS) == 16 and backend.RLIMITS["RLIMIT_LOCKS"] == 10  # resource lacks LOCKS
    assert all(getattr(resource, name, value) == value for name, value in backend.RLIMITS.items())
    nofile = backend.RLIMITS["RLIMIT_NOFILE"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert backend.prlimit(nofile, None) == (soft, hard)

    def child() -> bytes:
        core = backend.RLIMITS["RLIMIT_CORE"]
        before = backend.prlimit(core, None)
        assert before[1] == syscalls.RLIM_INFINITY  # so no CAP_SYS_RESOURCE is needed below
        assert backend.prlimit(core, (syscalls.RLIM_INFINITY, syscalls.RLIM_INFINITY)) == before
        assert resource.getrlimit(core) == (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        assert backend.prlimit(core, (1024, 2048)) == (syscalls.RLIM_INFINITY, syscalls.RLIM_INFINITY)
        assert backend.prlimit(core, (4096, 2048)) == -errno.EINVAL
        assert backend.prlimit(-1, None) == -errno.EINVAL
        return repr(backend.prlimit(core, None)).encode()

    assert in_child(child) == b"(1024, 2048)"


def test_libseccomp_info_matches_the_binding() -> None:
    """The C extension reads libseccomp's version and API level (the program cache's key) as the
    ctypes binding does; the ctypes back end leaves it to that binding."""
    from dockyard.runtime import seccomp_lib

    assert c_backend().libseccomp_info() == (seccomp_lib.version(), seccomp_lib.api_level())
    assert not hasattr(syscalls_ctypes, "libseccomp_info")


def test_wrapper_errors_name_the_call() -> None:
    with pytest.raises(FileNotFoundError, match=r"^\[Errno 2\] umount /nonexistent-dockyard: No such file"):
        syscalls.umount2("/nonexistent-dockyard")
    with pytest.raises(FileNotFoundError, match=r"mount  on /nonexistent-dockyard \(bind/remount, flags 0x1020"):
        syscalls.mount(None, "/nonexistent-dockyard", None, syscalls.MS_BIND | syscalls.MS_REMOUNT)


def test_namespaces_hostname_and_mounts(backend: ModuleType, tmp_path: Path) -> None:
    def child() -> bytes:
        assert backend.unshare(syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWNS) == 0
        assert backend.sethostname(b"backend-test") == 0
        assert backend.setdomainname(b"backend.domain") == 0
        assert backend.mount(None, b"/", None, syscalls.MS_PRIVATE | syscalls.MS_REC, None) == 0
        assert backend.mount(b"tmpfs", os.fsencode(tmp_path), b"tmpfs", 0, b"size=1m") == 0
        (tmp_path / "probe").write_text("x")
        assert backend.umount2(os.fsencode(tmp_path), syscalls.MNT_DETACH) == 0
        with open("/proc/sys/kernel/domainname") as f:
            return f"{os.uname().nodename} {f.read().strip()} {(tmp_path / 'probe').exists()}".encode()

    assert in_child(child) == b"backend-test backend.domain False"
    assert not (tmp_path / "probe").exists()


def test_capset_and_bounding_set(backend: ModuleType) -> None:
    kill, chown = 1 << 5, 1 << 0

    def child() -> bytes:
        assert backend.prctl(syscalls.PR_CAPBSET_DROP, 13, 0, 0, 0) == 0  # CAP_NET_RAW
        assert backend.capset(kill | chown, kill | chown, kill) == 0
        with open("/proc/self/status") as f:
            fields = dict(line.split(":\t", 1) for line in f.read().splitlines() if line.startswith("Cap"))
        return " ".join(fields[k].strip() for k in ("CapEff", "CapPrm", "CapInh", "CapBnd")).encode()

    eff, prm, inh, bnd = in_child(child).decode().split()
    assert (int(eff, 16), int(prm, 16), int(inh, 16)) == (kill | chown, kill | chown, kill)
    assert not int(bnd, 16) & (1 << 13)


def test_seccomp_filter_loads(backend: ModuleType) -> None:
    """A one-instruction program (return ALLOW) loaded after no_new_privs: the child is filtered."""
    allow_all = (0x06).to_bytes(2, "little") + b"\0\0" + (0x7FFF0000).to_bytes(4, "little")

    def child() -> bytes:
        assert backend.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        assert backend.seccomp_filter(0, allow_all) == 0
        with open("/proc/self/status") as f:
            return next(line for line in f.read().splitlines() if line.startswith("Seccomp:")).encode()

    assert in_child(child).split() == [b"Seccomp:", b"2"]


def test_container_with_the_ctypes_fallback(dockyard_runtime: Runtime, bundle_factory,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The same container, observed from inside, with the C extension and with ctypes forced."""
    b = bundle_factory(["sh", "-c", "hostname; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; "
                        "mkdir /x || echo refused; touch /ro || echo read-only; cat /proc/self/mountinfo | wc -l"])
    b.config["hostname"] = "fallback"
    b.config["process"]["noNewPrivileges"] = True
    b.config["root"]["readonly"] = True
    b.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": seccomp_arches(),
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    b.write()
    outputs = []
    for forced in ("", "1"):  # the C run compiles and stores the seccomp program, ctypes loads it
        monkeypatch.setenv("DOCKYARD_RUNTIME_CTYPES", forced)
        out = dockyard_runtime("run", "--bundle", str(b.path), unique_id(), check=False)
        assert out.returncode == 0, out.stderr
        outputs.append(out.stdout)
    assert outputs[0] == outputs[1]
    assert len(list((dockyard_runtime.root / ".seccomp-cache").iterdir())) == 1  # the same cache key
    assert outputs[0].startswith("fallback\n") and "refused" in outputs[0] and "read-only" in outputs[0]


def test_direct_and_intermediate_spawn_agree(dockyard_runtime: Runtime, bundle_factory) -> None:
    """The init is forked straight into its namespaces unless an intermediate process is needed
    (a user or time namespace, joining a pid namespace): the container sees the same either way."""
    script = "echo $$; cat /proc/self/cgroup; echo /proc/[0-9]*"  # echo is built in: no process of its own
    outputs = []
    for extra in ([], [{"type": "time"}]):  # a time namespace takes the intermediate's path
        b = bundle_factory(["sh", "-c", script])
        b.config["linux"]["namespaces"] += extra
        b.write()
        out = dockyard_runtime("run", "--bundle", str(b.path), unique_id(), check=False)
        assert out.returncode == 0, out.stderr
        outputs.append(out.stdout)
    assert outputs[0] == outputs[1]
    pid, *cgroups, processes = outputs[0].split("\n")[:-1]
    assert pid == "1" and processes == "/proc/1"  # the shell alone: nothing of the runtime's
    assert all(line.endswith(":/") for line in cgroups if ":cpu" in line or ":memory:" in line)


def test_host_pid_namespace(dockyard_runtime: Runtime, bundle_factory) -> None:
    b = bundle_factory(["sh", "-c", "echo $$"])
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "pid"]
    b.write()
    out = dockyard_runtime("run", "--bundle", str(b.path), unique_id(), check=False)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 1


@pytest.mark.parametrize("mode", ["rprivate", "rslave", "shared", "rshared", "unbindable", "runbindable"])
def test_every_root_propagation_works(dockyard_runtime: Runtime, bundle_factory, mode: str) -> None:
    """Whatever rootfsPropagation says, the rootfs can be bound and pivoted into (its parent mount
    is made private only when it would be shared or unbindable): the container starts and sees
    the same mounts as with the default propagation."""
    counts = []
    for propagation in (None, mode):
        b = bundle_factory(["sh", "-c", "wc -l < /proc/self/mountinfo"])
        if propagation:
            b.config["linux"]["rootfsPropagation"] = propagation
        b.write()
        out = dockyard_runtime("run", "--bundle", str(b.path), unique_id(), check=False)
        assert out.returncode == 0, out.stderr
        counts.append(int(out.stdout))
    assert counts[0] == counts[1]
