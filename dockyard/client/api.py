"""The Docker Engine API, one method per endpoint: parsed JSON, or a Response to stream.
The API version is negotiated on first use: min(our maximum, the daemon's Api-Version) as the
/vX.Y prefix of every later call. The docker CLI pings for it first; here a first call that can be
sent twice goes out at our maximum and settles it from its answer's Api-Version, and only a daemon
that refuses that version as too new costs the ping (HEAD /_ping) and a second try."""

from __future__ import annotations

from dockyard.client import http

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds to import; annotations only
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

MAX_API_VERSION = "1.45"


class APIError(Exception):
    """An error answer from the daemon: HTTP status and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


class Client:
    """A client for one daemon address."""

    def __init__(self, host: str = http.DEFAULT_HOST, version: str | None = None) -> None:
        self.host = host
        self._version = version
        self.server_version = ""

    @property
    def version(self) -> str:
        """The negotiated API version (pings the daemon once)."""
        if self._version is None:
            resp = http.request(self.host, "HEAD", "/_ping")
            resp.close()
            self.negotiate(resp.headers)
        assert self._version is not None
        return self._version

    def negotiate(self, headers: dict[str, str]) -> None:
        """Settle the API version from a response's headers (its Api-Version), when not yet
        known: an unversioned call can stand in for the ping."""
        if self._version is not None:
            return
        self.server_version = headers.get("api-version", "")
        self._version = MAX_API_VERSION
        if self.server_version and _version_key(self.server_version) < _version_key(MAX_API_VERSION):
            self._version = self.server_version

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             headers: dict[str, str] | None = None, stream: bool = False, versioned: bool = True) -> Any:
        """One API call: raises APIError for a status >= 400; JSON (or None), or the open Response.
        versioned=False sends the path without /vX.Y (the daemon's own version) and settles the
        version from the answer instead of a ping."""
        head = dict(headers or {})
        if body is not None and not isinstance(body, bytes) and not hasattr(body, "__next__"):
            body = http.json.dumps(body).encode()
            head.setdefault("Content-Type", "application/json")
        # Not negotiated yet: a call that can be sent again goes out at our own version at once,
        # and a daemon that finds it too new refuses it before acting (then the ping, and again).
        optimistic = versioned and self._version is None and (body is None or isinstance(body, bytes))
        prefix = f"/v{MAX_API_VERSION if optimistic else self.version}" if versioned else ""
        resp = http.request(self.host, method, prefix + http.url(path, query), body, head)
        if (optimistic or not versioned) and resp.status < 400:
            self.negotiate(resp.headers)
        if resp.status >= 400:
            data = resp.read()
            resp.close()
            try:
                message = http.json.loads(data)["message"]
            except (ValueError, KeyError, TypeError):
                message = data.decode("utf-8", "replace").strip()
            if optimistic and resp.status == 400 and "is too new" in message:
                self.version  # noqa: B018 - the ping settles the version
                return self.call(method, path, query, body, headers, stream, versioned)
            raise APIError(resp.status, message)
        if stream:
            return resp
        try:
            data = resp.read()
        finally:
            resp.close()
        if resp.headers.get("content-type", "").startswith("application/json") and data:
            return http.json.loads(data)
        return data.decode("utf-8", "replace") if data else None

    def hijack(self, path: str, query: dict[str, Any] | None = None, body: Any = None) -> http.Response:
        """POST with Upgrade: tcp; the 101 response whose socket is then the raw stream."""
        headers = {"Connection": "Upgrade", "Upgrade": "tcp",
                   "Content-Type": "application/json" if body is not None else "text/plain"}
        return self.call("POST", path, query, body, headers, stream=True)

    # system
    def ping(self) -> str:
        return self.version

    def server_info_version(self) -> dict[str, Any]:
        return self.call("GET", "/version")

    def info(self) -> dict[str, Any]:
        return self.call("GET", "/info")

    def df(self) -> dict[str, Any]:
        return self.call("GET", "/system/df")

    def events(self, since: str | None = None, until: str | None = None,
               filters: dict[str, Any] | None = None) -> http.Response:
        return self.call("GET", "/events", {"since": since, "until": until, "filters": filters or None},
                         stream=True)

    # images
    def images(self, all: bool = False, filters: dict[str, Any] | None = None,
               digests: bool = False) -> list[dict[str, Any]]:
        return self.call("GET", "/images/json", {"all": 1 if all else None, "filters": filters or None,
                                                 "digests": 1 if digests else None})

    def inspect_image(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"/images/{name}/json")

    def history(self, name: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/images/{name}/history")

    def tag(self, name: str, repo: str, tag: str) -> None:
        self.call("POST", f"/images/{name}/tag", {"repo": repo, "tag": tag})

    def remove_image(self, name: str, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
        return self.call("DELETE", f"/images/{name}", {"force": 1 if force else None,
                                                       "noprune": 1 if noprune else None})

    def prune_images(self, filters: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/images/prune", {"filters": filters})

    def save(self, names: list[str]) -> http.Response:
        return self.call("GET", "/images/get", {"names": names}, stream=True)

    def load(self, data: Iterable[bytes], quiet: bool) -> http.Response:
        return self.call("POST", "/images/load", {"quiet": 1 if quiet else 0}, iter(data),
                         {"Content-Type": "application/x-tar"}, stream=True)

    def import_image(self, data: Iterable[bytes] | None, source: str, repo: str | None, tag: str | None,
                     message: str | None, changes: list[str]) -> http.Response:
        query = {"fromSrc": source, "repo": repo, "tag": tag, "message": message, "changes": changes or None}
        return self.call("POST", "/images/create", query, iter(data) if data is not None else None,
                         {"Content-Type": "application/x-tar"}, stream=True)

    # containers
    def containers(self, all: bool = False, limit: int | None = None, size: bool = False,
                   filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.call("GET", "/containers/json", {"all": 1 if all else None, "limit": limit,
                                                     "size": 1 if size else None, "filters": filters or None})

    def inspect_container(self, name: str, size: bool = False) -> dict[str, Any]:
        return self.call("GET", f"/containers/{name}/json", {"size": 1 if size else None})

    def create_container(self, body: dict[str, Any], name: str | None) -> dict[str, Any]:
        return self.call("POST", "/containers/create", {"name": name}, body)

    def start(self, name: str) -> None:
        self.call("POST", f"/containers/{name}/start")

    def wait(self, name: str, condition: str | None = None) -> http.Response:
        return self.call("POST", f"/containers/{name}/wait", {"condition": condition}, stream=True)

    def attach(self, name: str, stdin: bool, logs: bool = False, stdout: bool = True,
               stderr: bool = True, detach_keys: str | None = None) -> http.Response:
        return self.hijack(f"/containers/{name}/attach", {"stream": 1, "stdin": 1 if stdin else None,
                                                          "stdout": 1 if stdout else None,
                                                          "stderr": 1 if stderr else None, "logs": 1 if logs else None,
                                                          "detachKeys": detach_keys or None})

    def resize(self, kind: str, name: str, height: int, width: int) -> None:
        self.call("POST", f"/{kind}/{name}/resize", {"h": height, "w": width})

    def logs(self, name: str, query: dict[str, Any]) -> http.Response:
        return self.call("GET", f"/containers/{name}/logs", query, stream=True)

    def container_action(self, name: str, action: str, query: dict[str, Any] | None = None) -> None:
        """stop, restart, kill, pause, unpause, rename."""
        self.call("POST", f"/containers/{name}/{action}", query)

    def remove_container(self, name: str, force: bool, volumes: bool, link: bool = False) -> None:
        self.call("DELETE", f"/containers/{name}", {"force": 1 if force else None, "v": 1 if volumes else None,
                                                     "link": 1 if link else None})

    def top(self, name: str, ps_args: str | None) -> dict[str, Any]:
        return self.call("GET", f"/containers/{name}/top", {"ps_args": ps_args})

    def prune_containers(self, filters: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/containers/prune", {"filters": filters or None})

    def exec_create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"/containers/{name}/exec", None, body)

    def exec_start(self, exec_id: str, tty: bool, detach: bool) -> http.Response | None:
        body = {"Detach": detach, "Tty": tty}
        if detach:
            return self.call("POST", f"/exec/{exec_id}/start", None, body)
        return self.hijack(f"/exec/{exec_id}/start", None, body)

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self.call("GET", f"/exec/{exec_id}/json")
