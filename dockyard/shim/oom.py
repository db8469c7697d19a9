"""Whether the kernel's OOM killer fired in a container's memory cgroup: read at its exit, before
the runtime's delete removes the cgroup (the shim does that when it deletes the container itself)."""

from __future__ import annotations

import json
import os


def oom_killed(cgroups_path: str) -> bool:
    """Whether the memory cgroup at cgroups_path (absolute, as in an OCI config) counts an OOM
    kill: cgroup v1, v2, or a hybrid host's unified hierarchy."""
    for path, key in ((f"/sys/fs/cgroup/memory{cgroups_path}/memory.oom_control", "oom_kill"),
                      (f"/sys/fs/cgroup{cgroups_path}/memory.events", "oom_kill"),
                      (f"/sys/fs/cgroup/unified{cgroups_path}/memory.events", "oom_kill")):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key and int(value) > 0:
                        return True
        except (FileNotFoundError, ValueError):
            continue
    return False


def bundle_oom_killed(bundle: str) -> bool:
    """oom_killed for the absolute linux.cgroupsPath of a bundle's config.json (False without one)."""
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            path = (json.load(f).get("linux") or {}).get("cgroupsPath")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(path, str) and path.startswith("/") and oom_killed(path)
