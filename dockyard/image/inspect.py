"""Image data in the shapes of Docker's Engine API: image inspect, history and list entries.

The shapes follow API 1.45 as a current dockerd serves it: fields that API version always had are
present with Go's zero values (null for absent lists and maps, "" for strings). Image inspect also
carries Container and ContainerConfig, which only API versions before 1.45 show."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"

_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)

# Config fields the image config carries (omitted when empty), then the container-only fields
# API < 1.50 always showed, with the zero value they are filled with.
_OCI_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes",
               "WorkingDir", "OnBuild", "Labels", "StopSignal", "Shell")
_LEGACY_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}
# a container's Config as dockerd writes it: the fields above, and these only when set
_CONTAINER_OMITEMPTY = ("ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress", "StopSignal",
                        "StopTimeout", "Shell")
_HEALTH_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def rfc3339nano(value: str) -> str:
    """Re-format a timestamp as Go's RFC3339Nano does (trailing fraction zeros dropped, Z for UTC)."""
    match = _TIME_RE.fullmatch(value)
    if match is None:
        return value
    day, clock, fraction, offset = match.groups()
    fraction = (fraction or "")[:9].rstrip("0")
    offset = "Z" if offset in ("Z", "z", "+00:00", "-00:00") else offset
    return f"{day}T{clock}{'.' + fraction if fraction else ''}{offset}"


def unix_seconds(value: str | None) -> int:
    """Seconds since the epoch of an RFC 3339 timestamp; 0 when absent or unreadable."""
    match = _TIME_RE.fullmatch(value or "")
    if match is None:
        return 0
    day, clock, _, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    return int(datetime.fromisoformat(f"{day}T{clock}{offset}").timestamp())


def _empty(value: Any) -> bool:
    return value is None or value == "" or value is False or value == [] or value == {}


def _healthcheck(value: dict[str, Any]) -> dict[str, Any]:
    return {k: value[k] for k in _HEALTH_FIELDS if not _empty(value.get(k)) and value.get(k) != 0}


def api_config(run_config: dict[str, Any] | None) -> dict[str, Any]:
    """The image inspect "Config": image-config fields when set, legacy container fields zeroed."""
    run_config = run_config or {}
    out: dict[str, Any] = {}
    for key in _OCI_FIELDS:
        value = run_config.get(key)
        if key == "Healthcheck" and isinstance(value, dict):
            value = _healthcheck(value) or None
        if not _empty(value):
            out[key] = value
    for key, default in _LEGACY_DEFAULTS.items():
        out.setdefault(key, default)
    return out


def legacy_container_config(container_config: dict[str, Any] | None) -> dict[str, Any]:
    """Image inspect's ContainerConfig (API < 1.45): the config of the container an image was
    committed from, every field dockerd always shows filled with its zero value."""
    out = dict(_LEGACY_DEFAULTS)
    for key, value in (container_config or {}).items():
        if key in _LEGACY_DEFAULTS or (key in _CONTAINER_OMITEMPTY and not _empty(value)):
            out[key] = value
    return out


def _comment(config: dict[str, Any]) -> str:
    comment = config.get("comment") or ""
    history = config.get("history") or []
    if not comment and history:
        comment = history[-1].get("comment") or ""
    return comment


def image_inspect(image_id: str, config: dict[str, Any], repo_tags: list[str], repo_digests: list[str],
                  size: int, graph_driver: dict[str, Any], last_tag_time: str | None) -> dict[str, Any]:
    """GET /images/{name}/json for API 1.45, from the image config document and store facts."""
    out: dict[str, Any] = {
        "Id": image_id,
        "RepoTags": list(repo_tags),
        "RepoDigests": list(repo_digests),
        "Parent": config.get("parent") or "",
        "Comment": _comment(config),
    }
    if config.get("created"):
        out["Created"] = rfc3339nano(config["created"])
    out["DockerVersion"] = config.get("docker_version") or ""
    out["Author"] = config.get("author") or ""
    out["Config"] = api_config(config.get("config"))
    out["Architecture"] = config.get("architecture") or ""
    if config.get("variant"):
        out["Variant"] = config["variant"]
    out["Os"] = config.get("os") or "linux"
    if config.get("os.version"):
        out["OsVersion"] = config["os.version"]
    out["Size"] = size
    out["GraphDriver"] = {"Name": graph_driver.get("Name", ""), "Data": graph_driver.get("Data")}
    rootfs = config.get("rootfs") or {}
    out["RootFS"] = {"Type": rootfs.get("type", "")}
    if rootfs.get("diff_ids"):
        out["RootFS"]["Layers"] = list(rootfs["diff_ids"])
    out["Metadata"] = {"LastTagTime": last_tag_time or ZERO_TIME}
    out["Container"] = config.get("container") or ""
    out["ContainerConfig"] = legacy_container_config(config.get("container_config"))
    return out


def image_history(config: dict[str, Any], layer_sizes: list[int], image_id: str,
                  tags: list[str]) -> list[dict[str, Any]]:
    """GET /images/{name}/history: newest first; only the top entry has the image Id and Tags."""
    sizes = iter(layer_sizes)
    entries = []
    for item in config.get("history") or []:
        size = 0 if item.get("empty_layer") else next(sizes, 0)
        entries.append({
            "Comment": item.get("comment") or "",
            "Created": unix_seconds(item.get("created")),
            "CreatedBy": item.get("created_by") or "",
            "Id": "<missing>",
            "Size": size,
            "Tags": None,
        })
    entries.reverse()
    if entries:
        entries[0]["Id"] = image_id
        entries[0]["Tags"] = list(tags) or None
    return entries


def image_summary(image_id: str, config: dict[str, Any], repo_tags: list[str], repo_digests: list[str],
                  size: int, shared_size: int = -1, containers: int = -1) -> dict[str, Any]:
    """One entry of GET /images/json (SharedSize and Containers are -1 unless computed)."""
    labels = (config.get("config") or {}).get("Labels")
    return {
        "Containers": containers,
        "Created": unix_seconds(config.get("created")),
        "Id": image_id,
        "Labels": labels,
        "ParentId": config.get("parent") or "",
        "RepoDigests": list(repo_digests),
        "RepoTags": list(repo_tags),
        "SharedSize": shared_size,
        "Size": size,
    }
