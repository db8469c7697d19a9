"""The /etc/hostname, /etc/hosts and /etc/resolv.conf files Docker writes for each container."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

from dockyard.engine.containers.errors import InvalidParameter

HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_GATEWAY = "host-gateway"  # --add-host's stand-in for the default bridge's gateway address
DEFAULT_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]  # Docker's fallback when the host has only local ones
_LOCALHOST_LINES = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Write text to path through a temporary file and a rename."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def parse_extra_host(entry: str) -> tuple[str, str]:
    """--add-host "name:ip" (or "name=ip", ip may be "host-gateway") -> (name, ip)."""
    sep = "=" if "=" in entry else ":"
    name, _, ip = entry.partition(sep)
    ip = ip.strip("[]")
    try:
        if ip != HOST_GATEWAY:
            ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidParameter(f"invalid IP address in add-host: {ip!r}") from None
    if not name:
        raise InvalidParameter(f"bad format for add-host: {entry!r}")
    return name, ip


def extra_host_lines(extra_hosts: list[str] | None, host_gateway: str | None = None) -> list[str]:
    """--add-host entries as /etc/hosts lines ("host-gateway" as host_gateway, left out while unknown)."""
    lines = []
    for name, ip in map(parse_extra_host, extra_hosts or []):
        ip = host_gateway if ip == HOST_GATEWAY else ip
        if ip:
            lines.append(f"{ip}\t{name}")
    return lines


def host_names(hostname: str, domainname: str = "") -> str:
    """The names an /etc/hosts line gives the container, as Docker: the FQDN (hostname, with
    domainname when given), then the bare hostname when the FQDN has a dot."""
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    bare = fqdn.partition(".")[0]
    return f"{fqdn} {bare}" if bare != fqdn else fqdn


def hosts_file(hostname: str, domainname: str = "", extra_hosts: list[str] | None = None,
               addresses: Sequence[str] = ("127.0.0.1",), host_gateway: str | None = None) -> str:
    """/etc/hosts: the localhost lines, --add-host entries ("host-gateway" as host_gateway, left
    out while unknown), then one line naming the container per address (its network addresses;
    loopback until the container has a network of its own)."""
    names = host_names(hostname, domainname)
    lines = [*_LOCALHOST_LINES, *extra_host_lines(extra_hosts, host_gateway), *(f"{a}\t{names}" for a in addresses)]
    return "\n".join(lines) + "\n"


def edit_hosts(path: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
    """Change a running container's /etc/hosts as Docker does when it joins or leaves a network:
    lines in remove go, lines in add are appended. Rewritten in place (same inode): the file is
    bind-mounted into the container, a rename would not reach it."""
    with open(path, "r+") as f:
        lines = [line for line in f.read().splitlines() if line and line not in remove]
        f.seek(0)
        f.write("".join(line + "\n" for line in [*lines, *add]))
        f.truncate()


def _is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(host_text: str, dns: list[str] | None = None, search: list[str] | None = None,
                options: list[str] | None = None) -> str:
    """The container's resolv.conf: the host's with loopback nameservers removed (they cannot be
    reached from another network namespace), overridden by --dns, --dns-search, --dns-option."""
    servers, searches, opts, other = [], [], [], []
    for line in host_text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            opts += fields[1:]
        else:
            other.append(line)
    servers = [s for s in servers if not _is_loopback(s)] or list(DEFAULT_NAMESERVERS)
    if dns:
        servers = list(dns)
    if search:
        searches = [] if search == ["."] else list(search)
    if options:
        opts = list(options)
    lines = [f"nameserver {s}" for s in servers]
    if searches:
        lines.append("search " + " ".join(searches))
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines + other) + "\n"


def write_etc_files(directory: str, hostname: str, config: dict, host_config: dict) -> dict[str, str]:
    """Write hostname, hosts and resolv.conf into directory; return {container path: host path}."""
    host_network = host_config.get("NetworkMode") == "host"
    try:
        with open(HOST_RESOLV_CONF) as f:
            host_resolv = f.read()
    except FileNotFoundError:
        host_resolv = ""
    files = {
        "hostname": hostname + "\n",
        "hosts": hosts_file(hostname, config.get("Domainname") or "", host_config.get("ExtraHosts"),
                            () if host_network else ("127.0.0.1",)),
        "resolv.conf": resolv_conf(host_resolv, host_config.get("Dns"), host_config.get("DnsSearch"),
                                   host_config.get("DnsOptions")),
    }
    paths = {}
    for name, text in files.items():
        path = os.path.join(directory, name)
        write_atomic(path, text)
        paths["/etc/" + name] = path
    return paths
