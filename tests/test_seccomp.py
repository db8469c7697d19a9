"""Seccomp filters of dockyard-runtime, loaded for real in forked children (no mocks)."""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.seccomp import SeccompError, SeccompFilter, compile_filter, features
from dockyard.runtime.seccomp_spec import ACT_ALLOW, ACT_ERRNO, parse_profile

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"
U32_MAX = 0xFFFFFFFF
CHILD_CRASHED = 101  # the probe raised something unexpected
PR_SET_NO_NEW_PRIVS = 38

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.personality.argtypes = [ctypes.c_ulong]


def run_filtered(
    spec: dict[str, Any] | SeccompFilter,
    probe: Callable[[], int],
    before: Callable[[], object] = lambda: None,
) -> int:
    """In a forked child, call `before`, load the filter, run `probe`; return its exit code (-signal if killed)."""
    filt = spec if isinstance(spec, SeccompFilter) else compile_filter(spec)
    pid = os.fork()
    if pid == 0:
        code = CHILD_CRASHED
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS would dump core
            before()
            filt.load()
            code = probe()
        finally:
            os._exit(code)
    filt.release()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def errno_of(call: Callable[[], object]) -> int:
    """0 if `call` succeeds, else the errno of its OSError."""
    try:
        call()
    except OSError as e:
        return e.errno
    return 0


def personality(persona: int) -> int:
    return 0 if LIBC.personality(persona) != -1 else ctypes.get_errno()


def socket_errno(family: int, kind: int = socket.SOCK_STREAM) -> int:
    def make() -> None:
        socket.socket(family, kind).close()

    return errno_of(make)


