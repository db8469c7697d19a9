"""Host cgroup layout: mode detection, hierarchy mounts (parsed once) and cgroupsPath resolution."""

from __future__ import annotations

from dockyard.runtime import oslite as os

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = ""  # key of the cgroup2 hierarchy in /proc/<pid>/cgroup ("0::/path")
# Host facts read once per process (not functools.cache: importing functools and collections
# costs ~2 ms on every runtime command).
_mode: str | None = None
_hierarchies: tuple[Hierarchy, ...] | None = None
_own: dict[str, str] | None = None


class Hierarchy:
    """One mounted cgroup hierarchy: its key in /proc/<pid>/cgroup ("cpu,cpuacct", "memory",
    "name=systemd", or "" for cgroup2), its mountpoint and its mount root."""

    __slots__ = ("key", "mountpoint", "root")

    def __init__(self, key: str, mountpoint: str, root: str) -> None:
        self.key = key
        self.mountpoint = mountpoint
        self.root = root

    def __repr__(self) -> str:
        return f"Hierarchy({self.key!r}, {self.mountpoint!r}, {self.root!r})"

    @property
    def controllers(self) -> list[str]:
        """The controllers (or the "name=..." of a named hierarchy) in this hierarchy."""
        return self.key.split(",") if self.key else []

    def host_path(self, cgroup: str) -> str:
        """Host path of a cgroup as named in /proc/<pid>/cgroup, given this mount's root."""
        rel = os.path.relpath(cgroup, self.root)
        if rel.startswith(".."):  # outside the mounted subtree: best effort, relative to the mount
            rel = cgroup.lstrip("/")
        return os.path.normpath(os.path.join(self.mountpoint, rel))


def cgroup_mode() -> str:
    """The host's cgroup mode: "v2" (pure cgroup2), "hybrid" (v1 controllers plus cgroup2) or "v1"."""
    global _mode
    if _mode is None:
        if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
            _mode = "v2"
        else:
            _mode = "hybrid" if any(h.key == UNIFIED for h in hierarchies()) else "v1"
    return _mode


def hierarchies() -> tuple[Hierarchy, ...]:
    """Every cgroup hierarchy mounted in this mount namespace, from /proc/self/mountinfo (read once)."""
    global _hierarchies
    if _hierarchies is None:
        with open("/proc/self/mountinfo") as f:
            _hierarchies = parse_mountinfo(f.read())
    return _hierarchies


def parse_mountinfo(text: str) -> tuple[Hierarchy, ...]:
    """The cgroup hierarchies in mountinfo text (first mount of each); co-mounted controllers share a key."""
    found: dict[str, Hierarchy] = {}
    for line in text.splitlines():
        fields, sep, tail = line.partition(" - ")
        if not sep or not tail.startswith("cgroup"):
            continue
        fstype, _source, superopts = tail.split(" ", 2)
        parts = fields.split(" ")
        root, mountpoint = _unescape(parts[3]), _unescape(parts[4])
        if fstype == "cgroup2":
            key = UNIFIED
        elif fstype == "cgroup":
            key = ",".join(o for o in superopts.split(",") if o.startswith("name=") or
                           ("=" not in o and o not in _GENERIC_OPTS))
        else:
            continue
        found.setdefault(key, Hierarchy(key, mountpoint, root))
    return tuple(found.values())


_GENERIC_OPTS = {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods", "nsdelegate",
                 "memory_recursiveprot", "memory_localevents", "memory_hugetlb_accounting"}


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escaping (\\040 for a space, etc.)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def proc_cgroups(pid: int | str = "self") -> dict[str, str]:
    """/proc/<pid>/cgroup as {hierarchy key: cgroup path}."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _id, key, path = line.rstrip("\n").split(":", 2)
            out[key] = path
    return out


def own_cgroups() -> dict[str, str]:
    """The calling process's cgroups (read once)."""
    global _own
    if _own is None:
        _own = proc_cgroups("self")
    return _own


def clean_path(path: str | None) -> str:
    """Normalise cgroupsPath like runc: absolute stays absolute, relative paths cannot climb above their base."""
    if not path:
        return ""
    path = os.path.normpath(path)
    if not path.startswith("/"):
        path = os.path.relpath(os.path.normpath("/" + path), "/")
    return "" if path == "." else path


def inner_path(cgroups_path: str | None, container_id: str) -> str:
    """The cgroup path to use: cgroupsPath, or the container id when it is empty."""
    return clean_path(cgroups_path) or clean_path(container_id)


def locate_under(pid_cgroup: str, inner: str) -> str | None:
    """The prefix of pid_cgroup that ends in the relative path inner (deepest match), or None."""
    want = [p for p in inner.split("/") if p]
    have = [p for p in pid_cgroup.split("/") if p]
    for end in range(len(have), len(want) - 1, -1):
        if have[end - len(want):end] == want:
            return "/" + "/".join(have[:end])
    return None


def resolve_v1(inner: str, root_pid: int | None = None) -> list[tuple[Hierarchy, str]]:
    """Host path of the cgroup in each v1 hierarchy (plus the cgroup2 one in hybrid mode).

    Absolute paths are below each hierarchy's mountpoint; relative ones below the caller's own cgroup,
    or, when root_pid is given and already lives under such a path, where that process actually is.
    """
    own = own_cgroups()
    theirs = _pid_cgroups(root_pid) if root_pid and not inner.startswith("/") else {}
    out = []
    for h in hierarchies():
        if h.key not in own or (h.key.startswith("name=") and h.key != "name=systemd"):
            continue  # like runc, other tools' named hierarchies are left alone
        if inner.startswith("/"):
            out.append((h, os.path.join(h.mountpoint, inner.lstrip("/"))))
            continue
        found = locate_under(theirs.get(h.key, ""), inner)
        out.append((h, h.host_path(found) if found else os.path.join(h.host_path(own[h.key]), inner)))
    return out


def resolve_v2(inner: str, root_pid: int | None = None) -> str:
    """Host path of the cgroup on a pure cgroup2 host.

    Like runc, a relative path is placed below the parent of the caller's cgroup (the caller's own cgroup
    holds processes, so controllers could not be enabled for a child of it).
    """
    if inner.startswith("/"):
        return os.path.join(CGROUP_ROOT, inner.lstrip("/"))
    if root_pid:
        found = locate_under(_pid_cgroups(root_pid).get(UNIFIED, ""), inner)
        if found:
            return os.path.join(CGROUP_ROOT, found.lstrip("/"))
    parent = os.path.dirname(own_cgroups().get(UNIFIED, "/"))
    return os.path.normpath(os.path.join(CGROUP_ROOT, parent.lstrip("/"), inner))


def _pid_cgroups(pid: int) -> dict[str, str]:
    try:
        return proc_cgroups(pid)
    except (FileNotFoundError, ProcessLookupError):
        return {}
