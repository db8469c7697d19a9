"""The container's mounts: Docker's defaults; Binds (`-v`), Mounts (`--mount`), Tmpfs, VolumesFrom
and the image's / Config's Volumes planned into Docker's MountPoints (what inspect shows as
"Mounts"), in Docker's precedence; and those MountPoints turned into OCI mount entries."""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Callable
from typing import Any

from dockyard.engine.containers import subpaths
from dockyard.engine.containers.errors import InvalidParameter, NotFound

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
_TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_MODE_GROUPS = (("ro", "rw"), ("z", "Z"), _PROPAGATIONS, ("nocopy",), ("consistent", "cached", "delegated"))
Point = dict[str, Any]  # a MountPoint: Docker's inspect keys, plus "_copy", "_labels", "_options" while planning


def _valid_mode(mode: str) -> bool:
    """Docker's linuxValidMountMode: known words, at most one of each kind."""
    if not mode:
        return True
    words = mode.split(",")
    if any(not any(w in group for group in _MODE_GROUPS) for w in words):
        return False
    return all(sum(w in group for w in words) <= 1 for group in _MODE_GROUPS)


def clean_destination(kind: str, target: str) -> str:
    """A mount target as Docker checks and cleans it (path.Clean: `..` cannot climb above /)."""
    def refuse(why: str) -> InvalidParameter:
        return InvalidParameter(f'invalid mount config for type "{kind}": {why}')
    if not target:
        raise refuse("field Target must not be empty")
    if posixpath.normpath(target) in ("/", "//"):
        raise refuse("invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise refuse(f"invalid mount path: '{target}' mount path must be absolute")
    return posixpath.normpath("/" + target.lstrip("/"))


def _point(kind: str, destination: str, rw: bool, **extra: Any) -> Point:
    point = {"Type": kind, "Source": "", "Destination": destination, "Mode": "", "RW": rw, "Propagation": ""}
    point.update(extra)
    return point


def parse_bind(raw: str) -> Point:
    """A Binds entry (`-v [src:]dst[:mode]`) as Docker's ParseMountRaw reads it."""
    parts = raw.split(":", 3)
    invalid = InvalidParameter(f"invalid volume specification: '{raw}'")
    if not parts[0] or len(parts) > 3 or (len(parts) == 2 and _valid_mode(parts[1])):
        raise invalid
    source, target = ("", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    mode = parts[2] if len(parts) == 3 else ""
    if not _valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    words = mode.split(",")
    kind = "bind" if source.startswith("/") else "volume"
    try:
        destination = clean_destination(kind, target)
    except InvalidParameter as e:
        raise InvalidParameter(f"{invalid}: {e}") from None
    rw = "ro" not in words
    propagation = next((w for w in words if w in _PROPAGATIONS), "")
    if kind == "bind":
        return _point("bind", destination, rw, Source=posixpath.normpath(source), Mode=mode,
                      Propagation=propagation or "rprivate")
    return _point("volume", destination, rw, Name=source, Driver="local", Mode=mode or "z",
                  _copy="nocopy" not in words)


def parse_mount(m: dict[str, Any]) -> Point:
    """A HostConfig.Mounts entry (`--mount`) as Docker's ParseMountSpec reads it."""
    kind = m.get("Type") or ""
    target, source = m.get("Target") or "", m.get("Source") or ""
    def refuse(why: str) -> InvalidParameter:
        return InvalidParameter(f'invalid mount config for type "{kind}": {why}')
    for key, owner in (("BindOptions", "bind"), ("VolumeOptions", "volume"), ("TmpfsOptions", "tmpfs")):
        if m.get(key) and kind != owner:
            raise refuse(f"field {key} must not be specified")
    if kind not in ("bind", "volume", "tmpfs"):
        raise refuse("mount type unknown")
    destination = clean_destination(kind, target)
    rw = not m.get("ReadOnly")
    if kind == "bind":
        bind = m.get("BindOptions") or {}
        propagation = bind.get("Propagation") or "rprivate"
        if propagation not in _PROPAGATIONS:
            raise refuse(f"invalid propagation mode: {propagation}")
        if not source:
            raise refuse("field Source must not be empty")
        if not source.startswith("/"):
            raise refuse(f"invalid mount path: '{source}' mount path must be absolute")
        if not os.path.exists(source) and not bind.get("CreateMountpoint"):
            raise refuse(f"bind source path does not exist: {source}")
        return _point("bind", destination, rw, Source=posixpath.normpath(source), Propagation=propagation)
    if kind == "tmpfs":
        if source:
            raise refuse("field Source must not be specified")
        return _point("tmpfs", destination, rw)
    options = m.get("VolumeOptions") or {}
    if options.get("Subpath"):
        if not source:
            raise refuse("must not set Subpath when using anonymous volumes")
        subpaths.check(options["Subpath"])
    driver = (options.get("DriverConfig") or {}).get("Name") or "local"
    return _point("volume", destination, rw, Name=source, Driver=driver, Mode="z", _copy=not options.get("NoCopy"),
                  _labels=options.get("Labels"), _options=(options.get("DriverConfig") or {}).get("Options"))


def parse_volumes_from(spec: str) -> tuple[str, bool]:
    """`container[:ro|rw]` -> (container, read-write)."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    words = mode.split(",") if mode else []
    if not _valid_mode(mode) or any(w in _PROPAGATIONS or w == "nocopy" for w in words):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, "ro" not in words


def plan(config: dict[str, Any], hc: dict[str, Any], mounts_of: Callable[[str], list[Point]]) -> list[Point]:
    """The container's MountPoints in Docker's precedence: volumes of --volumes-from containers
    (mounts_of gives a container's), then Binds, then Mounts (a destination given twice by these
    is refused), then an anonymous volume for each Config.Volumes path not covered yet."""
    points: dict[str, Point] = {}
    tmpfs = {clean_destination("tmpfs", d) for d in hc.get("Tmpfs") or {}}
    for spec in hc.get("VolumesFrom") or []:
        ref, rw = parse_volumes_from(spec)
        try:
            found = mounts_of(ref)
        except NotFound as e:  # a 400, as Docker answers (a 404 would make the CLI pull the image)
            raise InvalidParameter(str(e)) from None
        for p in found:
            points[p["Destination"]] = {**p, "RW": p["RW"] and rw, "Mode": "", "_copy": False}
    explicit: set[str] = set()
    for point in [parse_bind(b) for b in hc.get("Binds") or []] + [parse_mount(m) for m in hc.get("Mounts") or []]:
        destination = point["Destination"]
        if destination in explicit or destination in tmpfs:
            raise InvalidParameter(f"Duplicate mount point: {destination}")
        explicit.add(destination)
        points[destination] = point
    for path in config.get("Volumes") or {}:
        destination = clean_destination("volume", path)
        if destination not in points and destination not in tmpfs:
            points[destination] = _point("volume", destination, True, Name="", Driver="local", _copy=True)
    return list(points.values())


def public(points: list[Point]) -> list[Point]:
    """MountPoints as stored and inspected (planning keys dropped)."""
    return [{k: v for k, v in p.items() if not k.startswith("_")} for p in points]


def make_bind_sources(hc: dict[str, Any]) -> None:
    """Create the missing host directories of `-v` binds and of `--mount` binds asking for it
    (CreateMountpoint), as Docker does at start."""
    sources = [p["Source"] for p in map(parse_bind, hc.get("Binds") or []) if p["Type"] == "bind"]
    sources += [m["Source"] for m in hc.get("Mounts") or []
                if m.get("Type") == "bind" and (m.get("BindOptions") or {}).get("CreateMountpoint")]
    for source in sources:
        if not os.path.lexists(source):
            os.makedirs(source, mode=0o755, exist_ok=True)


def _tmpfs(destination: str, options: list[str]) -> dict[str, Any]:
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": _TMPFS_DEFAULTS + options}


def _bind(source: str, destination: str, readonly: bool, propagation: str = "rprivate",
          recursive: bool = True) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": source,
            "options": ["rbind" if recursive else "bind", "ro" if readonly else "rw", propagation or "rprivate"]}


def _tmpfs_options(spec: dict[str, Any], readonly: bool) -> list[str]:
    options = ["ro"] if readonly else []
    tmpfs = spec.get("TmpfsOptions") or {}
    if tmpfs.get("SizeBytes"):
        options.append(f"size={tmpfs['SizeBytes']}")
    if tmpfs.get("Mode"):
        options.append(f"mode={tmpfs['Mode']:o}")
    options += ["=".join(o) for o in tmpfs.get("Options") or []]
    return options


def oci_mounts(points: list[Point], hc: dict[str, Any]) -> list[dict[str, Any]]:
    """OCI entries for a container's MountPoints (sources resolved) and its Tmpfs, shallowest
    destination first so that a mount never hides another (Docker's sortMounts)."""
    specs = {clean_destination("tmpfs", m.get("Target") or "/x"): m for m in hc.get("Mounts") or []
             if m.get("Type") == "tmpfs"}
    nonrecursive = {m.get("Target"): bool((m.get("BindOptions") or {}).get("NonRecursive"))
                    for m in hc.get("Mounts") or [] if m.get("Type") == "bind"}
    out = []
    for p in points:
        if p["Type"] == "tmpfs":
            out.append(_tmpfs(p["Destination"], _tmpfs_options(specs.get(p["Destination"]) or {}, not p["RW"])))
        else:
            out.append(_bind(p["Source"], p["Destination"], not p["RW"], p.get("Propagation") or "rprivate",
                             not nonrecursive.get(p["Destination"])))
    out += [_tmpfs(clean_destination("tmpfs", dst), [o for o in (opts or "").split(",") if o])
            for dst, opts in (hc.get("Tmpfs") or {}).items()]
    out.sort(key=lambda m: m["destination"].count("/"))
    return out


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