def rule(names: list[str], action: str = ERRNO, **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


def arg(index: int, value: int, op: str, value_two: int | None = None) -> dict[str, Any]:
    out = {"index": index, "value": value, "op": op}
    if value_two is not None:
        out["valueTwo"] = value_two
    return out


def allow_by_default(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaultAction": ALLOW, "syscalls": list(rules), **extra}


# --- actions ---------------------------------------------------------------------------------------


def test_errno_default_is_eperm(tmp_path: Path) -> None:
    spec = allow_by_default(rule(["mkdir", "mkdirat"]))
    assert run_filtered(spec, lambda: errno_of(lambda: os.mkdir(tmp_path / "d"))) == errno.EPERM
    assert not (tmp_path / "d").exists()
    assert run_filtered(spec, lambda: errno_of(os.getcwd)) == 0


def test_errno_ret_custom(tmp_path: Path) -> None:
    spec = allow_by_default(rule(["mkdir", "mkdirat"], errnoRet=errno.ENOSYS))
    assert run_filtered(spec, lambda: errno_of(lambda: os.mkdir(tmp_path / "d"))) == errno.ENOSYS


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS"])
def test_kill_actions_die_with_sigsys(action: str) -> None:
    assert (
        run_filtered(allow_by_default(rule(["getcwd"], action)), lambda: errno_of(os.getcwd))
        == -signal.SIGSYS
    )


def test_kill_process_ignores_a_sigsys_handler() -> None:
    def probe() -> int:
        signal.signal(signal.SIGSYS, lambda *_: None)
        errno_of(os.getcwd)
        return 0

    assert run_filtered(allow_by_default(rule(["getcwd"], "SCMP_ACT_KILL_PROCESS")), probe) == -signal.SIGSYS


def test_trap_raises_a_catchable_sigsys() -> None:
    caught: list[int] = []

    def probe() -> int:
        signal.signal(signal.SIGSYS, lambda signum, _frame: caught.append(signum))
        errno_of(os.getcwd)
        return 0 if caught == [signal.SIGSYS] else 1

    assert run_filtered(allow_by_default(rule(["getcwd"], "SCMP_ACT_TRAP")), probe) == 0


def test_trace_without_tracer_fails_with_enosys() -> None:
    spec = allow_by_default(rule(["getcwd"], "SCMP_ACT_TRACE"))
    assert run_filtered(spec, lambda: errno_of(os.getcwd)) == errno.ENOSYS


@pytest.mark.parametrize("default", [ALLOW, "SCMP_ACT_LOG"])
def test_log_allows(tmp_path: Path, default: str) -> None:
    spec = {"defaultAction": default, "syscalls": [rule(["mkdir", "mkdirat"], "SCMP_ACT_LOG")]}
    assert run_filtered(spec, lambda: errno_of(lambda: os.mkdir(tmp_path / "d"))) == 0
    assert (tmp_path / "d").is_dir()


def test_filter_is_installed_with_flags() -> None:
    def probe() -> int:
        status = Path("/proc/self/status").read_text()
        return 0 if "Seccomp:\t2" in status else 1

    flags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    for extra in ({}, {"flags": []}, {"flags": flags}):
        assert run_filtered(allow_by_default(rule(["mkdir"]), **extra), probe) == 0


@pytest.mark.parametrize(("flags", "expected"), [([], 0), (["SECCOMP_FILTER_FLAG_TSYNC"], errno.EPERM)])
def test_tsync_flag_filters_other_threads(tmp_path: Path, flags: list[str], expected: int) -> None:
    go = threading.Event()
    results: list[int] = []

    def worker() -> None:
        go.wait()
        results.append(errno_of(lambda: os.mkdir(tmp_path / "d")))

    thread = threading.Thread(target=worker)

    def probe() -> int:
        go.set()
        thread.join()
        return results[0]

    spec = allow_by_default(rule(["mkdir", "mkdirat"]), flags=flags)
    assert run_filtered(spec, probe, before=thread.start) == expected


def test_load_needs_no_new_privs_or_cap_sys_admin(tmp_path: Path) -> None:
    filt = compile_filter(allow_by_default(rule(["mkdir", "mkdirat"])))
    nobody = 65534

    def unprivileged_load() -> int:
        try:
            filt.load()
        except SeccompError as e:
            return 0 if "Permission denied" in str(e) else 2
        return 1

    def no_new_privs() -> None:
        os.setuid(nobody)
        if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")

    try:
        assert run_filtered(compile_filter({}), unprivileged_load, before=lambda: os.setuid(nobody)) == 0
        assert (
            run_filtered(filt, lambda: errno_of(lambda: os.mkdir(tmp_path / "d")), before=no_new_privs)
            == errno.EPERM
        )
    finally:
        filt.release()


# --- argument conditions ---------------------------------------------------------------------------


def test_personality_denied_only_for_query_value() -> None:
    spec = allow_by_default(rule(["personality"], args=[arg(0, U32_MAX, "SCMP_CMP_EQ")]))
    assert run_filtered(spec, lambda: personality(U32_MAX)) == errno.EPERM
    assert run_filtered(spec, lambda: personality(0)) == 0


def test_socket_family_condition() -> None:
    spec = allow_by_default(rule(["socket"], args=[arg(0, socket.AF_UNIX, "SCMP_CMP_EQ")]))
    assert run_filtered(spec, lambda: socket_errno(socket.AF_UNIX)) == errno.EPERM
    assert run_filtered(spec, lambda: socket_errno(socket.AF_INET)) == 0


def test_masked_eq_ignores_bits_outside_the_mask() -> None:
    # Python passes SOCK_CLOEXEC in the type argument: only a mask makes SOCK_DGRAM match.
    spec = allow_by_default(rule(["socket"], args=[arg(1, 0xF, "SCMP_CMP_MASKED_EQ", socket.SOCK_DGRAM)]))
    assert run_filtered(spec, lambda: socket_errno(socket.AF_UNIX, socket.SOCK_DGRAM)) == errno.EPERM
    assert run_filtered(spec, lambda: socket_errno(socket.AF_UNIX, socket.SOCK_STREAM)) == 0


def test_conditions_on_distinct_args_are_anded() -> None:
    spec = allow_by_default(
        rule(
            ["socket"],
            args=[
                arg(0, socket.AF_UNIX, "SCMP_CMP_EQ"),
                arg(1, 0xF, "SCMP_CMP_MASKED_EQ", socket.SOCK_DGRAM),
            ],
        )
    )
    assert run_filtered(spec, lambda: socket_errno(socket.AF_UNIX, socket.SOCK_DGRAM)) == errno.EPERM
    assert run_filtered(spec, lambda: socket_errno(socket.AF_UNIX, socket.SOCK_STREAM)) == 0
    assert run_filtered(spec, lambda: socket_errno(socket.AF_INET, socket.SOCK_DGRAM)) == 0


def test_conditions_on_the_same_arg_are_ored() -> None:
    spec = allow_by_default(
        rule(
            ["socket"],
            args=[
                arg(0, socket.AF_UNIX, "SCMP_CMP_EQ"),
                arg(0, socket.AF_INET, "SCMP_CMP_EQ"),
            ],
        )
    )
    assert run_filtered(spec, lambda: socket_errno(socket.AF_UNIX)) == errno.EPERM
    assert run_filtered(spec, lambda: socket_errno(socket.AF_INET)) == errno.EPERM
    assert run_filtered(spec, lambda: socket_errno(socket.AF_NETLINK, socket.SOCK_RAW)) == 0


@pytest.mark.parametrize(
    ("op", "matching", "other"),
    [
        ("SCMP_CMP_EQ", 5000, 5001),
        ("SCMP_CMP_NE", 5001, 5000),
        ("SCMP_CMP_LT", 4999, 5000),
        ("SCMP_CMP_LE", 5000, 5001),
        ("SCMP_CMP_GE", 5000, 4999),
        ("SCMP_CMP_GT", 5001, 5000),
    ],
)
def test_comparison_operators(op: str, matching: int, other: int) -> None:
    # close() of an unused fd fails with EBADF unless the rule turns it into EDOM.
    spec = allow_by_default(rule(["close"], errnoRet=errno.EDOM, args=[arg(0, 5000, op)]))
    assert run_filtered(spec, lambda: errno_of(lambda: os.close(matching))) == errno.EDOM
    assert run_filtered(spec, lambda: errno_of(lambda: os.close(other))) == errno.EBADF


# --- default ERRNO with an allow-list ---------------------------------------------------------------

PYTHON_BASICS = [
    "exit",
    "exit_group",
    "rt_sigreturn",
    "rt_sigaction",
    "rt_sigprocmask",
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "futex",
    "getpid",
    "getppid",
    "close",
]


def test_allow_list_with_default_errno(tmp_path: Path) -> None:
    spec = {
        "defaultAction": ERRNO,
        "syscalls": [rule(PYTHON_BASICS, ALLOW), rule(["mkdir", "mkdirat"], errnoRet=errno.EROFS)],
    }
    parent = os.getpid()
    assert run_filtered(spec, lambda: 0 if os.getppid() == parent else 1) == 0
    assert run_filtered(spec, lambda: errno_of(os.getcwd)) == errno.EPERM
    assert run_filtered(spec, lambda: errno_of(lambda: os.mkdir(tmp_path / "d"))) == errno.EROFS


def test_default_errno_ret() -> None:
    spec = {"defaultAction": ERRNO, "defaultErrnoRet": errno.ENOSYS, "syscalls": [rule(PYTHON_BASICS, ALLOW)]}
    assert run_filtered(spec, lambda: errno_of(os.getcwd)) == errno.ENOSYS


# Enough to start /bin/sh and its children; written for this test, in the spirit of Docker's profile.
SHELL_SYSCALLS = """
    access arch_prctl brk capget chdir clock_gettime clock_nanosleep close close_range dup dup2 dup3
    execve execveat exit exit_group faccessat faccessat2 fadvise64 fchdir fcntl fstat fstatfs futex
    getcwd getdents64 getegid geteuid getgid getgroups getpgrp getpid getppid getrandom getrlimit
    getrusage gettid gettimeofday getuid ioctl lseek lstat madvise mmap mprotect mremap munmap nanosleep
    newfstatat open openat pipe pipe2 poll ppoll prctl pread64 prlimit64 read readlink readlinkat
    rseq rt_sigaction rt_sigprocmask rt_sigreturn sched_getaffinity sched_yield set_robust_list
    set_tid_address setpgid sigaltstack stat statfs statx sysinfo tgkill umask uname vfork wait4
    waitid write writev _llseek fstat64 stat64 socketcall
    this_syscall_does_not_exist
""".split()
CLONE_NEW_MASK = 0x7E020000  # every CLONE_NEW* flag


def test_shell_runs_under_an_allow_list_profile(tmp_path: Path) -> None:
    spec = {
        "defaultAction": ERRNO,
        "defaultErrnoRet": errno.EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            rule(SHELL_SYSCALLS, ALLOW),
            rule(["personality"], ALLOW, args=[arg(0, 0, "SCMP_CMP_EQ")]),
            rule(["personality"], ALLOW, args=[arg(0, U32_MAX, "SCMP_CMP_EQ")]),
            rule(["clone"], ALLOW, args=[arg(0, CLONE_NEW_MASK, "SCMP_CMP_MASKED_EQ", 0)]),
            rule(["clone3"], ERRNO, errnoRet=errno.ENOSYS),
            rule(["mkdir", "mkdirat"], ERRNO, errnoRet=errno.EACCES),
        ],
    }
    out = tmp_path / "out"

    def probe() -> int:
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT, 0o600), 1)
        script = f'echo "$(mkdir {tmp_path}/d 2>&1; echo mkdir=$?)"; exit 7'
        os.execve("/bin/sh", ["sh", "-c", script], {"PATH": "/usr/bin:/bin", "LC_ALL": "C"})

    # sh forked the command substitution (clone, allowed by its condition: no CLONE_NEW* flag),
    # vforked and exec'd mkdir, which got the rule's EACCES.
    assert run_filtered(spec, probe) == 7
    assert out.read_text() == f"mkdir: cannot create directory '{tmp_path}/d': Permission denied\nmkdir=1\n"
    assert not (tmp_path / "d").exists()


