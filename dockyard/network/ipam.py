"""Address management (pure functions): subnets from address pools that avoid what is taken,
gateways, and the first free address of a subnet (or of its --ip-range), IPv4 and IPv6 alike."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class IPAMError(Exception):
    """No address or subnet can be given; the message is Docker's."""


@dataclass(frozen=True)
class Pool:
    """A default-address-pool entry: base split into subnets of size /size."""

    base: Network
    size: int

    def subnets(self) -> Iterable[Network]:
        """Every candidate subnet of the pool, in order."""
        return self.base.subnets(new_prefix=self.size) if self.size > self.base.prefixlen else [self.base]


# Docker's defaults: 172.17-31.0.0/16, then 192.168.0.0/16 cut in /20s.
DEFAULT_POOLS = (Pool(IPv4Network("172.17.0.0/16"), 16), Pool(IPv4Network("172.18.0.0/15"), 16),
                 Pool(IPv4Network("172.20.0.0/14"), 16), Pool(IPv4Network("172.24.0.0/14"), 16),
                 Pool(IPv4Network("172.28.0.0/14"), 16), Pool(IPv4Network("192.168.0.0/16"), 20))


def parse_pool(text: str) -> Pool:
    """--default-address-pool base=10.10.0.0/16,size=24 (or an IPv6 base)."""
    fields = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
    try:
        return Pool(ipaddress.ip_network(fields["base"]), int(fields.get("size", "24")))
    except (KeyError, ValueError) as e:
        raise IPAMError(f"invalid default address pool {text!r}: {e}") from None


def ula_pool(host_id: str) -> Pool:
    """The IPv6 pool used when none is configured (as Docker 27+): a ULA /48 whose 40-bit
    global ID comes from the engine's ID (stable while the ID is), cut in /64s."""
    global_id = int.from_bytes(hashlib.sha256(host_id.encode()).digest()[:8], "big") & ((1 << 40) - 1)
    base = ipaddress.IPv6Address(int(ipaddress.IPv6Address("fd00::")) + (global_id << 80))
    return Pool(ipaddress.IPv6Network((base, 48)), 64)


def choose_subnet(pools: Iterable[Pool], taken: Iterable[Network], version: int = 4) -> Network:
    """The first subnet of the pools of that IP version overlapping nothing taken."""
    taken = [t for t in taken if t.version == version]
    for pool in pools:
        if pool.base.version != version:
            continue
        for subnet in pool.subnets():
            if not any(subnet.overlaps(t) for t in taken):
                return subnet
    if version == 6:
        raise IPAMError("could not find an available, non-overlapping IPv6 address pool among the defaults to "
                        "assign to the network")
    raise IPAMError("all predefined address pools have been fully subnetted")


def gateway_of(subnet: Network) -> Address:
    """The default gateway: the subnet's first host address."""
    return subnet.network_address + 1


def parse_subnet(text: str) -> Network:
    """A --subnet value, IPv4 or IPv6 (host bits are an error, as in Docker)."""
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise IPAMError(f"invalid subnet {text}: invalid CIDR address: {text}") from None
    if iface.ip != iface.network.network_address:
        raise IPAMError(f"invalid subnet {text}: it should be {iface.network}")
    return iface.network


def first_free(subnet: Network, used: set[Address], ip_range: Network | None = None) -> Address:
    """The lowest host address of ip_range (or subnet) not used (the gateway is among used)."""
    area = ip_range or subnet
    for candidate in area.hosts() if area.prefixlen < area.max_prefixlen - 1 else area:
        if candidate not in used and candidate != subnet.broadcast_address and candidate != subnet.network_address:
            return candidate
    raise IPAMError(f"no available IPv{subnet.version} addresses on this network's address pools: ({subnet})")


def check_static(address: str, subnet: Network, used: set[Address]) -> Address:
    """A requested --ip or --ip6: of the subnet's family, inside it and free."""
    try:
        ip = ipaddress.ip_address(address)
        if ip.version != subnet.version:
            raise ValueError(address)
    except ValueError:
        raise IPAMError(f"invalid IPv{subnet.version} address: {address}") from None
    if ip not in subnet:
        raise IPAMError(f"requested address {ip} is out of the network's subnet {subnet}")
    if ip in used:
        raise IPAMError("Address already in use")
    return ip


def mac_for(ip: IPv4Address) -> str:
    """A locally administered MAC derived from an IPv4 address (02:42:<ip bytes>)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)
