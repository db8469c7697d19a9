"""Namespaces of the OCI config: which to create, which to join, and in what order."""

from __future__ import annotations

from dockyard.runtime import oslite as os
from dockyard.runtime import syscalls as s
from dockyard.runtime.errors import RuntimeFailure

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

CLONE_FLAGS = {
    "pid": s.CLONE_NEWPID, "network": s.CLONE_NEWNET, "mount": s.CLONE_NEWNS, "ipc": s.CLONE_NEWIPC,
    "uts": s.CLONE_NEWUTS, "user": s.CLONE_NEWUSER, "cgroup": s.CLONE_NEWCGROUP, "time": s.CLONE_NEWTIME,
}
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
              "cgroup": "cgroup", "time": "time"}
# Join order: the user namespace first (it owns the others), the mount namespace last (after it,
# the host's /proc paths of the other namespaces are no longer visible).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")
# setns into these changes the namespace of the caller's later children, not the caller's own
CHILDREN_ONLY = ("pid", "time")


class NamespacePlan:
    """The config's namespaces split into ones to create and ones to join by path."""

    def __init__(self, namespaces: list[dict[str, Any]]) -> None:
        self.types = {ns["type"] for ns in namespaces}
        self.join = {ns["type"]: ns["path"] for ns in namespaces if ns.get("path")}
        self.new = self.types - set(self.join)
        for kind, path in self.join.items():
            if not os.path.exists(path):
                raise RuntimeFailure(f"namespace {kind}: path {path} does not exist")

    @classmethod
    def joining(cls, types: set[str]) -> NamespacePlan:
        """A plan that creates nothing: the namespaces are joined from a process (exec)."""
        plan = cls([])
        plan.types = set(types)
        return plan

    @property
    def new_user(self) -> bool:
        return "user" in self.new

    def unshare_flags(self, exclude_user: bool = True) -> int:
        flags = 0
        for kind in self.new:
            if kind == "user" and exclude_user:
                continue
            flags |= CLONE_FLAGS[kind]
        return flags

    @property
    def direct(self) -> bool:
        """Whether the init can be forked straight into its namespaces (see create.spawn_direct):
        not with a user namespace (it must own the others, with its id maps written first), nor
        when joining a pid namespace or creating a time one (both apply to children only)."""
        return "user" not in self.types and "pid" not in self.join and "time" not in self.new

    def open_join_fds(self) -> list[tuple[str, int]]:
        """Open the namespaces to join now (while host paths are visible), in join order."""
        fds = []
        for kind in JOIN_ORDER:
            if kind in self.join:
                fds.append((kind, os.open(self.join[kind], os.O_RDONLY | os.O_CLOEXEC)))
        return fds


def join_all(fds: list[tuple[str, int]]) -> None:
    """setns into each open namespace fd, closing them."""
    for kind, fd in fds:
        try:
            s.setns(fd, CLONE_FLAGS[kind])
        except OSError as e:
            raise RuntimeFailure(f"cannot join {kind} namespace: {e.strerror}") from None
        finally:
            os.close(fd)


def process_namespace_fds(pid: int, kinds: set[str]) -> list[tuple[str, int]]:
    """Open /proc/<pid>/ns/* for an exec, skipping namespaces identical to ours."""
    fds = []
    for kind in JOIN_ORDER:
        if kind not in kinds:
            continue
        name = PROC_NAMES[kind]
        target = f"/proc/{pid}/ns/{name}"
        try:
            if os.readlink(target) == os.readlink(f"/proc/self/ns/{name}"):
                continue
            fds.append((kind, os.open(target, os.O_RDONLY | os.O_CLOEXEC)))
        except FileNotFoundError:
            continue
    return fds


def write_id_maps(pid: int, linux: dict[str, Any]) -> None:
    """Write uid_map/gid_map of a process that just unshared its user namespace."""
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key) or [])
        if not lines:
            raise RuntimeFailure(f"a new user namespace needs linux.{key}")
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(lines)
        except OSError as e:
            raise RuntimeFailure(f"cannot write {name} ({lines.strip()!r}): {e.strerror}") from None
