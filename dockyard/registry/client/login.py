"""Checking credentials against a registry (docker login / POST /auth)."""

from __future__ import annotations

import urllib.parse

from dockyard.image import reference
from dockyard.registry.client.auth import Credentials
from dockyard.registry.client.endpoint import RegistryConfig
from dockyard.registry.client.transport import RegistryError, Transport


class LoginError(Exception):
    """Credentials the registry refused (status 401), or a registry that cannot be reached (500)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def registry_domain(server: str) -> str:
    """The registry domain of a login server address ("https://index.docker.io/v1/" → docker.io,
    "http://127.0.0.1:5000" → 127.0.0.1:5000)."""
    server = server.strip() or reference.DEFAULT_DOMAIN
    if "://" in server:
        server = urllib.parse.urlsplit(server).netloc
    server = server.split("/", 1)[0]
    if server in (reference.LEGACY_DEFAULT_DOMAIN, "registry-1.docker.io"):
        return reference.DEFAULT_DOMAIN
    return server


def login(server: str, credentials: Credentials, config: RegistryConfig | None = None) -> None:
    """Check credentials against server's /v2/ (Basic) or its token realm (Bearer); LoginError."""
    transport = Transport(registry_domain(server), credentials, config)
    try:
        try:
            transport.ping()
        except OSError as err:
            raise LoginError(str(err), 500) from None
        url = f"{transport.base}/v2/"
        try:
            transport.request("GET", "/v2/").read()
        except RegistryError as err:
            if err.status == 401:
                if transport.auth_scheme == "bearer":
                    raise LoginError(f'Get "{url}": {err}') from None
                raise LoginError(f"login attempt to {url} failed with status: 401 Unauthorized") from None
            raise LoginError(f'Get "{url}": {err}', 500) from None
    finally:
        transport.close()
