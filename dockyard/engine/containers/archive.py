"""docker cp and docker export: a container's files seen from the host (its rootfs mount, mounted
for the time of the call when the container does not run, plus its bind mounts), paths resolved
with symlinks followed inside the container only, tars written by the image store's layer writer
and read by its safe layer applier."""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard.engine.containers.errors import InvalidParameter, NotFound
from dockyard.image.layer_apply import LayerApplyError, apply_layer
from dockyard.image.layer_diff import write_layer, write_tree
from dockyard.image.snapshot import mount_all, unmount
from dockyard.image.snapshot.mount import mounts_under
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.paths import open_in_root, secure_join
from dockyard.shim.logs import rfc3339nano

if TYPE_CHECKING:
    from dockyard.engine.containers.service import ContainerService

# Go's os.FileMode type bits (the "mode" of X-Docker-Container-Path-Stat)
_GO_TYPES = ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISBLK, 1 << 26), (stat.S_ISFIFO, 1 << 25),
             (stat.S_ISSOCK, 1 << 24), (stat.S_ISCHR, (1 << 26) | (1 << 21)))
_GO_SPECIAL = ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20))
_users: dict[str, int] = {}  # container ID -> calls using its rootfs mount (under the service's lock)


def go_file_mode(mode: int) -> int:
    """A st_mode as Go's os.FileMode (what the docker CLI decodes)."""
    out = mode & 0o777
    out |= next((bit for test, bit in _GO_TYPES if test(mode)), 0)
    return out | sum(bit for flag, bit in _GO_SPECIAL if mode & flag)


