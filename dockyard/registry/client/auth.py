"""Registry credentials and WWW-Authenticate challenges (Basic, and Bearer tokens from the realm)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Credentials:
    """What a client presents: user and password, or an identity (refresh) token, or a bearer
    token to use as is."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def empty(self) -> bool:
        """True when there is nothing to present."""
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def basic(self) -> str:
        """The Basic Authorization header value."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    @classmethod
    def from_header(cls, value: str) -> Credentials:
        """Decode an X-Registry-Auth header (base64url JSON AuthConfig); empty when unreadable."""
        value = value.strip()
        if not value:
            return cls()
        try:
            doc = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        except (ValueError, UnicodeDecodeError):
            return cls()
        return cls.from_dict(doc) if isinstance(doc, dict) else cls()

    @classmethod
    def map_from_header(cls, value: str) -> dict[str, Credentials]:
        """Decode an X-Registry-Config header (base64 JSON: server address → AuthConfig), as
        the docker CLI sends with /build; {} when absent or unreadable."""
        value = value.strip()
        if not value:
            return {}
        padded = value + "=" * (-len(value) % 4)
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                doc = json.loads(decode(padded))
                break
            except (ValueError, UnicodeDecodeError):
                continue
        else:
            return {}
        if not isinstance(doc, dict):
            return {}
        return {k: cls.from_dict(v) for k, v in doc.items() if isinstance(k, str) and isinstance(v, dict)}

    @classmethod
    def from_dict(cls, doc: dict) -> Credentials:
        """From an AuthConfig object (username, password, identitytoken, registrytoken)."""
        def get(*keys: str) -> str:
            for key in keys:
                value = doc.get(key)
                if isinstance(value, str) and value:
                    return value
            return ""
        return cls(get("username", "Username"), get("password", "Password"),
                   get("identitytoken", "IdentityToken"), get("registrytoken", "RegistryToken"))


@dataclass(frozen=True)
class Challenge:
    """One WWW-Authenticate challenge: scheme ("basic", "bearer") and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a WWW-Authenticate header value (one or several schemes)."""
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if match is None:
            break
        scheme = match.group(1).lower()
        rest = rest[match.end():]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM.match(rest)
            if pm is None:
                break
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", pm.group(2)) if pm.group(2) is not None \
                else pm.group(3)
            rest = rest[pm.end():]
        out.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return out
