"""Volume subpaths (`--mount type=volume,volume-subpath=DIR`, VolumeOptions.Subpath).

At each start the subpath is opened inside its volume one component at a time (symlinks resolved
as if the volume were `/`, so nothing outside it can be reached) and bind-mounted from that
descriptor onto a staging mount point under `<exec-root>/subpaths/<id>/`: the staged mount is
pinned to what was opened, and a container sharing the volume cannot swap a component for a
symlink between the check and the runtime's mount (as Docker's safepath package does).
The runtime mounts the staged path; once the container is created its mount namespace holds its
own copy and the staging mounts go (`release`). Nothing here ever removes a tree: only mount
points, so a leftover staging mount can never lead to deleting a volume's files."""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from typing import Any

from dockyard.engine.containers.errors import ContainerError, InvalidParameter
from dockyard.runtime.paths import open_in_root
from dockyard.runtime.syscalls import MNT_DETACH, MS_BIND, mount, umount2

Point = dict[str, Any]


def check(subpath: str) -> None:
    """Docker's rule: a relative path that stays inside the volume."""
    clean = posixpath.normpath(subpath)
    if subpath.startswith("/") or clean == ".." or clean.startswith("../"):
        raise InvalidParameter('invalid mount config for type "volume": subpath must be a relative path '
                               "within the volume")


def by_destination(hc: dict[str, Any]) -> dict[str, str]:
    """Target → Subpath of the container's volume mounts that have one."""
    return {posixpath.normpath(m["Target"]): sub for m in hc.get("Mounts") or []
            if m.get("Type") == "volume" and (sub := (m.get("VolumeOptions") or {}).get("Subpath"))}


def stage(points: list[Point], hc: dict[str, Any], directory: str) -> list[Point]:
    """points with each subpath volume's Source replaced by a staging mount of the subpath
    (made under directory, which release() empties again)."""
    wanted = by_destination(hc)
    if not wanted:
        return points
    os.makedirs(directory, mode=0o700, exist_ok=True)
    out = []
    for n, p in enumerate(points):
        sub = wanted.get(p["Destination"]) if p["Type"] == "volume" else None
        if sub is None:
            out.append(p)
            continue
        try:
            fd = open_in_root(p["Source"], sub)
        except OSError as e:
            release(directory)
            raise ContainerError(f"cannot access path {posixpath.join(p['Source'], sub)}: {e.strerror}") from None
        try:
            target = os.path.join(directory, str(n))
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.mkdir(target, 0o700)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
        except OSError:
            release(directory)
            raise
        finally:
            os.close(fd)
        out.append({**p, "Source": target})
    return out


def release(directory: str) -> None:
    """Unmount and remove the staging mount points under directory, then directory itself."""
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
        for entry in list(entries):
            with contextlib.suppress(OSError):
                umount2(entry.path, MNT_DETACH)
            with contextlib.suppress(OSError):
                (os.rmdir if entry.is_dir(follow_symlinks=False) else os.unlink)(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(directory)
