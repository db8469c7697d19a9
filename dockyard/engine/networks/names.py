"""The embedded DNS's view of names: per user-defined network, each running container's DNS names
and address, and its --link aliases there. Kept in memory: the DNS thread asks, and must not block."""

from __future__ import annotations

import threading
from typing import NamedTuple


class Member(NamedTuple):
    """One container on one network."""

    names: list[str]  # lower-cased DNSNames
    ip: str
    name: str  # the container's name (PTR answers)
    ip6: str = ""  # its IPv6 address on a dual-stack network


def links_of(links: list[str]) -> dict[str, str]:
    """--link entries ("name:alias", or "name") as {alias: container name}, lower-cased."""
    out = {}
    for link in links:
        name, _, alias = link.lstrip("/").partition(":")
        out[(alias.rpartition("/")[2] or name).lower()] = name.lower()
    return out


class NameTable:
    """Names by network; a query is answered from the querying container's networks only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: dict[str, dict[str, Member]] = {}  # network ID -> container ID -> member
        self._network_names: dict[str, str] = {}
        self._links: dict[tuple[str, str], dict[str, str]] = {}  # (container, network) -> {alias: name}

    def add(self, network_id: str, network_name: str, cid: str, member: Member, links: list[str]) -> None:
        """A container joined a network."""
        with self._lock:
            self._network_names[network_id] = network_name
            self._members.setdefault(network_id, {})[cid] = member._replace(names=[n.lower() for n in member.names])
            self._links[(cid, network_id)] = links_of(links)

    def remove(self, network_id: str, cid: str) -> None:
        """A container left a network."""
        with self._lock:
            self._members.get(network_id, {}).pop(cid, None)
            self._links.pop((cid, network_id), None)

    def _peers(self, key: str) -> list[tuple[str, list[Member], dict[str, str]]]:
        with self._lock:
            return [(self._network_names[nid], list(members.values()), self._links.get((key, nid), {}))
                    for nid, members in self._members.items() if key in members]

    def resolve(self, key: str, name: str, version: int = 4) -> list[str] | None:
        """Addresses of an IP version of name seen from container key (name, alias, short ID,
        hostname, link alias, each also as name.<network>); None when it is none of these, []
        when it is a name without addresses of that version (an IPv4-only container's AAAA)."""
        name = name.rstrip(".").lower()
        known, found = False, []
        for network_name, members, links in self._peers(key):
            suffix = "." + network_name.lower()
            target = name[:-len(suffix)] if name.endswith(suffix) else name
            target = links.get(target, target)
            for member in members:
                if target in member.names:
                    known = True
                    ip = member.ip if version == 4 else member.ip6
                    if ip and ip not in found:
                        found.append(ip)
        return found if known else None

    def reverse(self, key: str, ip: str) -> str | None:
        """The name.<network> of an address seen from container key."""
        for network_name, members, _ in self._peers(key):
            for member in members:
                if ip in (member.ip, member.ip6):
                    return f"{member.name}.{network_name}"
        return None
