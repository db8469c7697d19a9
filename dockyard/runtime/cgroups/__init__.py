"""cgroups for dockyard-runtime (cgroupfs driver, like runc's): v1, hybrid and v2 hosts.

    cg = open_cgroup(spec["linux"].get("cgroupsPath"), container_id)
    cg.create(); cg.apply(spec["linux"].get("resources", {})); cg.add_process(pid)
"""

from __future__ import annotations

from dockyard.runtime.cgroups.base import Cgroup, CgroupError
from dockyard.runtime.cgroups.paths import UNIFIED, cgroup_mode, inner_path, resolve_v1, resolve_v2

__all__ = ["Cgroup", "CgroupError", "cgroup_mode", "open_cgroup"]


def open_cgroup(cgroups_path: str | None, container_id: str, root_pid: int | None = None) -> Cgroup:
    """The container's cgroup (not created yet): cgroupsPath resolved as runc does for cgroupfs.

    Absolute paths are taken below each hierarchy's root; relative ones below the caller's cgroup (on pure
    v2, below its parent, as runc); an empty path means the container id. When root_pid (the container's
    init) is given, a relative path is looked up where that process really is, so commands run from
    another cgroup than `create` still find the container.
    """
    inner = inner_path(cgroups_path, container_id)
    if not inner:
        raise CgroupError("no cgroupsPath and no container id to name the cgroup")
    if cgroup_mode() == "v2":
        from dockyard.runtime.cgroups.v2 import CgroupV2

        return CgroupV2(resolve_v2(inner, root_pid))
    from dockyard.runtime.cgroups.v1 import CgroupV1

    # A hybrid host's cgroup2 hierarchy only matters when it holds controllers: joining it costs
    # an RCU grace period per container start (see Cgroup.join_self), for bookkeeping alone.
    targets = [(h, path) for h, path in resolve_v1(inner, root_pid)
               if h.key != UNIFIED or _has_controllers(h.mountpoint)]
    if not targets:
        raise CgroupError("no cgroup hierarchy is mounted (see /proc/self/mountinfo)")
    return CgroupV1(targets)


def _has_controllers(mountpoint: str) -> bool:
    try:
        with open(f"{mountpoint}/cgroup.controllers") as f:
            return bool(f.read().strip())
    except OSError:
        return False
