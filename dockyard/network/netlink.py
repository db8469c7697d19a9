"""A small rtnetlink client (stdlib sockets + struct): links (bridge, veth), addresses, routes.
Each call is one request answered by an ACK, well under a millisecond; a socket lives in the
network namespace of the thread that opened it (see netns.netlink_in)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterator

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_F_NODAD = 1, 2, 4, 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBi")
_RTMSG = struct.Struct("=BBBBBBBBI")


class NetlinkError(OSError):
    """A request the kernel refused; errno as the kernel gave it."""


def attr(kind: int, value: bytes | str | int) -> bytes:
    """One rtattr: strings NUL-terminated, ints as u32."""
    if isinstance(value, str):
        value = value.encode() + b"\0"
    elif isinstance(value, int):
        value = struct.pack("=I", value)
    size = 4 + len(value)
    return struct.pack("=HH", size, kind) + value + b"\0" * (-size % 4)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """rtattrs → {type: payload} (the nested flag bit cleared)."""
    out, pos = {}, 0
    while pos + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, pos)
        if size < 4:
            break
        out[kind & 0x3FFF] = data[pos + 4:pos + size]
        pos += (size + 3) & ~3
    return out


def _cstr(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode()


class Netlink:
    """One NETLINK_ROUTE socket; thread-safe (a lock per request)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                          socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, kind: int, flags: int, payload: bytes) -> int:
        self._seq += 1
        self.sock.send(_HDR.pack(_HDR.size + len(payload), kind, flags | NLM_F_REQUEST, self._seq, 0) + payload)
        return self._seq

    def _messages(self, seq: int) -> Iterator[tuple[int, bytes]]:
        while True:
            data = self.sock.recv(1 << 16)
            pos = 0
            while pos + _HDR.size <= len(data):
                size, kind, _, mseq, _ = _HDR.unpack_from(data, pos)
                body = data[pos + _HDR.size:pos + size]
                pos += (size + 3) & ~3
                if mseq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return
                yield kind, body

    def request(self, kind: int, payload: bytes, flags: int = 0) -> None:
        """Send one request and wait for its ACK (NetlinkError on a refusal)."""
        with self._lock:
            for _ in self._messages(self._send(kind, flags | NLM_F_ACK, payload)):
                pass

    def dump(self, kind: int, payload: bytes) -> list[bytes]:
        """A dump request's messages (bodies)."""
        with self._lock:
            return [body for _, body in self._messages(self._send(kind, NLM_F_DUMP, payload))]

    # -- links ------------------------------------------------------------------------------------

    def links(self) -> dict[str, dict[int, bytes]]:
        """Every link: {name: attributes}, each with the index under key -1 (packed int)."""
        out = {}
        for body in self.dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
            _, _, index, flags, _ = _IFINFO.unpack_from(body)
            attrs = parse_attrs(body[_IFINFO.size:])
            attrs[-1] = struct.pack("=i", index)
            out[_cstr(attrs.get(IFLA_IFNAME, b""))] = attrs
        return out

    def _get(self, name: str) -> tuple[int, dict[int, bytes]]:
        with self._lock:
            seq = self._send(RTM_GETLINK, NLM_F_ACK, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name))
            for _, body in self._messages(seq):
                return _IFINFO.unpack_from(body)[2], parse_attrs(body[_IFINFO.size:])
        raise NetlinkError(errno.ENODEV, f"no link {name}")

    def index(self, name: str) -> int:
        """The index of a link by name (NetlinkError ENODEV if absent)."""
        return self._get(name)[0]

    def kind(self, name: str) -> str | None:
        """A link's kind ("bridge", "veth"...; None for a physical device or no such link)."""
        try:
            info = parse_attrs(self._get(name)[1].get(IFLA_LINKINFO, b""))
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return _cstr(info[IFLA_INFO_KIND]) if IFLA_INFO_KIND in info else None

    def exists(self, name: str) -> bool:
        """Whether a link named name exists."""
        try:
            self.index(name)
            return True
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return False
            raise

    def add_bridge(self, name: str, mtu: int = 0) -> None:
        """Create a bridge (EEXIST if it is there)."""
        info = attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, "bridge"))
        extra = attr(IFLA_MTU, mtu) if mtu else b""
        self.request(RTM_NEWLINK, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name) + extra + info,
                     NLM_F_CREATE | NLM_F_EXCL)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, master: int = 0, mtu: int = 0,
                 peer_mac: bytes | None = None) -> None:
        """Create a veth pair: name here (enslaved to master), peer moved into the namespace open at fd."""
        peer_attrs = attr(IFLA_IFNAME, peer) + attr(IFLA_NET_NS_FD, peer_netns_fd)
        if peer_mac:
            peer_attrs += attr(IFLA_ADDRESS, peer_mac)
        if mtu:
            peer_attrs += attr(IFLA_MTU, mtu)
        data = attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, _IFINFO.pack(0, 0, 0, 0, 0) + peer_attrs))
        info = attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, "veth") + data)
        extra = (attr(IFLA_MASTER, master) if master else b"") + (attr(IFLA_MTU, mtu) if mtu else b"")
        self.request(RTM_NEWLINK, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name) + extra + info,
                     NLM_F_CREATE | NLM_F_EXCL)

    def set_up(self, index: int) -> None:
        """Bring a link up."""
        self.request(RTM_NEWLINK, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))

    def delete(self, name: str) -> bool:
        """Delete a link by name; False if it did not exist."""
        try:
            self.request(RTM_DELLINK, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name))
            return True
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return False
            raise

    # -- addresses and routes -----------------------------------------------------------------------

    def add_address(self, index: int, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        """Assign an address (EEXIST if assigned): with its broadcast for IPv4; IPv6 ones skip
        duplicate address detection (usable at once, as Docker's)."""
        family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        packed = iface.ip.packed
        attrs = attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        if iface.version == 4 and iface.network.prefixlen < 31:
            attrs += attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
        flags = IFA_F_NODAD if iface.version == 6 else 0
        self.request(RTM_NEWADDR, _IFADDR.pack(family, iface.network.prefixlen, flags, 0, index) + attrs,
                     NLM_F_CREATE | NLM_F_EXCL)

    def addresses(self, family: int = socket.AF_INET) -> list[tuple[int, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
        """Every address of a family: (link index, interface)."""
        out = []
        for body in self.dump(RTM_GETADDR, _IFADDR.pack(family, 0, 0, 0, 0)):
            got, prefix, _, _, index = _IFADDR.unpack_from(body)
            attrs = parse_attrs(body[_IFADDR.size:])
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if got == family and raw:
                out.append((index, ipaddress.ip_interface((ipaddress.ip_address(raw), prefix))))
        return out

    def add_default_route(self, gateway: ipaddress.IPv4Address | ipaddress.IPv6Address, index: int) -> None:
        """default via gateway dev index (of the gateway's family)."""
        family = socket.AF_INET if gateway.version == 4 else socket.AF_INET6
        msg = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0)
        self.request(RTM_NEWROUTE, msg + attr(RTA_GATEWAY, gateway.packed) + attr(RTA_OIF, index),
                     NLM_F_CREATE | NLM_F_EXCL)

    def routes(self, family: int = socket.AF_INET) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The destinations of every route of a family in the main table but the default route."""
        out = []
        for body in self.dump(RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
            got, dst_len, _, _, table, _, _, _, _ = _RTMSG.unpack_from(body)
            attrs = parse_attrs(body[_RTMSG.size:])
            if got != family or (struct.unpack("=I", attrs[RTA_TABLE])[0] if RTA_TABLE in attrs else table) != RT_TABLE_MAIN:
                continue
            if dst_len and RTA_DST in attrs:
                out.append(ipaddress.ip_network((ipaddress.ip_address(attrs[RTA_DST]), dst_len), strict=False))
        return out
