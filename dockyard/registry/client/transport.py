"""HTTP to one registry: a keep-alive connection per thread, the scheme chosen by pinging /v2/
(HTTPS, then HTTP where allowed), and authentication answered from the WWW-Authenticate challenge
(Basic credentials, or a bearer token fetched from the realm for the scopes asked)."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterable
from typing import Any

from dockyard.registry.client.auth import Challenge, Credentials, parse_challenges
from dockyard.registry.client.endpoint import RegistryConfig, api_host

BLOCK = 1 << 20
TIMEOUT = 60
DEFAULT_CONFIG = RegistryConfig()  # shared, so its TLS contexts (CA loading: ~70 ms) are made once


class RegistryError(Exception):
    """An error answer of a registry: HTTP status and the spec's first error code and message."""

    def __init__(self, status: int, code: str, message: str, url: str = "") -> None:
        super().__init__(f"{code.lower().replace('_', ' ')}: {message}" if code else message)
        self.status = status
        self.code = code
        self.message = message
        self.url = url


class Unauthorized(RegistryError):
    """401 after presenting credentials (or none)."""


_STATUS_ERRORS = {401: ("UNAUTHORIZED", "authentication required"),
                  403: ("DENIED", "requested access to the resource is denied")}


def error_from(resp: http.client.HTTPResponse, url: str) -> RegistryError:
    """The RegistryError of an error response (its body read)."""
    body = resp.read(1 << 20)
    code, message = _STATUS_ERRORS.get(resp.status, ("", f"{resp.status} {resp.reason}"))
    try:
        first = json.loads(body)["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("message", "")) or message
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    cls = Unauthorized if resp.status == 401 else RegistryError
    return cls(resp.status, code, message, url)


class Transport:
    """Requests to one registry host with one set of credentials; safe to use from many threads."""

    def __init__(self, domain: str, credentials: Credentials | None = None,
                 config: RegistryConfig | None = None) -> None:
        self.host = api_host(domain)
        self.credentials = credentials or Credentials()
        self.config = config or DEFAULT_CONFIG
        self.scheme = ""
        self._challenge: Challenge | None = None
        self._tokens: dict[str, str] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def auth_scheme(self) -> str:
        """The scheme the registry asked for at the ping ("basic", "bearer"), "" for none."""
        return self._challenge.scheme if self._challenge is not None else ""

    @property
    def base(self) -> str:
        """scheme://host of the API, once pinged."""
        return f"{self.scheme}://{self.host}"

    # -- connections -----------------------------------------------------------------------------

    def _connection(self, scheme: str, host: str) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get((scheme, host))
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, timeout=TIMEOUT, blocksize=BLOCK,
                                                   context=self.config.tls_context(host))
            else:
                conn = http.client.HTTPConnection(host, timeout=TIMEOUT, blocksize=BLOCK)
            pool[(scheme, host)] = conn
        return conn

    def _drop(self, scheme: str, host: str) -> None:
        conn = self._local.__dict__.get("pool", {}).pop((scheme, host), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._local.__dict__.pop("pool", {}).values():
            conn.close()

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any) -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (0, 1):
            conn = self._connection(parts.scheme, parts.netloc)
            try:
                conn.request(method, target, body=body, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest):
                self._drop(parts.scheme, parts.netloc)
                rewindable = body is None or isinstance(body, bytes)
                if attempt or not rewindable:
                    raise
            except BaseException:
                self._drop(parts.scheme, parts.netloc)
                raise
        raise AssertionError("unreachable")

    # -- ping and auth ---------------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/: choose the scheme and learn the auth challenge (once per transport)."""
        with self._lock:
            if self.scheme:
                return
            schemes = ["https", "http"] if self.config.allows_http(self.host) else ["https"]
            last: Exception | None = None
            for scheme in schemes:
                try:
                    resp = self._send("GET", f"{scheme}://{self.host}/v2/", {}, None)
                except (OSError, ssl.SSLError, http.client.HTTPException) as err:
                    self._drop(scheme, self.host)
                    last = err
                    continue
                resp.read()
                if resp.status == 401:
                    challenges = parse_challenges(resp.getheader("WWW-Authenticate", ""))
                    self._challenge = next((c for c in challenges if c.scheme == "bearer"), None) or \
                        next((c for c in challenges if c.scheme == "basic"), None)
                elif resp.status >= 400 and resp.status != 404:
                    last = RegistryError(resp.status, "", f"{resp.status} {resp.reason}", f"{scheme}://{self.host}/v2/")
                    continue
                self.scheme = scheme
                return
            raise ConnectionError(f'Get "{schemes[0]}://{self.host}/v2/": {last}') from last

    def _authorization(self, scopes: tuple[str, ...], fresh: bool = False) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return None if self.credentials.empty else self.credentials.basic()
        if self.credentials.registry_token:
            return f"Bearer {self.credentials.registry_token}"
        key = " ".join(sorted(scopes))
        with self._lock:
            token = None if fresh else self._tokens.get(key)
        if token is None:
            token = self._fetch_token(challenge, scopes)
            with self._lock:
                self._tokens[key] = token
        return f"Bearer {token}"

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(401, "UNAUTHORIZED", f"invalid token realm {realm!r}")
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        query += [("scope", s) for s in scopes]
        if self.credentials.username:
            query.append(("account", self.credentials.username))
        headers = {} if self.credentials.empty else {"Authorization": self.credentials.basic()}
        sep = "&" if "?" in realm else "?"
        url = realm + (sep + urllib.parse.urlencode(query) if query else "")
        resp = self._send("GET", url, headers, None)
        if resp.status != 200:
            raise error_from(resp, url)
        try:
            doc = json.loads(resp.read())
            return str(doc.get("token") or doc["access_token"])
        except (ValueError, KeyError, TypeError):
            raise RegistryError(resp.status, "UNAUTHORIZED", "the token server's answer has no token") from None

    # -- requests --------------------------------------------------------------------------------

    def request(self, method: str, path: str, scopes: Iterable[str] = (), headers: dict[str, str] | None = None,
                body: Any = None, ok: tuple[int, ...] = (200,)) -> http.client.HTTPResponse:
        """One request to path (or an absolute URL); the response, its body unread, when its
        status is in ok, else RegistryError. A 401 is answered once with fresh credentials."""
        self.ping()
        scopes = tuple(scopes)
        url = path if "://" in path else self.base + path
        same_host = urllib.parse.urlsplit(url).netloc == self.host
        fresh = False
        for _ in range(6):
            sent = dict(headers or {})
            auth = self._authorization(scopes, fresh) if same_host else None
            if auth:
                sent["Authorization"] = auth
            resp = self._send(method, url, sent, body)
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                resp.read()
                url = urllib.parse.urljoin(url, resp.getheader("Location"))
                same_host = urllib.parse.urlsplit(url).netloc == self.host
                continue
            if resp.status == 401 and not fresh and same_host and (body is None or isinstance(body, bytes)):
                challenges = parse_challenges(resp.getheader("WWW-Authenticate", ""))
                resp.read()
                if challenges:
                    self._challenge = challenges[0]
                fresh = True
                continue
            if resp.status in ok:
                return resp
            raise error_from(resp, url)
        raise RegistryError(310, "", "too many redirects", url)
