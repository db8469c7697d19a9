"""Legacy links (`--link name[:alias]`) on the default bridge, kept as Docker keeps them: each link
is registered at create (the child resolved then and kept by ID, so renames follow), and at start
gives the parent /etc/hosts entries and environment variables for the child; inspect shows
HostConfig.Links as "/child:/parent/alias", the child lists "/parent/alias" among its Names, and
DELETE /containers/{parent/alias}?link=1 removes one link. On user-defined networks a link is only
a name the embedded DNS answers for the linking container (names.py)."""

from __future__ import annotations

import posixpath
from typing import Any

from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.networks.errors import ContainerError, InvalidParameter, NotFound

Record = dict[str, Any]
KEY = "LegacyLinks"  # record key: {alias: child ID}, in registration order


def parse(value: str) -> tuple[str, str]:
    """(name, alias) of "name", "name:alias" or the stored "/name:/parent/alias" form."""
    if not value:
        raise InvalidParameter("empty string specified for links")
    parts = value.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"bad format for links: {value}")
    if len(parts) == 1:
        return value, value
    if parts[0].startswith("/"):
        return parts[0][1:], posixpath.basename(parts[1])
    return parts[0], parts[1]


def legacy_mode(mode: str) -> bool:
    """Whether links in HostConfig.Links are legacy links for this network mode (not on a user-defined
    network, where they are DNS aliases)."""
    return mode in ("default", "bridge", "none", "")


def check_mode(hc: dict[str, Any]) -> None:
    """Docker's refusals of links with a shared network namespace."""
    if not hc.get("Links"):
        return
    mode = hc.get("NetworkMode") or ""
    if mode == "host":
        raise InvalidParameter("conflicting options: host type networking can't be used with links. This would "
                               "result in undefined behavior")
    if mode.startswith("container:"):
        raise InvalidParameter("conflicting options: container type network can't be used with links. This would "
                               "result in undefined behavior")


def _uppercase(alias: str) -> str:
    return alias.upper().replace("-", "_")


def _port(port: str) -> tuple[str, int]:
    """"80/tcp" -> ("tcp", 80)."""
    number, _, proto = port.partition("/")
    return proto or "tcp", int(number)


def env_vars(full_name: str, child_ip: str, child_env: list[str], exposed: list[str]) -> list[str]:
    """The variables a link gives the parent: ALIAS_PORT (the first port), per port
    ALIAS_PORT_<n>_<PROTO>{,_ADDR,_PORT,_PROTO}, _START/_END of contiguous ranges, ALIAS_NAME and
    ALIAS_ENV_<name> for the child's environment (HOME and PATH left out)."""
    alias = _uppercase(posixpath.basename(full_name))
    ports = sorted(map(_port, exposed), key=lambda p: (p[0] != "tcp", p))  # TCP first, as Docker
    env: list[str] = []
    start = end = ports[0] if ports else ("", 0)
    for i, (proto, num) in enumerate(ports):
        if i == 0:
            env.append(f"{alias}_PORT={proto}://{child_ip}:{num}")
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        env += [f"{prefix}={proto}://{child_ip}:{num}", f"{prefix}_ADDR={child_ip}", f"{prefix}_PORT={num}",
                f"{prefix}_PROTO={proto}"]
        if num == end[1] + 1 and proto == end[0]:
            end = (proto, num)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{alias}_PORT_{start[1]}_{start[0].upper()}"
            env += [f"{prefix}_START={start[0]}://{child_ip}:{start[1]}", f"{prefix}_PORT_START={start[1]}",
                    f"{prefix}_END={end[0]}://{child_ip}:{end[1]}", f"{prefix}_PORT_END={end[1]}"]
        start = end = (proto, num)
    env.append(f"{alias}_NAME={full_name}")
    for entry in child_env:
        name, sep, value = entry.partition("=")
        if sep and name not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{name}={value}")
    return env


def _bridge_endpoint(record: Record) -> Record:
    return ((record.get("NetworkSettings") or {}).get("Networks") or {}).get("bridge") or {}


def _bridge_ip(record: Record) -> str:
    return _bridge_endpoint(record).get("IPAddress") or ""


def bridge_addresses(record: Record) -> list[str]:
    """A container's addresses on the default bridge: IPv4, then IPv6 when it is dual stack."""
    endpoint = _bridge_endpoint(record)
    return [a for a in (endpoint.get("IPAddress"), endpoint.get("GlobalIPv6Address")) if a]