# --- compile-time behaviour -------------------------------------------------------------------------


def test_disabled_profile_loads_nothing() -> None:
    filt = compile_filter({})
    assert not filt.enabled
    status = run_filtered(filt, lambda: 0 if "Seccomp:\t0" in Path("/proc/self/status").read_text() else 1)
    assert status == 0


def test_load_after_release_fails() -> None:
    filt = compile_filter(allow_by_default(rule(["mkdir"])))
    filt.release()
    filt.release()
    with pytest.raises(SeccompError, match="released"):
        filt.load()


def test_unknown_syscalls_and_default_action_rules_are_skipped() -> None:
    spec = {
        "defaultAction": ERRNO,
        "syscalls": [
            rule(["no_such_syscall"], ALLOW),
            rule(["mkdir"], ERRNO),
            rule(["getcwd"], ERRNO, errnoRet=1),
        ],
    }
    compile_filter(spec).release()
    profile = parse_profile(spec)
    assert profile is not None
    assert [(r.name, r.action) for r in profile.rules] == [("no_such_syscall", ACT_ALLOW)]
    assert profile.default_action == ACT_ERRNO | errno.EPERM


def test_rule_grouping_follows_runc() -> None:
    same = [arg(0, 1, "SCMP_CMP_EQ"), arg(0, 2, "SCMP_CMP_EQ")]
    distinct = [arg(0, 1, "SCMP_CMP_EQ"), arg(2, 3, "SCMP_CMP_MASKED_EQ", 4)]
    profile = parse_profile(allow_by_default(rule(["a", "b"], args=same), rule(["c"], args=distinct)))
    assert profile is not None
    assert [(r.name, r.conditions, r.where) for r in profile.rules] == [
        ("a", ((0, 4, 1, 0),), "syscalls[0]"),
        ("a", ((0, 4, 2, 0),), "syscalls[0]"),
        ("b", ((0, 4, 1, 0),), "syscalls[0]"),
        ("b", ((0, 4, 2, 0),), "syscalls[0]"),
        ("c", ((0, 4, 1, 0), (2, 7, 3, 4)), "syscalls[1]"),
    ]


