"""dockyard's default seccomp policy, written as a structured description and rendered into
Docker's profile format (defaultAction, archMap, syscalls with includes/excludes).

The policy: deny with EPERM by default; allow what ordinary programs use (grouped by topic
below, with their 32-bit and time64 variants); allow privileged calls only when the container
holds the capability that makes them meaningful; allow a few calls only for safe arguments.
"""

from __future__ import annotations

from typing import Any

# -- allowed for everyone ---------------------------------------------------------------------------
_FILES = """access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat creat open openat openat2
close close_range dup dup2 dup3 fcntl fcntl64 flock fsync fdatasync syncfs sync sync_file_range fallocate
ftruncate ftruncate64 truncate truncate64 link linkat symlink symlinkat unlink unlinkat rename renameat
renameat2 mkdir mkdirat mknod mknodat rmdir readlink readlinkat stat stat64 lstat lstat64 fstat fstat64
fstatat64 newfstatat statx statfs statfs64 fstatfs fstatfs64 getdents getdents64 umask utime utimes
utimensat utimensat_time64 futimesat lseek _llseek read write readv writev pread64 pwrite64 preadv pwritev
preadv2 pwritev2 sendfile sendfile64 splice tee vmsplice copy_file_range readahead fadvise64 fadvise64_64
ioctl fanotify_mark fchownat"""
_OWNERS = "chown fchown lchown"  # each with a 32-bit variant
_XATTRS = "getxattr setxattr listxattr removexattr"  # each also as l* and f*
_EVENTS = """epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 inotify_add_watch inotify_init inotify_init1 inotify_rm_watch poll select
_newselect signalfd signalfd4 timerfd_create pipe pipe2"""
_ASYNC_IO = """io_cancel io_destroy io_getevents io_pgetevents io_setup io_submit io_uring_enter
io_uring_register io_uring_setup"""
_MEMORY = """brk mmap mmap2 munmap mprotect mremap madvise mincore mlock mlock2 mlockall munlock munlockall
msync remap_file_pages membarrier memfd_create memfd_secret"""
_PROCESS = """execve execveat exit exit_group fork vfork wait4 waitid waitpid getpid getppid gettid getpgid
getpgrp setpgid getsid setsid kill tkill tgkill pidfd_open pidfd_send_signal process_mrelease prctl capget
capset seccomp set_robust_list get_robust_list set_tid_address set_thread_area get_thread_area
restart_syscall rseq getcpu getrandom uname sysinfo futex futex_waitv landlock_add_rule
landlock_create_ruleset landlock_restrict_self"""
_IDS = """getuid geteuid getgid getegid getgroups setuid setgid setgroups setreuid setregid setresuid
setresgid getresuid getresgid setfsuid setfsgid"""  # each with a 32-bit variant
_SCHEDULING = """getrlimit setrlimit ugetrlimit prlimit64 getrusage getpriority setpriority ioprio_get
ioprio_set sched_get_priority_max sched_get_priority_min sched_getaffinity sched_setaffinity
sched_getattr sched_setattr sched_getparam sched_setparam sched_getscheduler sched_setscheduler
sched_yield"""
_TIME = """adjtimex nanosleep gettimeofday time times alarm getitimer setitimer timer_create timer_delete
timer_getoverrun pause"""
_TIME64 = """clock_getres clock_nanosleep futex ppoll pselect6 io_pgetevents sched_rr_get_interval
rt_sigtimedwait recvmmsg semtimedop mq_timedreceive mq_timedsend"""  # each also with a _time64 twin
_TIME64_SHORT = """clock_adjtime clock_gettime timer_gettime timer_settime timerfd_gettime
timerfd_settime"""  # each also with a 64 twin
_SIGNALS = """rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_tgsigqueueinfo sigaltstack sigprocmask sigreturn"""
_SOCKETS = """socket socketpair socketcall bind connect listen accept accept4 getsockname getpeername
getsockopt setsockopt shutdown send sendto sendmsg sendmmsg recv recvfrom recvmsg"""
_IPC = """ipc msgctl msgget msgrcv msgsnd semctl semget semop shmat shmctl shmdt shmget mq_getsetattr
mq_notify mq_open mq_unlink"""

