"""Mount descriptions returned by snapshotters, and mounting / unmounting them.

A Mount has the shape of an OCI config "mounts" entry: type, source, options with absolute
paths. Snapshotters never shorten them. mount(2) takes at most one page of options, which an
overlay exceeds from about a hundred layers on; Mount.mount() handles that itself:
  - Linux >= 6.8: the new mount API, one fsconfig("lowerdir+") call per layer (no length limit);
  - older kernels: the lower layers are rewritten relative to their common parent directory
    (<root>/snapshots, so each is "<id>/fs") and mount(2) runs in a helper process started
    with that directory as its working directory. A helper process (not chdir) because the
    working directory is per process and the daemon is threaded.
Such an over-long entry cannot be handed to an OCI runtime that mounts with mount(2): the
engine mounts the root filesystem itself with mount_all() (as Docker does) in that case.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from dockyard.image.snapshot import newmount
from dockyard.runtime import syscalls as s
from dockyard.runtime.mountopts import MountOptions

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# Run by the helper process: mount(2) with relative paths from its working directory.
_MOUNT_FROM_CWD = (
    "import sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from dockyard.runtime import syscalls\n"
    "try:\n"
    "    syscalls.mount(sys.argv[2], sys.argv[3], 'overlay', int(sys.argv[4]), sys.argv[5])\n"
    "except OSError as e:\n"
    "    print(e.strerror, file=sys.stderr)\n"
    "    sys.exit(e.errno)\n"
)


@dataclass
class Mount:
    """One mount: type ("bind", "overlay"), source, options (OCI/mount(8) style)."""

    type: str
    source: str
    options: list[str] = field(default_factory=list)

    def mount(self, target: str) -> None:
        """Mount this on the existing directory target."""
        if self.type == "overlay":
            _clear_volatile_marker(self.options)
        opts = MountOptions(self.options)
        if opts.is_bind or self.type == "bind":
            _mount_bind(self.source, target, opts)
        elif self.type == "overlay" and len(opts.data or "") >= PAGE_SIZE:
            _mount_long_overlay(self.source, opts, target)
        else:
            s.mount(self.source, target, self.type, opts.flags, opts.data)
        for propagation in opts.propagation:
            s.mount(None, target, None, propagation)

    def to_oci(self, destination: str = "/") -> dict:
        """This mount as an OCI config "mounts" entry (see the module docstring for long chains)."""
        return {"destination": destination, "type": self.type, "source": self.source,
                "options": list(self.options)}


def volatile(mounts: list[Mount]) -> list[Mount]:
    """mounts with overlays made "volatile" (kernel 5.10+): no sync of the upper filesystem, not
    even when unmounting, where it otherwise waits for every dirty page of the host's filesystem
    (tens of milliseconds on a busy host). For throwaway upper directories only (a --rm
    container's, a mount that only reads): after a crash their content may be incomplete. The
    kernel marks the work directory; the next mount of the snapshot clears the mark."""
    return [Mount(m.type, m.source, [*m.options, "volatile"]) if m.type == "overlay" and "volatile" not in m.options
            else m for m in mounts]


def _clear_volatile_marker(options: list[str]) -> None:
    """Remove the mark a volatile mount left in its work directory (the kernel refuses the next
    mount while it is there); only dockyard's throwaway mounts (see volatile()) leave it."""
    for option in options:
        if option.startswith("workdir="):
            marker = os.path.join(option.partition("=")[2], "work", "incompat", "volatile")
            try:
                os.rmdir(marker)
            except FileNotFoundError:
                pass
            except OSError:
                shutil.rmtree(marker, ignore_errors=True)


def _mount_bind(source: str, target: str, opts: MountOptions) -> None:
    s.mount(source, target, None, s.MS_BIND | (opts.flags & s.MS_REC))
    if opts.remount_flags:
        s.mount(None, target, None, s.MS_BIND | s.MS_REMOUNT | opts.remount_flags)


def _mount_long_overlay(source: str, opts: MountOptions, target: str) -> None:
    params = (opts.data or "").split(",")
    lowers = next(p for p in params if p.startswith("lowerdir=")).partition("=")[2].split(":")
    rest = [p for p in params if not p.startswith("lowerdir=")]
    if newmount.lowerdir_append_supported():
        newmount.mount_overlay(source, rest, lowers, opts.flags, target)
    else:
        _mount_from_common_dir(source, rest, lowers, opts.flags, target)


def _mount_from_common_dir(source: str, params: list[str], lowers: list[str], flags: int,
                           target: str) -> None:
    """mount(2) an overlay with lower layers given relative to their common directory, from a
    helper process working there (the fallback for kernels without "lowerdir+")."""
    base = os.path.commonpath(lowers)
    data = ",".join([*params, "lowerdir=" + ":".join(os.path.relpath(p, base) for p in lowers)])
    if len(data) >= PAGE_SIZE:
        raise OSError(errno.E2BIG, f"overlay options for {len(lowers)} layers exceed one page even "
                                   f"relative to {base}")
    proc = subprocess.run([sys.executable, "-IS", "-c", _MOUNT_FROM_CWD, _PACKAGE_ROOT, source,
                           os.path.abspath(target), str(flags), data],
                          cwd=base, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode:
        raise OSError(proc.returncode, f"mount overlay on {target} from {base}: {proc.stderr.strip()}")


def mount_all(mounts: list[Mount], target: str) -> None:
    """Mount each of mounts on target in order; on failure the ones already done are undone. A
    kernel without volatile overlays (before 5.10) gets the mounts without that option."""
    try:
        _mount_all(mounts, target)
    except OSError as e:
        if e.errno != errno.EINVAL or not any("volatile" in m.options for m in mounts):
            raise
        _mount_all([Mount(m.type, m.source, [o for o in m.options if o != "volatile"]) for m in mounts], target)


def _mount_all(mounts: list[Mount], target: str) -> None:
    done = 0
    try:
        for m in mounts:
            m.mount(target)
            done += 1
    except BaseException:
        for _ in range(done):
            s.umount2(target, s.MNT_DETACH)
        raise


def unmount(target: str) -> None:
    """Unmount everything mounted on target (stacked mounts too). No error if nothing is
    mounted there or target does not exist; a busy mount is detached lazily."""
    while True:
        try:
            s.umount2(target)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                return
            if e.errno != errno.EBUSY:
                raise
            s.umount2(target, s.MNT_DETACH)


def _unescape(field_: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for a space...)."""
    return field_.encode().decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape")


def mounts_under(path: str) -> list[str]:
    """Mount points at or below path in this mount namespace, in mount order."""
    base = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [_unescape(line.split()[4]) for line in f]
    return [p for p in points if p == base or p.startswith(base.rstrip("/") + "/")]
