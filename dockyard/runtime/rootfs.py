"""Building the container's root filesystem inside its new mount namespace.

Order (as runc): set root propagation, bind the rootfs onto itself, do the config's mounts (in
order, destinations resolved inside the rootfs), create /dev's devices and links, then — after
the createContainer hooks — pivot_root into it, mask and write-protect paths, and make the
root read-only when asked.
"""

from __future__ import annotations

import stat

from dockyard.runtime import oslite as os
from dockyard.runtime import syscalls as s
from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.mountopts import PROPAGATION, MountOptions
from dockyard.runtime.paths import open_in_root

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_DEVICES = [  # path, type, major, minor
    ("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7),
    ("/dev/random", "c", 1, 8), ("/dev/urandom", "c", 1, 9), ("/dev/tty", "c", 5, 0),
]
DEV_LINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
             ("pts/ptmx", "/dev/ptmx")]


def _current_flags(path: str) -> int:
    """nosuid/nodev/noexec of the mount at path: a bind remount must keep them (the kernel
    locks them in user namespaces)."""
    st = os.statvfs(path)
    flags = 0
    for bit, flag in ((os.ST_NOSUID, s.MS_NOSUID), (os.ST_NODEV, s.MS_NODEV), (os.ST_NOEXEC, s.MS_NOEXEC)):
        if st.f_flag & bit:
            flags |= flag
    return flags


def _remount_readonly(path: str) -> None:
    s.mount(None, path, None, s.MS_BIND | s.MS_REMOUNT | s.MS_RDONLY | _current_flags(path))


def _mount_bind(src: str, dest: str, opts: MountOptions, via: str | None = None) -> None:
    """Bind src on dest (through via, a /proc/self/fd path of dest, when given), then remount
    with the flags a bind mount cannot take at once."""
    s.mount(src, via or dest, None, opts.flags & (s.MS_BIND | s.MS_REC))
    extra = opts.remount_flags
    if extra:
        try:
            s.mount(None, dest, None, s.MS_BIND | s.MS_REMOUNT | extra)
        except PermissionError:
            s.mount(None, dest, None, s.MS_BIND | s.MS_REMOUNT | extra | _current_flags(dest))


def _mount_cgroups(dest: str, via: str, opts: MountOptions, cgroup: Any, cgroupns: bool) -> None:
    sources = cgroup.mount_sources() if cgroup is not None else []
    flags = opts.flags & ~s.MS_RDONLY
    if cgroup is not None and cgroup.version == 2:
        if cgroupns:
            s.mount("cgroup2", via, "cgroup2", opts.flags)
        else:
            s.mount(sources[0][1], via, None, s.MS_BIND | s.MS_REC)
            s.mount(None, dest, None, s.MS_BIND | s.MS_REMOUNT | opts.remount_flags)
        return
    s.mount("tmpfs", via, "tmpfs", flags, "mode=755")
    controllers = _kernel_controllers() if cgroupns else set()
    for sub, host_path in sources:
        target = os.path.join(dest, sub)
        os.makedirs(target, exist_ok=True)
        if cgroupns:
            # A hierarchy named after no controller (systemd's) is a named one: "none,name=X".
            known = set(sub.split(",")) <= controllers
            s.mount("cgroup", target, "cgroup", opts.flags, sub if known else f"none,name={sub}")
        else:
            s.mount(host_path, target, None, s.MS_BIND | s.MS_REC)
            s.mount(None, target, None, s.MS_BIND | s.MS_REMOUNT | opts.remount_flags)
        if "," in sub:
            for alias in sub.split(","):
                link = os.path.join(dest, alias)
                if not os.path.lexists(link):
                    os.symlink(sub, link)
    if opts.flags & s.MS_RDONLY:
        s.mount(None, dest, None, s.MS_REMOUNT | opts.flags, "mode=755")


def _kernel_controllers() -> set[str]:
    with open("/proc/cgroups") as f:
        return {line.split()[0] for line in f if not line.startswith("#")}


def _check_plain_directory(rootfs: str, destination: str, kind: str) -> None:
    """proc and sysfs go on an ordinary directory only, never through a symlink (as runc): a
    rootfs whose /proc leads elsewhere must not get procfs mounted over what it points to."""
    path = rootfs
    for part in os.path.normpath("/" + destination.lstrip("/")).split("/")[1:]:
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            raise RuntimeFailure(f"filesystem {kind!r} must be mounted on an ordinary directory: "
                                 f"{destination} is not one in the rootfs")


