"""Address management (pure functions): subnets from address pools that avoid what is taken,
gateways, and the first free address of a subnet (or of its --ip-range)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address


class IPAMError(Exception):
    """No address or subnet can be given; the message is Docker's."""


@dataclass(frozen=True)
class Pool:
    """A default-address-pool entry: base split into subnets of size /size."""

    base: IPv4Network
    size: int

    def subnets(self) -> Iterable[IPv4Network]:
        """Every candidate subnet of the pool, in order."""
        return self.base.subnets(new_prefix=self.size) if self.size > self.base.prefixlen else [self.base]


# Docker's defaults: 172.17-31.0.0/16, then 192.168.0.0/16 cut in /20s.
DEFAULT_POOLS = (Pool(IPv4Network("172.17.0.0/16"), 16), Pool(IPv4Network("172.18.0.0/15"), 16),
                 Pool(IPv4Network("172.20.0.0/14"), 16), Pool(IPv4Network("172.24.0.0/14"), 16),
                 Pool(IPv4Network("172.28.0.0/14"), 16), Pool(IPv4Network("192.168.0.0/16"), 20))


def parse_pool(text: str) -> Pool:
    """--default-address-pool base=10.10.0.0/16,size=24."""
    fields = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
    try:
        return Pool(IPv4Network(fields["base"]), int(fields.get("size", "24")))
    except (KeyError, ValueError) as e:
        raise IPAMError(f"invalid default address pool {text!r}: {e}") from None


def choose_subnet(pools: Iterable[Pool], taken: Iterable[IPv4Network]) -> IPv4Network:
    """The first pool subnet overlapping nothing taken."""
    taken = list(taken)
    for pool in pools:
        for subnet in pool.subnets():
            if not any(subnet.overlaps(t) for t in taken):
                return subnet
    raise IPAMError("all predefined address pools have been fully subnetted")


def gateway_of(subnet: IPv4Network) -> IPv4Address:
    """The default gateway: the subnet's first host address."""
    return subnet.network_address + 1


def parse_subnet(text: str) -> IPv4Network:
    """A --subnet value (host bits are an error, as in Docker)."""
    try:
        network = IPv4Network(text, strict=False)
    except ValueError:
        raise IPAMError(f"invalid subnet {text}: invalid CIDR address: {text}") from None
    if str(network) != text and network.with_prefixlen != text:
        raise IPAMError(f"invalid subnet {text}: it should be {network}")
    return network


def first_free(subnet: IPv4Network, used: set[IPv4Address], ip_range: IPv4Network | None = None
               ) -> IPv4Address:
    """The lowest host address of ip_range (or subnet) not used (the gateway is among used)."""
    area = ip_range or subnet
    for candidate in area.hosts() if area.prefixlen < 31 else area:
        if candidate not in used and candidate != subnet.broadcast_address and candidate != subnet.network_address:
            return candidate
    raise IPAMError(f"no available IPv4 addresses on this network's address pools: ({subnet})")


def check_static(address: str, subnet: IPv4Network, used: set[IPv4Address]) -> IPv4Address:
    """A requested --ip: inside the subnet and free."""
    try:
        ip = IPv4Address(address)
    except ValueError:
        raise IPAMError(f"invalid IPv4 address: {address}") from None
    if ip not in subnet:
        raise IPAMError(f"requested address {ip} is out of the network's subnet {subnet}")
    if ip in used:
        raise IPAMError("Address already in use")
    return ip


def mac_for(ip: IPv4Address) -> str:
    """A locally administered MAC derived from an IPv4 address (02:42:<ip bytes>)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)
