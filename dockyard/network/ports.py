"""Published ports: Docker's PortBindings read into bindings, host ports reserved by binding a
socket (so another process, or another daemon, cannot take them), ephemeral ports handed out
in order from the kernel's local port range, as Docker's port allocator does."""

from __future__ import annotations

import errno
import functools
import ipaddress
import socket
import threading
from typing import Any


class PortError(Exception):
    """A host port that cannot be had; the message is Docker's."""


def split_key(key: str) -> tuple[int, str]:
    """"80/tcp" → (80, "tcp")."""
    port, _, proto = key.partition("/")
    return int(port), (proto or "tcp").lower()


def port_range(text: str) -> tuple[int, int]:
    """"8080" → (8080, 8080); "8000-8010" → (8000, 8010); "" → (0, 0) (ephemeral)."""
    if not text:
        return 0, 0
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise PortError(f"invalid hostPort: {text}") from None
    if not (0 <= first <= last <= 65535):
        raise PortError(f"invalid hostPort: {text}")
    return first, last


def check_bindings(port_bindings: dict[str, Any] | None) -> None:
    """PortBindings checked as dockerd checks them at create: each container port a number of
    1-65535 with tcp, udp or sctp, each host port empty, a number or a range; PortError otherwise."""
    for key, bindings in (port_bindings or {}).items():
        port, _, proto = key.partition("/")
        if not port.isdigit() or not 0 < int(port) <= 65535 or (proto or "tcp").lower() not in ("tcp", "udp", "sctp"):
            raise PortError(f'invalid port specification: "{port}/{proto or "tcp"}"')
        for binding in bindings or []:
            host_port = str((binding or {}).get("HostPort") or "")
            try:
                port_range(host_port)
            except PortError:
                raise PortError(f'invalid port specification: "{host_port}"') from None


def wanted(config: dict[str, Any], host_config: dict[str, Any]) -> dict[str, list[dict[str, str]] | None]:
    """Every exposed or bound port key → the bindings asked for (None: exposed only). -P binds
    each exposed port without a binding to an ephemeral host port."""
    out: dict[str, list[dict[str, str]] | None] = {}
    for key in config.get("ExposedPorts") or {}:
        out[_normal(key)] = None
    for key, bindings in (host_config.get("PortBindings") or {}).items():
        out[_normal(key)] = [dict(b or {}) for b in bindings or [{}]]
    if host_config.get("PublishAllPorts"):
        for key, value in out.items():
            if value is None:
                out[key] = [{"HostIp": "", "HostPort": ""}]
    return out


def _normal(key: str) -> str:
    port, proto = split_key(key)
    return f"{port}/{proto}"


def local_port_range() -> tuple[int, int]:
    """The kernel's ephemeral port range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = f.read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


@functools.cache
def ipv6_available() -> bool:
    """Whether this host has IPv6 (then an unspecified host IP also binds [::], as Docker does)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


class PortAllocator:
    """Host ports held by this daemon: (proto, ip, port) → the bound socket."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str, int], socket.socket] = {}
        self._lock = threading.Lock()
        self._last = 0

    def reserve(self, proto: str, host_ip: str, host_port: str) -> tuple[str, int, socket.socket]:
        """Bind host_ip (default 0.0.0.0; IPv6 addresses too) and a port of host_port (a port, a
        range or "" for an ephemeral one); (ip, port, socket)."""
        ip = host_ip or "0.0.0.0"
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise PortError(f"invalid host IP address {ip!r}") from None
        first, last = port_range(host_port)
        ephemeral = first == 0
        if ephemeral:
            first, last = local_port_range()
        with self._lock:
            candidates = list(range(first, last + 1))
            if ephemeral:
                start = self._last + 1 if first <= self._last < last else first
                candidates = candidates[start - first:] + candidates[:start - first]
            busy_error: PortError | None = None
            for port in candidates:
                if self._conflicts(proto, ip, port):
                    busy_error = PortError(f"Bind for {ip}:{port} failed: port is already allocated")
                    continue
                try:
                    sock = _bind(proto, ip, port)
                except OSError as e:
                    busy_error = PortError(f"failed to bind host port for {ip}:{port}/{proto}: "
                                           f"{e.strerror.lower() if e.strerror else e}")
                    if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                        raise busy_error from None
                    continue
                self._held[(proto, ip, port)] = sock
                if ephemeral:
                    self._last = port
                return ip, port, sock
        if ephemeral:
            raise PortError("all ports are allocated")
        assert busy_error is not None
        raise busy_error

    def _conflicts(self, proto: str, ip: str, port: int) -> bool:
        wildcard = "::" if ":" in ip else "0.0.0.0"
        return any(held_proto == proto and held_port == port and (held_ip == ip or wildcard in (held_ip, ip))
                   and (":" in held_ip) == (":" in ip) for held_proto, held_ip, held_port in self._held)

    def release(self, proto: str, ip: str, port: int) -> None:
        """Give a host port back (nothing if not held)."""
        with self._lock:
            sock = self._held.pop((proto, ip, port), None)
        if sock is not None:
            sock.close()


def _bind(proto: str, ip: str, port: int) -> socket.socket:
    """A socket holding (ip, port). TCP ones listen (a listener excludes every other bind, even with
    SO_REUSEADDR, which they set so that connections in TIME_WAIT do not block a new reservation);
    NAT diverts connections before they reach it."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        if proto == "tcp":
            sock.listen(1)
    except OSError:
        sock.close()
        raise
    return sock
