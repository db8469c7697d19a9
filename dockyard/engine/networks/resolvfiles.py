"""A container's /etc/hosts and /etc/resolv.conf as Docker writes them for its network mode:
its own address and --add-host entries; the embedded resolver on user-defined networks; the
host's files on the host's network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dockyard.engine.containers import etcfiles

INTERNAL_RESOLVER = "127.0.0.11"
Record = dict[str, Any]


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def internal_resolv_conf(hc: dict[str, Any]) -> str:
    """resolv.conf for a user-defined network: the embedded resolver, the host's (or the
    container's) search domains and options, ndots:0 unless an ndots is given (as Docker)."""
    text = etcfiles.resolv_conf(_read(etcfiles.HOST_RESOLV_CONF), [INTERNAL_RESOLVER], hc.get("DnsSearch"),
                                hc.get("DnsOptions"))
    if "ndots:" in text:
        return text
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("options "):
            lines[i] = line + " ndots:0"
            return "\n".join(lines) + "\n"
    return text + "options ndots:0\n"


def write(record: Record, addresses: list[str], host_gateway: str, links: list[str], user_defined: bool) -> None:
    """Before start: /etc/hosts naming the container at each of its addresses (loopback without
    one; with --add-host entries and legacy links, "names:ip"), and the embedded resolver in
    resolv.conf on user-defined networks."""
    hc = record["HostConfig"]
    etcfiles.write_atomic(record["HostsPath"], etcfiles.hosts_file(
        *_names(record), [*(hc.get("ExtraHosts") or []), *links], addresses or ["127.0.0.1"],
        host_gateway=host_gateway))
    if user_defined:
        etcfiles.write_atomic(record["ResolvConfPath"], internal_resolv_conf(hc))


def _names(record: Record) -> tuple[str, str]:
    """(hostname, domainname) of the container."""
    config = record["Config"]
    return config.get("Hostname") or record["ID"][:12], config.get("Domainname") or ""


def update_address(record: Record, added: Sequence[str] = (), removed: Sequence[str] = ()) -> None:
    """A running container joined (added) or left (removed) a network: the /etc/hosts lines
    naming it at those addresses (IPv4, and IPv6 on a dual-stack network) come or go, as
    Docker's sandbox does."""
    names = etcfiles.host_names(*_names(record))
    etcfiles.edit_hosts(record["HostsPath"], [f"{a}\t{names}" for a in added], [f"{r}\t{names}" for r in removed])


def _lines_naming(record: Record, name: str) -> list[str]:
    """The /etc/hosts lines of a container whose first name is name (a link's alias)."""
    with open(record["HostsPath"]) as f:
        return [line for line in f.read().splitlines() if line.partition("\t")[2].split(" ")[0] == name]


def drop_name(record: Record, name: str) -> None:
    """A running container's /etc/hosts without the lines of name (a removed link), in place."""
    etcfiles.edit_hosts(record["HostsPath"], remove=_lines_naming(record, name))


def readdress(record: Record, name: str, addresses: Sequence[str]) -> None:
    """A running container's /etc/hosts lines of name (a link's alias) pointed at addresses (the
    linked container restarted with others; one line each), in place."""
    old = _lines_naming(record, name)
    if old:
        names = old[0].partition("\t")[2]
        etcfiles.edit_hosts(record["HostsPath"], add=[f"{ip}\t{names}" for ip in addresses], remove=old)


def write_host_mode(record: Record, host_gateway: str) -> None:
    """On the host's network: the host's /etc/hosts (plus --add-host) and resolv.conf (its
    loopback resolvers work here), unless --dns* override it."""
    hc = record["HostConfig"]
    extra = "".join(line + "\n" for line in etcfiles.extra_host_lines(hc.get("ExtraHosts"), host_gateway))
    etcfiles.write_atomic(record["HostsPath"], _read("/etc/hosts") + extra)
    if not (hc.get("Dns") or hc.get("DnsSearch") or hc.get("DnsOptions")):
        etcfiles.write_atomic(record["ResolvConfPath"], _read(etcfiles.HOST_RESOLV_CONF))


def use_internal_resolver(record: Record) -> None:
    """A running container's resolv.conf pointed at the embedded DNS (rewritten in place: the
    file is bind-mounted, a rename would not reach the container)."""
    text = internal_resolv_conf(record["HostConfig"])
    with open(record["ResolvConfPath"], "r+") as f:
        if f.read() != text:
            f.seek(0)
            f.write(text)
            f.truncate()


def copy_from(record: Record, target: Record) -> None:
    """container:<target> mode: that container's files."""
    for key in ("HostsPath", "ResolvConfPath"):
        etcfiles.write_atomic(record[key], _read(target[key]))
