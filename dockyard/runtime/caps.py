"""Linux capabilities: names, masks, and applying the OCI process capability sets."""

from __future__ import annotations

from dockyard.runtime import syscalls
from dockyard.runtime.errors import RuntimeFailure

CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}
CAP_SETPCAP = 8
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def normalise(name: str) -> str:
    """'net_admin' / 'NET_ADMIN' / 'CAP_NET_ADMIN' -> 'CAP_NET_ADMIN'."""
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def mask(names: list[str], where: str, known_limit: int) -> int:
    """Bit mask of capability names; unknown names are refused, ones this kernel lacks are skipped."""
    bits = 0
    for name in names:
        if not isinstance(name, str):
            raise RuntimeFailure(f"{where}: capability {name!r} is not a string")
        num = CAP_NUMBERS.get(normalise(name))
        if num is None:
            raise RuntimeFailure(f"{where}: unknown capability {name!r}")
        if num <= known_limit:
            bits |= 1 << num
    return bits


class CapabilitySets:
    """The five capability sets of a process as bit masks, validated up front."""

    def __init__(self, spec: dict | None) -> None:
        spec = spec or {}
        top = last_cap()
        self.masks = {s: mask(spec.get(s) or [], f"process.capabilities.{s}", top) for s in SETS}
        self.top = top

    def drop_bounding(self) -> None:
        """Drop every capability not in the bounding set (needs CAP_SETPCAP, so call before capset)."""
        keep = self.masks["bounding"]
        for cap in range(self.top + 1):
            if not keep & (1 << cap):
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)

    def apply(self) -> None:
        """Set effective/permitted/inheritable, then raise the ambient set.

        An ambient capability can only be raised when it is also permitted and inheritable;
        others are skipped (as current runc does), since configs often list ambient alone.
        """
        m = self.masks
        syscalls.capset(m["effective"], m["permitted"], m["inheritable"])
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
        raisable = m["ambient"] & m["permitted"] & m["inheritable"]
        for cap in range(self.top + 1):
            if raisable & (1 << cap):
                syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, cap)