def mount_entry(rootfs: str, m: dict[str, Any], cgroup: Any, ns_types: set[str]) -> None:
    """Perform one entry of config.mounts under rootfs (a real path: no symlinks)."""
    opts = MountOptions(m.get("options") or [])
    kind = m.get("type") or ("bind" if opts.is_bind else "")
    source = m.get("source", "")
    if kind == "bind" and not opts.is_bind:
        opts.flags |= s.MS_BIND
    if kind in ("proc", "sysfs"):
        _check_plain_directory(rootfs, m["destination"], kind)
    if opts.is_bind and not os.path.exists(source):
        raise RuntimeFailure(f"mount {m['destination']}: bind source {source} does not exist")
    # The destination is opened inside the rootfs (created if missing) and the first mount goes
    # through its descriptor: a path swapped for a symlink meanwhile cannot move it elsewhere.
    fd = open_in_root(rootfs, m["destination"], "file" if opts.is_bind and not os.path.isdir(source) else "dir")
    try:
        via = f"/proc/self/fd/{fd}"
        dest = os.readlink(via)
        if dest != rootfs and not dest.startswith(rootfs.rstrip("/") + "/"):
            raise RuntimeFailure(f"mount destination {m['destination']} resolves outside the rootfs: {dest}")
        if opts.is_bind:
            _mount_bind(source, dest, opts, via)
        elif kind == "cgroup":
            _mount_cgroups(dest, via, opts, cgroup, "cgroup" in ns_types)
        elif kind == "sysfs" and "network" not in ns_types:
            # sysfs cannot be mounted from another network namespace's view: bind the host's.
            _mount_bind("/sys", dest, MountOptions(["rbind", *(m.get("options") or [])]), via)
        elif kind == "mqueue" and "ipc" not in ns_types:
            _mount_bind("/dev/mqueue", dest, MountOptions(["rbind", *(m.get("options") or [])]), via)
        else:
            s.mount(source or kind, via, kind, opts.flags, opts.data)
    finally:
        os.close(fd)
    for prop in opts.propagation:
        s.mount(None, dest, None, prop)


def _make_device(dev_dir: int, name: str, path: str, kind: str, major: int, minor: int, mode: int,
                 uid: int, gid: int, in_userns: bool) -> None:
    """Make the device node `name` in the directory open at dev_dir (replacing what is there);
    path is where the container sees it, and in a user namespace the host's node bound there."""
    try:
        os.unlink(name, dir_fd=dev_dir)
    except FileNotFoundError:
        pass
    if in_userns:  # mknod is not allowed in a user namespace: bind the host's node instead
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755,
                         dir_fd=dev_dir))
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev_dir)
        try:
            s.mount(path, f"/proc/self/fd/{fd}", None, s.MS_BIND)
        finally:
            os.close(fd)
        return
    type_bits = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
    os.mknod(name, type_bits | (mode & 0o7777), os.makedev(major, minor), dir_fd=dev_dir)
    os.chown(name, uid, gid, dir_fd=dev_dir, follow_symlinks=False)


def setup_dev(rootfs: str, config: dict[str, Any], ns_types: set[str]) -> None:
    """Create default devices, config devices and the standard /dev symlinks, each relative to
    its directory's descriptor (opened inside the rootfs as mount destinations are)."""
    in_userns = "user" in ns_types
    binds_dev = any(m["destination"].rstrip("/") == "/dev" and MountOptions(m.get("options") or []).is_bind
                    for m in config.get("mounts") or [])
    old_umask = os.umask(0)  # nodes get exactly their mode; directories made on the way 0755
    try:
        if not binds_dev:
            dev = open_in_root(rootfs, "/dev", "dir")
            try:
                for path, kind, major, minor in DEFAULT_DEVICES:
                    _make_device(dev, os.path.basename(path), path, kind, major, minor, 0o666, 0, 0, in_userns)
                for src, link in DEV_LINKS:
                    try:
                        os.symlink(src, os.path.basename(link), dir_fd=dev)
                    except FileExistsError:
                        pass
            finally:
                os.close(dev)
        for d in (config.get("linux") or {}).get("devices") or []:
            parent, name = os.path.split(d["path"])
            dev_dir = open_in_root(rootfs, parent, "dir")
            try:
                _make_device(dev_dir, name, d["path"], d["type"], d.get("major", 0), d.get("minor", 0),
                             d.get("fileMode", 0o666), d.get("uid", 0), d.get("gid", 0), in_userns)
            finally:
                os.close(dev_dir)
    finally:
        os.umask(old_umask)


