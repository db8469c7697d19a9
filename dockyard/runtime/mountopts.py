"""Translating OCI mount options into mount(2) flags, propagation flags and data."""

from __future__ import annotations

from dockyard.runtime import syscalls as s

# option -> (clear?, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, s.MS_RDONLY), "rw": (True, s.MS_RDONLY),
    "nosuid": (False, s.MS_NOSUID), "suid": (True, s.MS_NOSUID),
    "nodev": (False, s.MS_NODEV), "dev": (True, s.MS_NODEV),
    "noexec": (False, s.MS_NOEXEC), "exec": (True, s.MS_NOEXEC),
    "sync": (False, s.MS_SYNCHRONOUS), "async": (True, s.MS_SYNCHRONOUS),
    "dirsync": (False, s.MS_DIRSYNC),
    "remount": (False, s.MS_REMOUNT),
    "mand": (False, s.MS_MANDLOCK), "nomand": (True, s.MS_MANDLOCK),
    "noatime": (False, s.MS_NOATIME), "atime": (True, s.MS_NOATIME),
    "nodiratime": (False, s.MS_NODIRATIME), "diratime": (True, s.MS_NODIRATIME),
    "relatime": (False, s.MS_RELATIME), "norelatime": (True, s.MS_RELATIME),
    "strictatime": (False, s.MS_STRICTATIME), "nostrictatime": (True, s.MS_STRICTATIME),
    "lazytime": (False, s.MS_LAZYTIME), "nolazytime": (True, s.MS_LAZYTIME),
    "nosymfollow": (False, s.MS_NOSYMFOLLOW), "symfollow": (True, s.MS_NOSYMFOLLOW),
    "bind": (False, s.MS_BIND), "rbind": (False, s.MS_BIND | s.MS_REC),
}
PROPAGATION = {
    "private": s.MS_PRIVATE, "rprivate": s.MS_PRIVATE | s.MS_REC,
    "shared": s.MS_SHARED, "rshared": s.MS_SHARED | s.MS_REC,
    "slave": s.MS_SLAVE, "rslave": s.MS_SLAVE | s.MS_REC,
    "unbindable": s.MS_UNBINDABLE, "runbindable": s.MS_UNBINDABLE | s.MS_REC,
}
# Options that only matter to tools around the runtime (Docker's SELinux relabel and friends).
IGNORED = {"z", "Z", "defaults", "tmpcopyup", "copy-symlink", "idmap", "ridmap", "noswap"}


class MountOptions:
    """Parsed options of one OCI mount entry."""

    def __init__(self, options: list[str]) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        data: list[str] = []
        for opt in options:
            if opt in FLAGS:
                clear, flag = FLAGS[opt]
                self.flags = self.flags & ~flag if clear else self.flags | flag
            elif opt in PROPAGATION:
                self.propagation.append(PROPAGATION[opt])
            elif opt in IGNORED:
                continue
            else:
                data.append(opt)
        self.data = ",".join(data) or None

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & s.MS_BIND)

    @property
    def remount_flags(self) -> int:
        """Flags that need a second (remount) call when bind mounting."""
        return self.flags & ~(s.MS_BIND | s.MS_REC | s.MS_REMOUNT)
