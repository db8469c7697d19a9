"""The container's mounts: Docker's defaults, --tmpfs, -v host:ctr[:opts] binds and --mount
bind/tmpfs, plus the /etc files and docker-init."""

from __future__ import annotations

import os
import shutil
from typing import Any

from dockyard.engine.containers.errors import InvalidParameter

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
_TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]
_PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}


def default_mounts(shm_size: int, privileged: bool) -> list[dict[str, Any]]:
    """/proc, /dev, /dev/pts, /sys, /sys/fs/cgroup, /dev/mqueue and /dev/shm, as Docker mounts them
    (/sys and the cgroup tree writable only for privileged containers)."""
    ro = [] if privileged else ["ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *(ro or ["rw"])]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size or DEFAULT_SHM_SIZE}"]},
    ]


def _tmpfs(destination: str, options: list[str]) -> dict[str, Any]:
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": _TMPFS_DEFAULTS + options}


def _bind(source: str, destination: str, readonly: bool, propagation: str = "rprivate") -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": source,
            "options": ["rbind", "ro" if readonly else "rw", propagation]}


def parse_bind(spec: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """-v host:ctr[:opts] -> (OCI mount, Docker's MountPoint for inspect). A missing host
    directory is created, as Docker does for -v."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    source, destination = parts[0], parts[1]
    if not os.path.isabs(source):
        raise InvalidParameter(f"invalid volume specification: '{spec}': named volumes are not supported yet")
    if not os.path.isabs(destination):
        raise InvalidParameter(f"invalid volume specification: '{spec}': mount path must be absolute")
    opts = parts[2].split(",") if len(parts) == 3 else []
    unknown = [o for o in opts if o not in {"ro", "rw", "z", "Z", "nocopy", *_PROPAGATIONS}]
    if unknown:
        raise InvalidParameter(f"invalid mode: {','.join(unknown)}")
    propagation = next((o for o in opts if o in _PROPAGATIONS), "rprivate")
    os.makedirs(source, exist_ok=True)
    readonly = "ro" in opts
    point = {"Type": "bind", "Source": source, "Destination": destination, "Mode": parts[2] if len(parts) == 3 else "",
             "RW": not readonly, "Propagation": propagation}
    return _bind(source, destination, readonly, propagation), point


def parse_mount(m: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """--mount type=bind|tmpfs (HostConfig.Mounts entry) -> (OCI mount, MountPoint)."""
    kind, target, source = m.get("Type"), m.get("Target") or "", m.get("Source") or ""
    if not os.path.isabs(target):
        raise InvalidParameter(f"invalid mount config for type \"{kind}\": mount path must be absolute")
    readonly = bool(m.get("ReadOnly"))
    if kind == "bind":
        if not os.path.exists(source):
            raise InvalidParameter(f"invalid mount config for type \"bind\": bind source path does not exist: {source}")
        propagation = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
        point = {"Type": "bind", "Source": source, "Destination": target, "Mode": "", "RW": not readonly,
                 "Propagation": propagation}
        return _bind(source, target, readonly, propagation), point
    if kind == "tmpfs":
        if source:
            raise InvalidParameter("invalid mount config for type \"tmpfs\": source must not be specified")
        tmpfs = m.get("TmpfsOptions") or {}
        options = ["ro"] if readonly else []
        if tmpfs.get("SizeBytes"):
            options.append(f"size={tmpfs['SizeBytes']}")
        if tmpfs.get("Mode"):
            options.append(f"mode={tmpfs['Mode']:o}")
        point = {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": not readonly,
                 "Propagation": ""}
        return _tmpfs(target, options), point
    raise InvalidParameter(f"mount type {kind!r} is not supported yet (bind and tmpfs are)")


def user_mounts(host_config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Binds, Mounts and Tmpfs of a HostConfig -> (OCI mounts, inspect MountPoints)."""
    pairs = [parse_bind(b) for b in host_config.get("Binds") or []]
    pairs += [parse_mount(m) for m in host_config.get("Mounts") or []]
    oci = [p[0] for p in pairs]
    oci += [_tmpfs(dst, [o for o in (opts or "").split(",") if o]) for dst, opts in
            (host_config.get("Tmpfs") or {}).items()]
    seen: set[str] = set()
    for m in oci:
        if m["destination"] in seen:
            raise InvalidParameter(f"Duplicate mount point: {m['destination']}")
        seen.add(m["destination"])
    return oci, [p[1] for p in pairs]


def init_binary() -> str:
    """The host's tini for --init: the static build if installed."""
    for name in ("tini-static", "tini"):
        path = shutil.which(name) or ""
        if path:
            return path
    raise InvalidParameter("--init needs tini on the host (apt-get install tini)")


def etc_mounts(paths: dict[str, str], user_destinations: set[str], readonly: bool) -> list[dict[str, Any]]:
    """Bind mounts of the /etc files (read-only with a read-only rootfs), unless the user mounts
    something on them."""
    return [_bind(src, dst, readonly) for dst, src in paths.items() if dst not in user_destinations]
