"""`--user` resolution against the container's own /etc/passwd and /etc/group (as runc does)."""

from __future__ import annotations

import os

from dockyard.engine.containers.errors import ContainerError


def _entries(rootfs: str, name: str) -> list[list[str]]:
    path = os.path.join(rootfs, "etc", name)
    if os.path.islink(path):  # never follow a link out of the rootfs
        return []
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _lookup(entries: list[list[str]], key: str, min_fields: int) -> list[str] | None:
    for fields in entries:
        if len(fields) >= min_fields and (fields[0] == key or (key.isdigit() and fields[2] == key)):
            return fields
    return None


def resolve_user(rootfs: str, user: str, group_add: list[str] | None = None) -> dict:
    """The OCI process.user for Docker's User ("name", "uid", "name:group", "uid:gid", "")."""
    user_part, _, group_part = (user or "").partition(":")
    passwd = _entries(rootfs, "passwd")
    groups = _entries(rootfs, "group")
    uid, gid, name = 0, 0, "root"
    if user_part:
        found = _lookup(passwd, user_part, 4)
        if found:
            name, uid, gid = found[0], int(found[2]), int(found[3])
        elif user_part.isdigit():
            uid, name = int(user_part), ""
        else:
            raise ContainerError(f"unable to find user {user_part}: no matching entries in passwd file")
    elif passwd and (root := _lookup(passwd, "0", 4)):
        name, gid = root[0], int(root[3])
    if group_part:
        found = _lookup(groups, group_part, 3)
        if found:
            gid = int(found[2])
        elif group_part.isdigit():
            gid = int(group_part)
        else:
            raise ContainerError(f"unable to find group {group_part}: no matching entries in group file")
    extra = [int(g[2]) for g in groups if len(g) >= 4 and name and name in g[3].split(",")]
    for entry in group_add or []:
        found = _lookup(groups, entry, 3)
        if found:
            extra.append(int(found[2]))
        elif entry.isdigit():
            extra.append(int(entry))
        else:
            raise ContainerError(f"unable to find group {entry}: no matching entries in group file")
    out: dict = {"uid": uid, "gid": gid}
    extra = sorted(set(extra) - {gid})
    if extra:
        out["additionalGids"] = extra
    return out
