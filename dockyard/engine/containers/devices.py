"""HostConfig.Devices, DeviceCgroupRules and privileged mode -> OCI linux.devices and the device
cgroup rules, as dockerd makes them: each node as the host has it (type, numbers, mode, owner), a
directory standing for every node under it."""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from dockyard.engine.containers.errors import ContainerError, InvalidParameter

# what every container may use: null, zero, full, random, urandom, tty, console, ptmx, pts, tun; mknod of any
DEFAULT_DEVICE_RULES = [{"allow": False, "access": "rwm"}] + [
    {"allow": True, "type": t, "major": ma, "minor": mi, "access": acc} for t, ma, mi, acc in (
        ("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"),
        ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"),
        ("c", 5, 1, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"))]
_SKIP_DEV_DIRS = {"/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.lxc", "/dev/.udev"}
_CGROUP_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")


def device_node(path: str, container_path: str) -> dict[str, Any] | None:
    """The OCI linux.devices entry for the host's node at path (not followed when a symlink),
    shown at container_path; None when path is no character or block device."""
    st = os.lstat(path)
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else None
    if kind is None:
        return None
    return {"path": container_path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node under /dev, as OCI linux.devices entries (for privileged containers)."""
    devices = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in _SKIP_DEV_DIRS]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path in ("/dev/console", "/dev/ptmx"):  # the runtime sets these up
                continue
            try:
                node = device_node(path, path)
            except OSError:
                continue
            if node is not None:
                devices.append(node)
    return devices


def _gathering_error(host_path: str, reason: str) -> ContainerError:
    return ContainerError(f'error gathering device information while adding custom device "{host_path}": {reason}')


def _nodes_under(directory: str, container_dir: str) -> list[dict[str, Any]]:
    """The device nodes anywhere under directory (symlinks not followed), shown under container_dir."""
    found = []
    for dirpath, _dirnames, filenames in os.walk(directory):
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            node = device_node(path, container_dir + path[len(directory):])
            if node is not None:
                found.append(node)
    return found


def mapped_devices(mapping: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One HostConfig.Devices entry -> (linux.devices entries, cgroup rules allowing them): a
    node, or every node under a directory; a symlink given is followed first."""
    host_path = mapping.get("PathOnHost") or ""
    container_path = mapping.get("PathInContainer") or host_path
    access = mapping.get("CgroupPermissions") or "rwm"
    resolved = os.path.realpath(host_path) if os.path.islink(host_path) else host_path
    try:
        node = device_node(resolved, container_path)
        nodes = [node] if node is not None else \
            _nodes_under(resolved, container_path) if os.path.isdir(resolved) else []
    except OSError as e:
        reason = e.strerror or str(e)
        raise _gathering_error(host_path, reason[:1].lower() + reason[1:]) from None
    if not nodes:
        raise _gathering_error(host_path, "not a device node")
    rules = [{"allow": True, "type": n["type"], "major": n["major"], "minor": n["minor"], "access": access}
             for n in nodes]
    return nodes, rules


def cgroup_rule(text: str) -> dict[str, Any]:
    """One DeviceCgroupRules entry ("c 1:3 rwm", "*" for any number) as an OCI device rule."""
    found = _CGROUP_RULE.fullmatch(text)
    if found is None:
        raise InvalidParameter(f"invalid device cgroup format '{text}'")
    kind, major, minor, access = found.groups()
    rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    if major != "*":
        rule["major"] = int(major)
    if minor != "*":
        rule["minor"] = int(minor)
    return rule


def validate(hc: dict[str, Any]) -> None:
    """dockerd's create-time checks: device modes of r, w, m and well-formed cgroup rules."""
    for mapping in hc.get("Devices") or []:
        mode = (mapping or {}).get("CgroupPermissions") or ""
        if set(mode) - set("rwm") or len(mode) > 3:
            raise InvalidParameter(f"bad mode specified: {mode}")
    for text in hc.get("DeviceCgroupRules") or []:
        cgroup_rule(text)


def apply(linux: dict[str, Any], hc: dict[str, Any]) -> None:
    """Set linux.devices and linux.resources.devices: Docker's defaults plus the mapped devices
    and cgroup rules, or for a privileged container every host device, all allowed (a mapping
    to another path still adds that node there)."""
    if hc.get("Privileged"):
        devices = host_devices()
        rules: list[dict[str, Any]] = [{"allow": True, "access": "rwm"}]
        for mapping in hc.get("Devices") or []:
            if mapping.get("PathInContainer") not in (None, "", mapping.get("PathOnHost")):
                devices += mapped_devices(mapping)[0]
    else:
        devices = []
        rules = [{k: v for k, v in rule.items() if v is not None} for rule in DEFAULT_DEVICE_RULES]
        for mapping in hc.get("Devices") or []:
            nodes, allowed = mapped_devices(mapping)
            devices += nodes
            rules += allowed
        rules += [cgroup_rule(text) for text in hc.get("DeviceCgroupRules") or []]
    linux["devices"] = devices
    linux["resources"]["devices"] = rules