def test_features() -> None:
    feats = features()
    assert feats["enabled"] is True
    assert "SCMP_ACT_KILL_PROCESS" in feats["actions"] and "SCMP_ACT_NOTIFY" not in feats["actions"]
    assert feats["operators"] == sorted(
        [
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ]
    )
    assert {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"} <= set(feats["archs"])
    assert set(feats["supportedFlags"]) <= set(feats["knownFlags"])
    assert "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in feats["knownFlags"]


def test_import_does_not_load_ctypes_or_typing() -> None:
    code = "import sys, dockyard.runtime.seccomp; print(sorted({'ctypes', 'typing'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- validation -------------------------------------------------------------------------------------

BAD_SPECS = [
    ([], "linux.seccomp must be an object"),
    ({"defaultAction": "SCMP_ACT_FOO"}, 'unknown action "SCMP_ACT_FOO" in defaultAction'),
    ({"syscalls": [rule(["mkdir"])]}, "defaultAction is required"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY is not supported in defaultAction"),
    (allow_by_default(listenerPath="/run/agent.sock"), "listenerPath"),
    (allow_by_default(defaultErrnoRet=1), "defaultErrnoRet is not allowed with action SCMP_ACT_ALLOW"),
    ({"defaultAction": ERRNO, "defaultErrnoRet": -1}, "defaultErrnoRet must be an integer"),
    ({"defaultAction": ERRNO, "defaultErrnoRet": True}, "defaultErrnoRet must be an integer"),
    (
        allow_by_default(architectures=["SCMP_ARCH_VAX"]),
        'unknown architecture "SCMP_ARCH_VAX" in architectures',
    ),
    (
        allow_by_default(architectures="SCMP_ARCH_X86"),
        "list of non-empty strings, not 'SCMP_ARCH_X86' in architectures",
    ),
    (allow_by_default(flags=["SECCOMP_FILTER_FLAG_FOO"]), 'unknown flag "SECCOMP_FILTER_FLAG_FOO" in flags'),
    (allow_by_default(flags="SECCOMP_FILTER_FLAG_LOG"), "in flags"),
    (
        {"defaultAction": ALLOW, "syscalls": {"names": ["mkdir"]}},
        "expected a list, not {'names': ['mkdir']} in syscalls",
    ),
    (allow_by_default("mkdir"), "expected an object, not 'mkdir' in syscalls[0]"),
    (
        allow_by_default(rule(["a"]), rule(["b"]), rule(["c"]), rule(["d"], "SCMP_ACT_FOO")),
        'unknown action "SCMP_ACT_FOO" in syscalls[3]',
    ),
    (allow_by_default({"names": ["mkdir"]}), "action is required in syscalls[0].action"),
    (
        allow_by_default(rule(["mkdir"], "SCMP_ACT_NOTIFY")),
        "SCMP_ACT_NOTIFY is not supported in syscalls[0].action",
    ),
    (allow_by_default(rule("mkdir")), "list of non-empty strings, not 'mkdir' in syscalls[0].names"),
    (allow_by_default({"action": ERRNO}), "not None in syscalls[0].names"),
    (allow_by_default(rule(["mkdir", 3])), "in syscalls[0].names"),
    (allow_by_default(rule([""])), "in syscalls[0].names"),
    (
        allow_by_default(rule(["mkdir"], "SCMP_ACT_KILL", errnoRet=1)),
        "errnoRet is not allowed with action SCMP_ACT_KILL in syscalls[0].errnoRet",
    ),
    (allow_by_default(rule(["mkdir"], errnoRet=0x10000)), "errnoRet must be an integer from 0 to 65535"),
    (allow_by_default(rule(["mkdir"], errnoRet="1")), "in syscalls[0].errnoRet"),
    (
        allow_by_default(rule(["mkdir"], args={"index": 0})),
        "expected a list, not {'index': 0} in syscalls[0].args",
    ),
    (allow_by_default(rule(["mkdir"], args=[7])), "expected an object, not 7 in syscalls[0].args[0]"),
    (
        allow_by_default(rule(["mkdir"], args=[arg(0, 1, "SCMP_CMP_EQ"), arg(1, 1, "SCMP_CMP_XX")])),
        'unknown operator "SCMP_CMP_XX" in syscalls[0].args[1].op',
    ),
    (
        allow_by_default(rule(["mkdir"], args=[{"index": 0, "value": 1}])),
        "unknown operator None in syscalls[0].args[0].op",
    ),
    (
        allow_by_default(rule(["mkdir"], args=[arg(6, 1, "SCMP_CMP_EQ")])),
        "index must be an integer from 0 to 5, not 6 in syscalls[0].args[0].index",
    ),
    (
        allow_by_default(rule(["mkdir"], args=[arg(-1, 1, "SCMP_CMP_EQ")])),
        "not -1 in syscalls[0].args[0].index",
    ),
    (
        allow_by_default(rule(["mkdir"], args=[{"index": "0", "value": 1, "op": "SCMP_CMP_EQ"}])),
        "not '0' in syscalls[0].args[0].index",
    ),
    (
        allow_by_default(rule(["mkdir"], args=[{"index": 0, "op": "SCMP_CMP_EQ"}])),
        "value is required in syscalls[0].args[0]",
    ),
    (allow_by_default(rule(["mkdir"], args=[arg(0, -1, "SCMP_CMP_EQ")])), "in syscalls[0].args[0].value"),
    (
        allow_by_default(rule(["mkdir"], args=[arg(0, 1 << 64, "SCMP_CMP_EQ")])),
        "in syscalls[0].args[0].value",
    ),
    (
        allow_by_default(rule(["mkdir"], args=[arg(0, 1, "SCMP_CMP_MASKED_EQ", -2)])),
        "in syscalls[0].args[0].valueTwo",
    ),
    (allow_by_default(rule(["mkdir"], ALLOW, args=[arg(0, 1, "SCMP_CMP_XX")])), "in syscalls[0].args[0].op"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_invalid_profiles_are_refused(spec: Any, message: str) -> None:
    with pytest.raises(SeccompError) as info:
        compile_filter(spec)
    assert str(info.value).startswith("seccomp: ")
    assert message in str(info.value)


@pytest.mark.skipif("SCMP_ARCH_LOONGARCH64" in features()["archs"], reason="libseccomp knows loongarch64")
def test_architecture_unknown_to_libseccomp() -> None:
    with pytest.raises(SeccompError, match="SCMP_ARCH_LOONGARCH64 is not supported by libseccomp"):
        compile_filter(allow_by_default(architectures=["SCMP_ARCH_LOONGARCH64"]))
