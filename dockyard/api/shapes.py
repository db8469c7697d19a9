"""Response shapes per API version: the engine renders the newest shape; these functions make
it the one dockerd shows a client that pinned an older version (fields added later left out,
fields removed later put back)."""

from __future__ import annotations

from typing import Any

Version = tuple[int, ...]


def endpoint(settings: dict[str, Any], version: Version) -> dict[str, Any]:
    """One EndpointSettings: DNSNames from 1.44, GwPriority from 1.48."""
    if version < (1, 48):
        settings.pop("GwPriority", None)
    if version < (1, 44):
        settings.pop("DNSNames", None)
    return settings


def _networks(networks: dict[str, Any] | None, version: Version) -> None:
    for settings in (networks or {}).values():
        endpoint(settings, version)


def container(doc: dict[str, Any], version: Version) -> dict[str, Any]:
    """GET /containers/{id}/json: KernelMemory and KernelMemoryTCP shown before 1.42 (later only
    when set); endpoints per version."""
    _networks((doc.get("NetworkSettings") or {}).get("Networks"), version)
    if version < (1, 42):
        doc["HostConfig"].setdefault("KernelMemory", 0)
        doc["HostConfig"].setdefault("KernelMemoryTCP", 0)
    return doc


def container_summary(doc: dict[str, Any], version: Version) -> dict[str, Any]:
    """One entry of GET /containers/json (and of /system/df's Containers)."""
    _networks((doc.get("NetworkSettings") or {}).get("Networks"), version)
    return doc


def image_summary(doc: dict[str, Any], version: Version) -> dict[str, Any]:
    """One entry of GET /images/json (and of /system/df's Images): VirtualSize before 1.44;
    before 1.43 null for no tags or digests, and "<none>" placeholders for an image with neither."""
    if version < (1, 44):
        doc["VirtualSize"] = doc.get("Size", 0)
    if version < (1, 43):
        if not doc.get("RepoTags") and not doc.get("RepoDigests"):
            doc["RepoTags"], doc["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]
        doc["RepoTags"] = doc.get("RepoTags") or None
        doc["RepoDigests"] = doc.get("RepoDigests") or None
    return doc


def image(doc: dict[str, Any], version: Version) -> dict[str, Any]:
    """GET /images/{name}/json: Container and ContainerConfig before 1.45, VirtualSize before 1.44."""
    if version >= (1, 45):
        doc.pop("Container", None)
        doc.pop("ContainerConfig", None)
    if version < (1, 44):
        doc["VirtualSize"] = doc.get("Size", 0)
    return doc


def system_df(doc: dict[str, Any], version: Version) -> dict[str, Any]:
    """GET /system/df: BuilderSize before 1.42."""
    if version < (1, 42):
        doc["BuilderSize"] = 0
    return doc


def info(doc: dict[str, Any], version: Version, cgroup_version: str) -> dict[str, Any]:
    """GET /info: KernelMemory and KernelMemoryTCP before 1.42 (true on cgroup v1); CDISpecDirs
    from 1.44 (always empty without experimental features)."""
    if version < (1, 42):
        doc["KernelMemory"] = doc["KernelMemoryTCP"] = cgroup_version == "1"
    if version >= (1, 44):
        doc["CDISpecDirs"] = []
    return doc
