"""The bridge driver's kernel work: a Linux bridge per network holding the gateway address, and
per endpoint a veth pair from the bridge into a sandbox (a network namespace file)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
from dataclasses import dataclass

from dockyard.network import netns
from dockyard.network.netlink import Netlink, NetlinkError


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _ipv6_sysctl(ifname: str, enabled: bool) -> None:
    """IPv6 on or off for an interface ("default": those made later) of the calling thread's
    namespace (nothing if the kernel has no IPv6)."""
    with contextlib.suppress(FileNotFoundError):
        _write(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "0" if enabled else "1")


class NotABridge(OSError):
    """A link of that name exists and is no bridge: it is never taken over, nor deleted."""


Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def ensure_bridge(nl: Netlink, name: str, gateways: list[Interface], mtu: int = 0, loopback_nat: bool = False) -> None:
    """The bridge up with its gateway addresses (IPv4, and IPv6 on a dual-stack network);
    loopback_nat: 127.0.0.1's traffic DNATed into it is routed (route_localnet), for published
    ports without the userland proxy."""
    try:
        nl.add_bridge(name, mtu)
    except NetlinkError as e:
        if e.errno != errno.EEXIST:
            raise
        if nl.kind(name) != "bridge":
            raise NotABridge(f"{name} exists and is not a bridge") from None
    index = nl.index(name)
    for gateway in gateways:
        if gateway.version == 6:
            _write(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "0")
        try:
            nl.add_address(index, gateway)
        except NetlinkError as e:
            if e.errno != errno.EEXIST:
                raise
    nl.set_up(index)
    _write(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1" if loopback_nat else "0")


def remove_bridge(nl: Netlink, name: str) -> None:
    """Delete a bridge (nothing if absent, nor if that name is some other kind of link)."""
    if nl.kind(name) == "bridge":
        nl.delete(name)


def create_sandbox(path: str) -> None:
    """A network namespace at path with lo up (and ::1 on it); its later interfaces start with
    IPv6 off, as Docker 26+ leaves the interfaces of IPv4-only networks (no link-local address
    nor multicast groups to expose them); attach turns it on for a dual-stack endpoint."""
    def setup(nl: Netlink) -> None:
        nl.set_up(nl.index("lo"))
        _ipv6_sysctl("default", False)
    netns.create(path, setup)


@dataclass(frozen=True)
class Endpoint:
    """One interface of a sandbox on a bridge: its addresses (IPv4, and IPv6 on a dual-stack
    network) and the gateways of its default routes (on the sandbox's gateway network only)."""

    bridge: str
    host_ifname: str
    ifname: str
    addresses: tuple[Interface, ...]
    mac: str
    gateways: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    mtu: int = 0


def attach(nl: Netlink, sandbox: str, ep: Endpoint) -> None:
    """Create the veth pair, the host end on the bridge (hairpin on), the other end configured in
    the sandbox (IPv6 enabled on it for a dual-stack endpoint only)."""
    fd = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        nl.add_veth(ep.host_ifname, ep.ifname, fd, master=nl.index(ep.bridge), mtu=ep.mtu,
                    peer_mac=bytes.fromhex(ep.mac.replace(":", "")))
    finally:
        os.close(fd)
    try:
        nl.set_up(nl.index(ep.host_ifname))
        _write(f"/sys/class/net/{ep.host_ifname}/brport/hairpin_mode", "1")
        def enter() -> Netlink:
            if any(a.version == 6 for a in ep.addresses):
                _ipv6_sysctl(ep.ifname, True)
            return Netlink()
        with netns.run_in(sandbox, enter) as inner:
            index = inner.index(ep.ifname)
            for address in ep.addresses:
                inner.add_address(index, address)
            inner.set_up(index)
            for gateway in ep.gateways:
                inner.add_default_route(gateway, index)
    except BaseException:
        nl.delete(ep.host_ifname)
        raise


def interface_names(sandbox: str) -> set[str]:
    """The names of the links inside a sandbox."""
    with netns.netlink_in(sandbox) as inner:
        return set(inner.links())
