"""Docker's API shapes for containers: GET /containers/{id}/json and GET /containers/json."""

from __future__ import annotations

import calendar
import copy
import time
from typing import Any

from dockyard.engine.containers.errors import InvalidParameter
from dockyard.engine.networks import views as network_views
from dockyard.humanize import human_duration
from dockyard.image.filters import labels_match, match

ZERO_TIME = "0001-01-01T00:00:00Z"


def initial_state() -> dict[str, Any]:
    """State of a container that has just been created."""
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
            "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def inspect(record: dict[str, Any], driver: str) -> dict[str, Any]:
    """The GET /containers/{id}/json body."""
    r = copy.deepcopy(record)
    return {
        "Id": r["ID"], "Created": r["Created"], "Path": r["Path"], "Args": r["Args"], "State": r["State"],
        "Image": r["Image"], "ResolvConfPath": r["ResolvConfPath"], "HostnamePath": r["HostnamePath"],
        "HostsPath": r["HostsPath"], "LogPath": r["LogPath"], "Name": r["Name"],
        "RestartCount": r.get("RestartCount", 0), "Driver": driver, "Platform": "linux", "MountLabel": "",
        "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None, "HostConfig": r["HostConfig"],
        "GraphDriver": {"Name": driver, "Data": None}, "Mounts": r.get("Mounts") or [], "Config": r["Config"],
        "NetworkSettings": network_views.public(r.get("NetworkSettings") or network_views.network_settings({})),
    }


def _epoch(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S"))


def _ago(stamp: str) -> str:
    return human_duration(time.time() - _epoch(stamp))


def status_text(state: dict[str, Any]) -> str:
    """The `docker ps` STATUS column."""
    if state["Status"] == "restarting":
        return f"Restarting ({state['ExitCode']}) {_ago(state['FinishedAt'])} ago"
    if state["Running"]:
        health = (state.get("Health") or {}).get("Status")
        suffix = " (Paused)" if state["Paused"] else f" (health: {health})" if health == "starting" else \
            f" ({health})" if health else ""
        return f"Up {_ago(state['StartedAt'])}{suffix}"
    if state["Status"] == "exited":
        return f"Exited ({state['ExitCode']}) {_ago(state['FinishedAt'])} ago"
    return state["Status"].capitalize()


def summary(record: dict[str, Any], image_name: str, size: tuple[int, int] | None) -> dict[str, Any]:
    """One entry of GET /containers/json."""
    path_args = " ".join([record["Path"], *record["Args"]])
    out = {
        "Id": record["ID"], "Names": [record["Name"]], "Image": image_name, "ImageID": record["Image"],
        "Command": path_args, "Created": _epoch(record["Created"]),
        "Ports": network_views.port_list((record.get("NetworkSettings") or {}).get("Ports") or {}),
        "Labels": record["Config"].get("Labels") or {}, "State": record["State"]["Status"],
        "Status": status_text(record["State"]),
        "HostConfig": {"NetworkMode": record["HostConfig"].get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": network_views.public(record.get("NetworkSettings") or
                                                             network_views.network_settings({}))["Networks"]},
        "Mounts": record.get("Mounts") or [],
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


_FILTERS = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "health", "network",
            "volume", "publish", "expose", "is-task"}
_STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
_HEALTH = {"starting", "healthy", "unhealthy", "none"}


def check_filters(filters: dict[str, list[str]]) -> None:
    """Refuse unknown filter names and statuses, with Docker's texts."""
    for key, values in filters.items():
        if key not in _FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
        if key == "status":
            for v in values:
                if v not in _STATUSES:
                    raise InvalidParameter(f"Invalid filter 'status={v}'")
        if key == "health":
            for v in values:
                if v not in _HEALTH:
                    raise InvalidParameter(f"Unrecognised filter value for health: {v}")


def _port_key(value: str) -> str:
    """"80" → "80/tcp" (filters name ports as ExposedPorts keys)."""
    port, _, proto = value.partition("/")
    return f"{port}/{proto or 'tcp'}"


def matches(record: dict[str, Any], filters: dict[str, list[str]], image_ids: dict[str, str]) -> bool:
    """Whether a record passes the filters, as Docker: keys AND-ed; the values of one key OR-ed,
    except label's, which must all match."""
    tests = {
        "id": lambda v: record["ID"].startswith(v),
        # as dockerd: a regular expression on the name with or without its slash (link names only
        # pre-select there: the container's own name decides)
        "name": lambda v: match(v, record["Name"]) or match(v, record["Name"].lstrip("/")),
        "label": lambda v: labels_match([v], record["Config"].get("Labels")),
        "status": lambda v: record["State"]["Status"] == v,
        "health": lambda v: (record["State"].get("Health") or {}).get("Status", "none") == v,
        "exited": lambda v: record["State"]["Status"] == "exited" and str(record["State"]["ExitCode"]) == v,
        "ancestor": lambda v: image_ids.get(v) == record["Image"] or record["Config"].get("Image") == v,
        "volume": lambda v: any(v in (m.get("Name") or m["Source"], m["Destination"]) for m in record.get("Mounts") or []),
        "network": lambda v: any(v in (name, ep.get("NetworkID")) for name, ep in networks.items()),
        "publish": lambda v: _port_key(v) in published,
        "expose": lambda v: _port_key(v) in exposed,
    }
    settings = record.get("NetworkSettings") or {}
    networks = settings.get("Networks") or {}
    published = {f"{b['HostPort']}/{key.partition('/')[2]}" for key, bindings in (settings.get("Ports") or {}).items()
                 for b in bindings or []}
    exposed = set(record["Config"].get("ExposedPorts") or {}) | set(settings.get("Ports") or {})
    for key, values in filters.items():
        test = tests.get(key)
        combine = all if key == "label" else any
        if test and values and not combine(test(v) for v in values):
            return False
    return True
