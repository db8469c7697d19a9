"""Where a registry is and how to talk to it: Docker Hub's API host, HTTPS with the system CAs plus
a certs.d directory of extra CAs and client certificates, and plain HTTP only for loopback and
configured insecure registries."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass, field

from dockyard.image import reference
from dockyard.registry.client.auth import Credentials

DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
CERTS_DIR = "/etc/docker/certs.d"


def api_host(domain: str) -> str:
    """The host serving a registry domain's API (docker.io → registry-1.docker.io)."""
    return DOCKER_HUB_API if domain in (reference.DEFAULT_DOMAIN, reference.LEGACY_DEFAULT_DOMAIN) else domain


def auth_key(domain: str) -> str:
    """The config.json "auths" key of a registry (Docker Hub's legacy index URL)."""
    return DOCKER_HUB_AUTH_KEY if domain in (reference.DEFAULT_DOMAIN, reference.LEGACY_DEFAULT_DOMAIN,
                                             DOCKER_HUB_API) else domain


def credentials_for(configs: dict[str, Credentials], domain: str) -> Credentials | None:
    """The credentials of a server-address → credentials map (X-Registry-Config) that apply to a
    registry domain: its exact config.json key, else a key whose host part is the domain."""
    key = auth_key(domain)
    if key in configs:
        return configs[key]
    for address, creds in configs.items():
        host = address.split("://", 1)[-1].split("/", 1)[0]
        if auth_key(host) == key:
            return creds
    return None


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """Whether host[:port] is this machine's loopback (localhost, 127.0.0.0/8, ::1)."""
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RegistryConfig:
    """Daemon-wide registry settings: insecure registries (host[:port] or CIDR) and the certs dir."""

    insecure: tuple[str, ...] = ()
    certs_dir: str = CERTS_DIR
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, compare=False, repr=False)

    def allows_http(self, host: str) -> bool:
        """Whether plain HTTP may be used for host (after HTTPS fails)."""
        if is_loopback(host) or host in self.insecure or _hostname(host) in self.insecure:
            return True
        networks = []
        for entry in self.insecure:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        if not networks:
            return False
        addresses = _addresses(_hostname(host))  # a name is resolved only when CIDRs are configured
        return any(a in net for net in networks for a in addresses)

    def tls_context(self, host: str) -> ssl.SSLContext:
        """The TLS context for host: system CAs plus certs.d/<host>/*.crt, and a client
        certificate pair (*.cert + *.key) when the directory has one. Insecure registries (loopback
        included) skip verification, as docker does."""
        context = self._contexts.get(host)
        if context is not None:
            return context
        context = ssl.create_default_context()
        directory = os.path.join(self.certs_dir, host)
        if os.path.isdir(directory):
            for name in sorted(os.listdir(directory)):
                path = os.path.join(directory, name)
                if name.endswith(".crt"):
                    context.load_verify_locations(path)
                elif name.endswith(".cert") and os.path.exists(path[:-5] + ".key"):
                    context.load_cert_chain(path, path[:-5] + ".key")
        if self.allows_http(host):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._contexts[host] = context
        return context


def _addresses(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return []
    return [ipaddress.ip_address(info[4][0]) for info in infos]
