"""Project networks and volumes over the Engine API: found or created with Docker Compose's
labels, external ones checked, removed by `down`."""

from __future__ import annotations

from typing import Any

from dockyard.client.api import APIError, Client
from dockyard.compose.convert import (
    COMPOSE_VERSION,
    LABEL_NETWORK,
    LABEL_PROJECT,
    LABEL_VERSION,
    LABEL_VOLUME,
)
from dockyard.compose.errors import ComposeError
from dockyard.compose.progress import Progress


def _get(client: Client, path: str) -> dict[str, Any] | None:
    try:
        return client.call("GET", path)
    except APIError as exc:
        if exc.status == 404:
            return None
        raise


def labelled(client: Client, project: str, kind: str) -> dict[str, dict[str, Any]]:
    """The project's networks or volumes the daemon holds (by the project label), by name;
    {} from a daemon without that kind of resource."""
    try:
        found = client.call("GET", f"/{kind}", {"filters": {"label": [f"{LABEL_PROJECT}={project}"]}})
    except APIError as exc:
        if exc.status != 404:  # a daemon without networks
            raise
        return {}
    items = found.get("Volumes") or [] if isinstance(found, dict) else found or []
    return {item["Name"]: item for item in items}


def _foreign(kind: str, name: str, labels: dict[str, str] | None, project: str) -> str | None:
    """Docker Compose's warning for a network or volume the project did not create."""
    owner = (labels or {}).get(LABEL_PROJECT)
    if owner is None:
        return (f'WARN[0000] {kind} "{name}" already exists but was not created by Docker Compose. '
                f"Use `external: true` to use an existing {kind}")
    if owner != project:
        return (f'WARN[0000] {kind} "{name}" already exists but was created for project "{owner}" '
                f'(expected "{project}"). Use `external: true` to use an existing {kind}')
    return None


def ensure_network(client: Client, project: str, key: str, conf: dict[str, Any], progress: Progress,
                   known: dict[str, dict[str, Any]]) -> None:
    """Create the network unless it is among the project's known ones (or, being external,
    exists); one of that name the project did not create is used, with a warning."""
    name = conf["name"]
    if name in known:
        return
    if conf.get("external"):
        if _get(client, f"/networks/{name}") is None:
            raise ComposeError(f'network {name} declared as external, but could not be found')
        return
    ipam = conf.get("ipam") or {}
    body = {"Name": name, "Driver": conf.get("driver") or "bridge", "Options": conf.get("driver_opts") or {},
            "Internal": bool(conf.get("internal")), "Attachable": bool(conf.get("attachable")),
            "EnableIPv6": bool(conf.get("enable_ipv6")), "CheckDuplicate": True,
            "Labels": {**(conf.get("labels") or {}), LABEL_PROJECT: project, LABEL_NETWORK: key,
                       LABEL_VERSION: COMPOSE_VERSION}}
    if ipam:
        body["IPAM"] = {"Driver": ipam.get("driver") or "default",
                        "Config": [{k: c[f] for k, f in (("Subnet", "subnet"), ("Gateway", "gateway"),
                                                          ("IPRange", "ip_range")) if c.get(f)}
                                   for c in ipam.get("config") or []]}
    try:
        client.call("POST", "/networks/create", None, body)
    except APIError as exc:
        if exc.status == 409:  # it exists: not ours (ours were known)
            found = _get(client, f"/networks/{name}") or {}
            warning = _foreign("network", name, found.get("Labels"), project)
            if warning:
                progress.line(warning)
            return
        if exc.status == 404:
            raise ComposeError(f"network {name}: the daemon at {client.host} does not support networks "
                               f"(POST /networks/create: {exc.message}); use network_mode: host or none") from None
        raise ComposeError(f"failed to create network {name}: Error response from daemon: {exc.message}") from None
    progress.event("Network", name, "Creating")
    progress.event("Network", name, "Created")


def ensure_volume(client: Client, project: str, key: str, conf: dict[str, Any], progress: Progress,
                  known: dict[str, dict[str, Any]]) -> None:
    """Create the volume unless it is among the project's known ones (or, being external,
    exists). Creating a volume that exists returns it: labels not ours mean it was there."""
    name = conf["name"]
    if name in known:
        return
    if conf.get("external"):
        if _get(client, f"/volumes/{name}") is None:
            raise ComposeError(f'external volume "{name}" not found')
        return
    made = client.call("POST", "/volumes/create", None, {
        "Name": name, "Driver": conf.get("driver") or "local", "DriverOpts": conf.get("driver_opts") or {},
        "Labels": {**(conf.get("labels") or {}), LABEL_PROJECT: project, LABEL_VOLUME: key,
                   LABEL_VERSION: COMPOSE_VERSION}}) or {}
    warning = _foreign("volume", name, made.get("Labels"), project)
    if warning:
        progress.line(warning)
        return
    progress.event("Volume", f'"{name}"', "Creating")
    progress.event("Volume", f'"{name}"', "Created")


def _delete(client: Client, kind: str, conf: dict[str, Any], progress: Progress) -> None:
    """DELETE the network or volume unless external; one that is already gone is no error."""
    if conf.get("external"):
        return
    name = conf["name"]
    try:
        client.call("DELETE", f"/{kind.lower()}s/{name}")
    except APIError as exc:
        if exc.status == 404:
            return
        raise
    progress.event(kind, name, "Removing")
    progress.event(kind, name, "Removed")


def remove_network(client: Client, conf: dict[str, Any], progress: Progress) -> None:
    _delete(client, "Network", conf, progress)


def remove_volume(client: Client, conf: dict[str, Any], progress: Progress) -> None:
    _delete(client, "Volume", conf, progress)
