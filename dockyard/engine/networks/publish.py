"""Published ports of running containers: host ports held by the NetworkService's allocator, NAT
rules in its firewall, and proxies where NAT does not reach or is not wanted (127.0.0.1 with the
userland proxy on, as Docker's default; IPv6 bindings; --iptables=false).
An unspecified host IP publishes on 0.0.0.0 and, on an IPv6 host, on [::] too, as Docker does:
toward the container's IPv6 address when it has one (ip6tables DNAT, and the proxy for [::1],
which NAT cannot divert), else proxied to its IPv4 address."""

from __future__ import annotations

import contextlib
from typing import Any

from dockyard.engine.networks.errors import ContainerError
from dockyard.engine.networks.service import OPT_HOST_IP, NetworkService
from dockyard.network.firewall import PortRule
from dockyard.network.ports import PortError, ipv6_available, split_key
from dockyard.network.proxy import Proxy

Ports = dict[str, list[dict[str, str]] | None]


class Publisher:
    """The ports of every container of one daemon."""

    def __init__(self, networks: NetworkService) -> None:
        self.networks = networks
        self._proxies: dict[tuple[str, str, int], Proxy] = {}

    def close(self) -> None:
        """Stop the proxies (the daemon is going away)."""
        for proxy in self._proxies.values():
            proxy.close()

    def publish(self, cid: str, wanted: Ports, endpoint: dict[str, Any], network: dict[str, Any]) -> Ports:
        """Hold the host ports asked for (wanted: key -> bindings, None for exposed only) toward the
        endpoint's address; NetworkSettings.Ports. PortError (nothing held) if one is taken."""
        default_ip = network["Options"].get(OPT_HOST_IP) or "0.0.0.0"
        result: Ports = {}
        rules: list[PortRule] = []
        try:
            for key, bindings in wanted.items():
                port, proto = split_key(key)
                for b in bindings or []:
                    host_ip = b.get("HostIp") or default_ip
                    rules.append(self._hold(proto, host_ip, b.get("HostPort") or "", endpoint, port, network))
                    if not b.get("HostIp") and default_ip == "0.0.0.0" and ipv6_available():
                        with contextlib.suppress(PortError):
                            rules.append(self._hold(proto, "::", str(rules[-1].host_port), endpoint, port, network))
                result[key] = None if bindings is None else [
                    {"HostIp": r.host_ip, "HostPort": str(r.host_port)} for r in rules
                    if (r.container_port, r.proto) == (port, proto)]
        except PortError:
            self._release(rules)
            raise
        self.networks.set_ports(cid, rules)
        return result

    def restore(self, cid: str, ports: Ports, endpoint: dict[str, Any], network: dict[str, Any]) -> None:
        """Hold again the ports a running container had (daemon restart)."""
        rules = []
        for key, bindings in ports.items():
            port, proto = split_key(key)
            rules += [self._hold(proto, b["HostIp"], b["HostPort"], endpoint, port, network) for b in bindings or []]
        self.networks.set_ports(cid, rules)

    def unpublish(self, cid: str) -> None:
        """Drop the container's rules, then give back its host ports (a container that takes one
        has its rule replace this one's, which is otherwise deleted after the caller returns)."""
        rules = self.networks.port_rules(cid)
        try:
            self.networks.set_ports(cid, [])
        finally:
            self._release(rules)

    def _hold(self, proto: str, host_ip: str, host_port: str, endpoint: dict[str, Any], port: int,
              network: dict[str, Any]) -> PortRule:
        """Reserve one host port for the endpoint's port: the address of the host address's family
        when the endpoint has one, else its other one; a proxy serves it where NAT does not (no
        iptables, IPv6 host addresses for [::1], a container of the other family) and, with the
        userland proxy on, what 127.0.0.1 reaches (an unspecified or loopback host address)."""
        host_ip, number, sock = self.networks.ports.reserve(proto, host_ip, host_port)
        v4, v6 = endpoint["IPAddress"], endpoint.get("GlobalIPv6Address") or ""
        ip = (v6 or v4) if ":" in host_ip else (v4 or v6)
        loopback = self.networks.options.userland_proxy and (host_ip == "0.0.0.0" or host_ip.startswith("127."))
        if self.networks.firewall is None or ":" in host_ip or ":" in ip or loopback:
            self._proxies[(proto, host_ip, number)] = Proxy(sock, proto, (ip, port))
        return PortRule(proto, host_ip, number, ip, port, network["_Bridge"])

    def _release(self, rules: list[PortRule]) -> None:
        for rule in rules:
            where = (rule.proto, rule.host_ip, rule.host_port)
            proxy = self._proxies.pop(where, None)
            if proxy is not None:
                proxy.close()
            self.networks.ports.release(*where)


def publish_error(name: str, endpoint_id: str, error: PortError) -> ContainerError:
    """Docker's text for a port that could not be published."""
    return ContainerError(f"driver failed programming external connectivity on endpoint {name} ({endpoint_id}): "
                          f"{error}")