# -- allowed only with a capability -----------------------------------------------------------------
_BY_CAPABILITY = {
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
    "CAP_SYS_ADMIN": """bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
        mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl quotactl_fd
        setdomainname sethostname setns syslog umount umount2 unshare""",
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "delete_module init_module finit_module",
    "CAP_SYS_PACCT": "acct",
    "CAP_SYS_PTRACE": "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday stime clock_settime",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy mbind set_mempolicy",
    "CAP_SYSLOG": "syslog",
}

# -- allowed only on some architectures (Go's names) ------------------------------------------------
_BY_ARCH = [
    (("ppc64le",), "sync_file_range2"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
]
_MIPS = ["mips3l64n32", "mips64", "mips64n32", "mipsel", "mipsel64"]
_S390 = ["s390", "s390x"]

# personality(2) personas: Linux, the 32-bit emulation flag, UNAME26, both, and a query (0xffffffff)
_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
# clone(2) flags that create namespaces: refused without CAP_SYS_ADMIN
_CLONE_NAMESPACE_FLAGS = 0x7E020000
_ENOSYS = {"default": 38, "mips": 89}

_ARCH_MAP = [
    ("SCMP_ARCH_X86_64", ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", ["SCMP_ARCH_ARM"]),
    ("SCMP_ARCH_MIPS64", ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]),
    ("SCMP_ARCH_MIPS64N32", ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]),
    ("SCMP_ARCH_MIPSEL64", ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]),
    ("SCMP_ARCH_MIPSEL64N32", ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]),
    ("SCMP_ARCH_S390X", ["SCMP_ARCH_S390"]),
]


def _words(text: str) -> list[str]:
    return text.split()


def common_syscalls() -> list[str]:
    """Every syscall the default profile allows unconditionally, sorted."""
    names = set()
    for group in (_FILES, _EVENTS, _ASYNC_IO, _MEMORY, _PROCESS, _SCHEDULING, _TIME, _SIGNALS, _SOCKETS, _IPC):
        names.update(_words(group))
    for base in _words(_OWNERS) + _words(_IDS):
        names.update((base, base + "32"))
    for base in _words(_XATTRS):
        names.update((base, "l" + base, "f" + base))
    for base in _words(_TIME64):
        names.update((base, base + "_time64"))
    for base in _words(_TIME64_SHORT):
        names.update((base, base + "64"))
    return sorted(names)


def _rule(names: list[str], action: str = "SCMP_ACT_ALLOW", *, args: list[dict] | None = None,
          includes: dict | None = None, excludes: dict | None = None, errno_ret: int | None = None) -> dict:
    rule: dict[str, Any] = {"names": names, "action": action, "args": args or [],
                            "includes": includes or {}, "excludes": excludes or {}}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    return rule


def default_profile() -> dict[str, Any]:
    """The default policy in Docker's profile format (a fresh dict)."""
    rules = [_rule(common_syscalls()), _rule(["ptrace"], includes={"minKernel": "4.8"})]
    rules += [_rule(["personality"], args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]) for v in _PERSONAS]
    rules += [_rule(_words(names), includes={"arches": list(arches)}) for arches, names in _BY_ARCH]
    for cap, names in _BY_CAPABILITY.items():
        rules.append(_rule(_words(names), includes={"caps": [cap]}))
    clone_arg = {"value": _CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}
    rules += [
        _rule(["clone"], args=[{"index": 0, **clone_arg}], excludes={"caps": ["CAP_SYS_ADMIN"], "arches": _S390}),
        _rule(["clone"], args=[{"index": 1, **clone_arg}], includes={"arches": _S390},
              excludes={"caps": ["CAP_SYS_ADMIN"]}),
        # clone3 hides its flags in memory: report ENOSYS so libc falls back to clone
        _rule(["clone3"], "SCMP_ACT_ERRNO", excludes={"caps": ["CAP_SYS_ADMIN"], "arches": _MIPS},
              errno_ret=_ENOSYS["default"]),
        _rule(["clone3"], "SCMP_ACT_ERRNO", includes={"arches": _MIPS}, excludes={"caps": ["CAP_SYS_ADMIN"]},
              errno_ret=_ENOSYS["mips"]),
    ]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "archMap": [{"architecture": a, "subArchitectures": list(s)} for a, s in _ARCH_MAP],
            "syscalls": rules}