class LegacyLinks:
    """Links between containers on the default bridge, kept in the parents' records."""

    def __init__(self, containers: ContainerStore) -> None:
        self.containers = containers

    def _get(self, ref: str) -> Record:
        try:
            return self.containers.get(self.containers.resolve(ref))
        except NotFound as e:
            raise InvalidParameter(f"could not get container for {ref}: {e}") from None

    def _child(self, name: str) -> Record:
        """The container a link to name reaches (through container: network modes)."""
        child = self._get(name)
        while (child["HostConfig"].get("NetworkMode") or "").startswith("container:"):
            child = self._get(child["HostConfig"]["NetworkMode"].partition(":")[2])
        if child["HostConfig"].get("NetworkMode") == "host":
            raise InvalidParameter("conflicting options: host type networking can't be used with links. This "
                                   "would result in undefined behavior")
        return child

    def register(self, hc: dict[str, Any], strict: bool = True) -> dict[str, str]:
        """At create: {alias: child ID} for HostConfig.Links (a child sharing another container's
        network namespace stands for that container; the first link of an alias wins). Not
        strict: links that cannot be made are skipped (as dockerd's restore does)."""
        if not legacy_mode(hc.get("NetworkMode") or ""):
            return {}
        out: dict[str, str] = {}
        for value in hc.get("Links") or []:
            try:
                name, alias = parse(value)
                out.setdefault(alias, self._child(name)["ID"])
            except ContainerError:
                if strict:
                    raise
        return out

    def children(self, record: Record) -> list[tuple[str, Record]]:
        """(alias, child record) of the parent's links whose child still exists (a record made
        before links were registered at create gets them resolved now)."""
        links = record.get(KEY)
        if links is None:
            links = self.register(record["HostConfig"], strict=False)
        out = []
        for alias, cid in links.items():
            try:
                out.append((alias, self.containers.get(cid)))
            except NotFound:
                continue
        return out

    def host_config_links(self, record: Record) -> list[str] | None:
        """HostConfig.Links as inspect shows it: "/child:/parent/alias"."""
        return [f"{child['Name']}:{record['Name']}/{alias}" for alias, child in self.children(record)] or None

    @staticmethod
    def names_of(cid: str, records: list[Record]) -> list[str]:
        """The link names ("/parent/alias") by which parents among records know container cid."""
        return [f"{r['Name']}/{alias}" for r in records for alias, child in (r.get(KEY) or {}).items() if child == cid]

    def parents(self, cid: str) -> list[tuple[str, Record]]:
        """(alias, parent record) of the links to container cid."""
        return [(alias, r) for r in self.containers.mentioning(cid)
                for alias, child in (r.get(KEY) or {}).items() if child == cid]

    def check_start(self, record: Record) -> list[tuple[str, Record]]:
        """Before a parent starts on the default bridge: its children, each on the default bridge and
        running (Docker's errors otherwise)."""
        if "bridge" not in record["NetworkSettings"]["Networks"]:
            return []
        children = self.children(record)
        for _, child in children:
            if "bridge" not in ((child.get("NetworkSettings") or {}).get("Networks") or {}):
                raise ContainerError(f"Cannot link to {child['Name']}, as it does not belong to the default network")
        for alias, child in children:
            if not child["State"]["Running"] or not _bridge_ip(child):
                raise ContainerError(f"Cannot link to a non running container: {child['Name']} AS "
                                     f"{record['Name']}/{alias}")
        return children

    @staticmethod
    def hosts_entries(children: list[tuple[str, Record]]) -> list[str]:
        """/etc/hosts entries ("names:ip") of the children: alias, hostname, and name unless it is
        the alias; at the IPv4 address, and at the IPv6 one on a dual-stack default bridge."""
        out = []
        for alias, child in children:
            names = [alias, child["Config"].get("Hostname") or child["ID"][:12]]
            if alias != child["Name"][1:]:
                names.append(child["Name"][1:])
            out += [f"{' '.join(names)}:{ip}" for ip in bridge_addresses(child)]
        return out

    @staticmethod
    def env(record: Record, children: list[tuple[str, Record]]) -> list[str]:
        """The environment variables the parent gets for its children."""
        out = []
        for alias, child in children:
            out += env_vars(f"{record['Name']}/{alias}", _bridge_ip(child), child["Config"].get("Env") or [],
                            list(child["Config"].get("ExposedPorts") or {}))
        return out

    def unlink(self, name: str) -> Record:
        """DELETE /containers/{parent/alias}?link=1: the parent's record without that link."""
        name = "/" + name.lstrip("/")
        parent_name, alias = posixpath.split(name)
        if parent_name == "/":
            self.containers.resolve(name)  # a missing container is "No such container"
            raise ContainerError("Conflict, cannot remove the default link name of the container")
        try:
            parent = self.containers.get(self.containers.resolve(parent_name))
        except NotFound:
            parent = None
        if parent is None or alias not in (parent.get(KEY) or {}):
            raise NotFound(f"No such container: {name.lstrip('/')}")
        del parent[KEY][alias]
        return parent