def prepare(rootfs: str, config: dict[str, Any], cgroup: Any, ns_types: set[str],
            enter_cgroup: Callable[[], None] | None = None) -> None:
    """Everything before pivot_root: propagation, the rootfs bind, mounts and /dev.
    enter_cgroup, when given, is called once before the first cgroup mount, or before /dev's
    devices are made: what comes earlier overlaps the runtime's set-up of the cgroup."""
    rootfs = os.path.realpath(rootfs)  # once here: each mount destination is checked against it
    linux = config.get("linux") or {}
    prop = PROPAGATION.get(linux.get("rootfsPropagation") or "", s.MS_SLAVE | s.MS_REC)
    s.mount(None, "/", None, prop | s.MS_REC)
    if prop & (s.MS_SHARED | s.MS_UNBINDABLE):
        _make_parent_private(rootfs)  # for the bind below and pivot_root; a slave or private one will do
    s.mount(rootfs, rootfs, None, s.MS_BIND | s.MS_REC)
    for m in config.get("mounts") or []:
        if enter_cgroup is not None and m.get("type") == "cgroup":
            enter_cgroup()
            enter_cgroup = None
        try:
            mount_entry(rootfs, m, cgroup, ns_types)
        except OSError as e:
            raise RuntimeFailure(f"error mounting {m.get('source', '')!r} to rootfs at "
                                 f"{m['destination']!r}: {e.strerror or e}") from None
    if enter_cgroup is not None:
        enter_cgroup()
    setup_dev(rootfs, config, ns_types)
    cwd = (config.get("process") or {}).get("cwd") or "/"
    if cwd != "/":  # as runc: a missing cwd (say, inside a fresh volume) is made after the mounts
        try:
            os.close(open_in_root(rootfs, cwd, "dir"))
        except OSError:
            pass  # chdir reports it


def _make_parent_private(rootfs: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared, and an unbindable one cannot
    be bound onto itself: make that mount private."""
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split(" ", 5)[4]
            if (rootfs == mnt or rootfs.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best = mnt
    s.mount(None, best, None, s.MS_PRIVATE)


def pivot(rootfs: str, no_pivot: bool = False) -> None:
    """Make rootfs the root: pivot_root, or MS_MOVE + chroot where pivot_root cannot work."""
    if not no_pivot:
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
        new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY)
        try:
            os.fchdir(new_root)
            s.pivot_root(".", ".")
            os.fchdir(old_root)
            s.mount(None, ".", None, s.MS_SLAVE | s.MS_REC)
            s.umount2(".", s.MNT_DETACH)
            os.chdir("/")
            return
        except OSError as e:
            if e.errno != 22:  # EINVAL: the current root is a ramfs; fall back below
                raise
        finally:
            os.close(old_root)
            os.close(new_root)
    os.chdir(rootfs)
    s.mount(rootfs, "/", None, s.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def finish(config: dict[str, Any]) -> None:
    """After pivot_root: masked and read-only paths, the propagation asked for, a read-only root."""
    linux = config.get("linux") or {}
    for path in linux.get("readonlyPaths") or []:
        try:
            s.mount(path, path, None, s.MS_BIND | s.MS_REC)
        except FileNotFoundError:
            continue
        _remount_readonly(path)
    for path in linux.get("maskedPaths") or []:
        try:
            if os.path.isdir(path):
                s.mount("tmpfs", path, "tmpfs", s.MS_RDONLY)
            else:
                s.mount("/dev/null", path, None, s.MS_BIND)
        except FileNotFoundError:
            continue
    prop = linux.get("rootfsPropagation")
    if prop:
        s.mount(None, "/", None, PROPAGATION[prop])
    if (config.get("root") or {}).get("readonly"):
        _remount_readonly("/")
