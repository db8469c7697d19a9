"""The docker CLI's mount flags: `-v` split into Binds and anonymous Config.Volumes, and
`--mount` CSV specs turned into HostConfig.Mounts entries (docker's opts/mount.go)."""

from __future__ import annotations

import os

from dockyard.cli.flags import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TRUE, _FALSE = ("", "1", "true", "t", "yes"), ("0", "false", "f", "no")


def split_volumes(values: list[str]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """-v values -> (Binds, Config.Volumes): a lone path is an anonymous volume; a relative
    host path starting with "." is made absolute."""
    binds: list[str] = []
    anonymous: dict[str, dict[str, Any]] = {}
    for value in values:
        source, sep, rest = value.partition(":")
        if not sep:
            anonymous[value] = {}
            continue
        if source.startswith("."):
            source = os.path.abspath(source)
        binds.append(source + sep + rest)
    return binds, anonymous


def _bool(key: str, value: str, spec: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise UsageError(f'invalid argument "{spec}" for "--mount" flag: invalid value for {key}: {value}')


def parse_mount(spec: str, ram_bytes: Any) -> dict[str, Any]:
    """One --mount value -> a HostConfig.Mounts entry (ram_bytes parses tmpfs-size)."""
    mount: dict[str, Any] = {"Type": "volume"}
    volume: dict[str, Any] = {}
    bind: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}

    def bad(why: str) -> UsageError:
        return UsageError(f'invalid argument "{spec}" for "--mount" flag: {why}')
    for field in spec.split(","):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            raise bad(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, value, spec)
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(key, value, spec)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(key, value, spec)
        elif key == "volume-label":
            k, _, v = value.partition("=")
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-subpath":
            volume["Subpath"] = value
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = ram_bytes(value)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise bad(f"invalid value for {key}: {value}") from None
        else:
            raise bad(f"unexpected key '{key}' in '{field}'")
    if not mount.get("Target"):
        raise bad("target is required")
    for options, key, kind in ((bind, "BindOptions", "bind"), (volume, "VolumeOptions", "volume"),
                               (tmpfs, "TmpfsOptions", "tmpfs")):
        if options:
            if mount["Type"] != kind:
                raise bad(f"cannot mix '{kind}-*' options with mount type '{mount['Type']}'")
            mount[key] = options
    return mount