def mount_points(record: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(destination, host source, writable) of the container's mounts that the host can see,
    deepest first. The hook for volumes: a mount point with a host Source in record["Mounts"]
    (inspect's MountPoints) is used as is."""
    points = [(m["Destination"], os.path.realpath(m["Source"]), m.get("RW", True) is not False)
              for m in record.get("Mounts") or []
              if m.get("Source") and m.get("Destination") and os.path.isabs(m["Source"])]
    return sorted(points, key=lambda p: len(p[0]), reverse=True)


class ContainerFiles:
    """A container's filesystem for one call (a context manager: the rootfs is mounted while in use)."""

    def __init__(self, service: ContainerService, ref: str) -> None:
        self.service = service
        self.ref = ref
        self.record = service.store.get(service.store.resolve(ref))
        self.cid = self.record["ID"]
        self.rootfs = service._rootfs(self.cid)
        self.mounts = mount_points(self.record)

    def __enter__(self) -> ContainerFiles:
        with self.service.locked(self.cid):
            if not mounts_under(self.rootfs):
                mount_all(self.service.images.snapshots.mounts(self.cid), self.rootfs)
            _users[self.cid] = _users.get(self.cid, 0) + 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self.service.locked(self.cid):
            _users[self.cid] -= 1
            if _users[self.cid]:
                return
            del _users[self.cid]
            with contextlib.suppress(NotFound):
                if not self.service.store.get(self.cid)["State"]["Running"]:
                    unmount(self.rootfs)

    def _mount_of(self, path: str) -> tuple[str, str, bool] | None:
        """The mount point holding the container path, None for the rootfs."""
        return next((m for m in self.mounts if path == m[0] or path.startswith(m[0].rstrip("/") + "/")), None)

    def _root_of(self, path: str) -> tuple[str, str, str]:
        """(host directory, its container path, the rest of path below it) of a container path
        whose symlinks are resolved inside the rootfs: the mount point holding it, or the rootfs."""
        try:
            resolved = posixpath.normpath("/" + os.path.relpath(secure_join(self.rootfs, path), self.rootfs))
        except RuntimeFailure as e:
            raise InvalidParameter(str(e)) from None
        mount = self._mount_of(resolved)
        if mount is None:
            return self.rootfs, "/", resolved
        return mount[1], mount[0], resolved[len(mount[0]):] or "/"

    def _resolved(self, path: str) -> str:
        """The container path of path with every symlink resolved (inside a mount's source past
        a mount point); what a symlink's linkTarget reports."""
        root, prefix, rest = self._root_of(path)
        if root != self.rootfs:
            try:
                rest = os.path.relpath(secure_join(root, rest), root)
            except RuntimeFailure as e:
                raise InvalidParameter(str(e)) from None
        return posixpath.normpath(posixpath.join(prefix, rest))

    @contextlib.contextmanager
    def opened(self, path: str, follow: bool = False) -> Iterator[tuple[str, str]]:
        """(host path, container path) of path, valid inside the block: its directory is held open
        (resolved by the kernel inside the rootfs or a mount's source), so a running container
        cannot redirect it meanwhile; the last component is followed only when follow (or when
        path ends in "/" or "/."). Docker's 404 when a directory on the way is missing."""
        clean = posixpath.normpath("/" + path)
        if follow or path.endswith(("/", "/.")):
            clean = self._resolved(clean)
        if clean == "/":
            yield self.rootfs, "/"
            return
        parent, base = posixpath.split(clean)
        root, prefix, rest = self._root_of(parent)
        target = posixpath.normpath(posixpath.join(prefix, rest, base))
        mount = next((m for m in self.mounts if m[0] == target), None)
        if mount is not None:  # a mount point itself: its source
            yield mount[1], target
            return
        try:
            fd = open_in_root(root, rest)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"Could not find the file {path} in container {self.ref}") from None
        try:
            inside = posixpath.normpath(posixpath.join(prefix, os.path.relpath(os.readlink(f"/proc/self/fd/{fd}"), root)))
            yield f"/proc/self/fd/{fd}/{base}", posixpath.join(inside, base)
        finally:
            os.close(fd)

    def _lstat(self, host: str, path: str) -> os.stat_result:
        try:
            return os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"Could not find the file {path} in container {self.ref}") from None

    def stat(self, path: str) -> dict[str, Any]:
        """HEAD /containers/{id}/archive: the X-Docker-Container-Path-Stat document."""
        with self.opened(path) as (host, _):
            st = self._lstat(host, path)
        clean = posixpath.normpath("/" + path)
        target = self._resolved(clean) if stat.S_ISLNK(st.st_mode) else ""
        name = "." if path.endswith("/.") else posixpath.basename(clean) or "/"
        return {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode),
                "mtime": rfc3339nano(st.st_mtime_ns), "linkTarget": target}

    def write_archive(self, path: str, out: BinaryIO) -> None:
        """GET /containers/{id}/archive: path as a tar (named after its last component, "." for
        a path ending in "/.", whose contents are then the entries)."""
        clean = posixpath.normpath("/" + path)
        name = "." if path.endswith("/.") or clean == "/" else posixpath.basename(clean)
        with self.opened(path) as (host, _):
            self._lstat(host, path)
            write_tree(host, out, name)

    def extract(self, path: str, stream: BinaryIO, no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> None:
        """PUT /containers/{id}/archive: unpack a tar into the directory path."""
        with self.opened(path, follow=True) as (host, resolved):
            if not stat.S_ISDIR(self._lstat(host, path).st_mode):
                raise InvalidParameter("extraction point is not a directory")
            mount = self._mount_of(resolved)
            if mount is not None and not mount[2]:
                raise InvalidParameter("mounted volume is marked read-only")
            if mount is None and self.record["HostConfig"].get("ReadonlyRootfs"):
                raise InvalidParameter("container rootfs is marked read-only")
            try:
                apply_layer(stream, host, whiteouts="naive", same_owner=copy_uid_gid,
                            replace_kind=not no_overwrite_dir_non_dir)
            except LayerApplyError as e:
                raise InvalidParameter(str(e)) from None


def export(service: ContainerService, ref: str, out: BinaryIO) -> None:
    """GET /containers/{id}/export: the container's whole filesystem as a tar."""
    with ContainerFiles(service, ref) as files:
        write_layer(files.rootfs, out, mode="compare")
