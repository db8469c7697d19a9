"""Docker's API shapes for networks and for a container's network settings."""

from __future__ import annotations

import copy
from typing import Any

from dockyard.engine.networks.errors import InvalidParameter

LIST_FILTERS = frozenset({"dangling", "driver", "id", "label", "name", "scope", "type"})
PREDEFINED = ("bridge", "host", "none")


def network(record: dict[str, Any], endpoints: list[dict[str, Any]] | None) -> dict[str, Any]:
    """GET /networks/{id} (endpoints given) or one entry of GET /networks (Containers empty)."""
    out = {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}
    out["Containers"] = {
        ep["ContainerID"]: {"Name": ep["Name"], "EndpointID": ep["EndpointID"], "MacAddress": ep["MacAddress"],
                            "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}" if ep["IPAddress"] else "",
                            "IPv6Address": f"{ep['GlobalIPv6Address']}/{ep['GlobalIPv6PrefixLen']}"
                            if ep.get("GlobalIPv6Address") else ""}
        for ep in endpoints or []}
    return out


def endpoint_settings(network_id: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """A container's EndpointSettings for one network before it runs (the request's config kept)."""
    config = config or {}
    return {"IPAMConfig": config.get("IPAMConfig") or None, "Links": config.get("Links") or None,
            "Aliases": config.get("Aliases") or None, "MacAddress": config.get("MacAddress") or "",
            "_Mac": config.get("MacAddress") or "",
            "DriverOpts": config.get("DriverOpts") or None, "GwPriority": config.get("GwPriority") or 0,
            "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}


def clear_endpoint(settings: dict[str, Any]) -> None:
    """Drop what only holds while the container runs."""
    settings.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, DNSNames=None,
                    IPv6Gateway="", GlobalIPv6Address="", GlobalIPv6PrefixLen=0, MacAddress=settings.get("_Mac", ""))


_TOP_LEVEL = {"EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
              "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": ""}


def network_settings(networks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A container's NetworkSettings (Docker's, deprecated top-level fields included)."""
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, **_TOP_LEVEL, "Networks": networks}


def refresh_top_level(settings: dict[str, Any]) -> None:
    """The deprecated top-level address fields mirror the default bridge network's endpoint."""
    bridge = settings["Networks"].get("bridge") or {}
    settings.update({key: bridge.get(key, empty) for key, empty in _TOP_LEVEL.items()})


def public(settings: dict[str, Any]) -> dict[str, Any]:
    """NetworkSettings as the API shows them (private keys dropped)."""
    out = copy.deepcopy(settings)
    for ep in out.get("Networks", {}).values():
        for key in [k for k in ep if k.startswith("_")]:
            del ep[key]
    return out


def port_list(ports: dict[str, list[dict[str, str]] | None]) -> list[dict[str, Any]]:
    """GET /containers/json "Ports" from NetworkSettings.Ports."""
    out: list[dict[str, Any]] = []
    for key, bindings in ports.items():
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto})
        for b in bindings or []:
            out.append({"IP": b["HostIp"], "PrivatePort": int(port), "PublicPort": int(b["HostPort"]),
                        "Type": proto})
    return out


def matches(record: dict[str, Any], filters: dict[str, list[str]], used: bool) -> bool:
    """Whether a network passes GET /networks filters (used: it has endpoints, for dangling)."""
    from dockyard.image import filters as flt

    tests = {
        "driver": lambda v: record["Driver"] == v,
        "id": lambda v: flt.match(v, record["Id"]),
        "name": lambda v: flt.match(v, record["Name"]),
        "scope": lambda v: record["Scope"] == v,
        "type": lambda v: (record["Name"] in PREDEFINED) == (v == "builtin"),
        "dangling": lambda v: (not used and record["Name"] not in PREDEFINED) == (v.lower() in ("true", "1")),
    }
    for value in filters.get("type", []):
        if value not in ("custom", "builtin"):
            raise InvalidParameter(f"invalid filter: 'type'='{value}'")
    for key, values in filters.items():
        if key == "label":
            if not flt.labels_match(values, record.get("Labels")):
                return False
        elif key in tests and values and not any(tests[key](v) for v in values):
            return False
    return True
