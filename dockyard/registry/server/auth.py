"""Access control of the registry server: htpasswd (bcrypt) users over Basic auth, or short-lived
bearer tokens that the server issues itself at /token after checking the same users."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from dockyard.registry.server.errors import RegistryError

TOKEN_LIFETIME = 300
SERVICE = "dockyard-registry"


def read_htpasswd(path: str | Path) -> dict[str, bytes]:
    """user → bcrypt hash from an htpasswd file; ValueError for entries that are not bcrypt."""
    users: dict[str, bytes] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith(("$2y$", "$2a$", "$2b$")):
            raise ValueError(f"{path}:{number}: only bcrypt htpasswd entries are supported (htpasswd -B)")
        users[user] = hashed.encode()
    return users


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an "Authorization: Basic ..." header, else None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


@dataclass
class Access:
    """Who may use the registry: nobody is asked (no users), or htpasswd users by Basic auth or
    by bearer tokens from /token."""

    users: dict[str, bytes] = field(default_factory=dict)
    tokens: bool = False
    _verified: set[bytes] = field(default_factory=set)
    _issued: dict[str, float] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Whether requests must authenticate."""
        return bool(self.users) or self.tokens

    def check_password(self, user: str, password: str) -> bool:
        """Whether the password is the user's (bcrypt results are remembered: it is slow)."""
        import bcrypt
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(f"{user}\0{password}\0".encode() + hashed).digest()
        if key in self._verified:
            return True
        if bcrypt.checkpw(password.encode(), hashed):
            self._verified.add(key)
            return True
        return False

    def issue_token(self, request: web.Request) -> web.Response:
        """GET /token: a bearer token for a valid user (or anyone, without users)."""
        creds = basic_credentials(request.headers.get("Authorization", ""))
        if self.users and (creds is None or not self.check_password(*creds)):
            raise RegistryError("UNAUTHORIZED", headers={"WWW-Authenticate": 'Basic realm="dockyard registry"'})
        now = time.time()
        self._issued = {t: exp for t, exp in self._issued.items() if exp > now}
        token = secrets.token_urlsafe(32)
        self._issued[token] = now + TOKEN_LIFETIME
        return web.json_response({"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME,
                                  "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})

    def authorize(self, request: web.Request, scope: str) -> None:
        """Raise UNAUTHORIZED with the right challenge unless the request may proceed."""
        if not self.enabled:
            return
        header = request.headers.get("Authorization", "")
        if self.tokens:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and self._issued.get(token.strip(), 0) > time.time():
                return
            realm = f"{request.scheme}://{request.host}/token"
            challenge = f'Bearer realm="{realm}",service="{SERVICE}"' + (f',scope="{scope}"' if scope else "")
        else:
            creds = basic_credentials(header)
            if creds is not None and self.check_password(*creds):
                return
            challenge = 'Basic realm="dockyard registry"'
        raise RegistryError("UNAUTHORIZED", headers={"WWW-Authenticate": challenge})
