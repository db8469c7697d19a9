"""`--dry-run`: an Engine API client that reads from the daemon but only pretends to change
anything, as Docker Compose's dry-run client does. Creates answer with the new container's name
as its ID; an inspect of such a container (or of one a dry run removed) shows it exited with
0 and healthy, so that every depends_on condition and `--wait` pass; streams (pull, build,
push) are empty; attaching to a container or an exec is refused."""

from __future__ import annotations

import secrets
from typing import Any

from dockyard.client.api import APIError, Client
from dockyard.compose.errors import ComposeError

PREFIX = " DRY-RUN MODE - "


class _EmptyStream:
    """A streamed response with no messages."""

    status = 200
    headers: dict[str, str] = {}

    def iter_json(self) -> list[Any]:
        return []

    def iter_raw(self) -> list[bytes]:
        return []

    def close(self) -> None:
        pass


def _fake_container(name: str) -> dict[str, Any]:
    return {"Id": name, "Name": "/" + name, "Config": {"Labels": {}}, "Mounts": [], "NetworkSettings": {},
            "State": {"Status": "exited", "Running": False, "ExitCode": 0, "Health": {"Status": "healthy"}}}


class DryRunClient(Client):
    """Reads pass through; writes are answered here and never sent."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.created: set[str] = set()

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             headers: dict[str, str] | None = None, stream: bool = False, versioned: bool = True) -> Any:
        if method in ("GET", "HEAD"):
            try:
                return super().call(method, path, query, body, headers, stream, versioned)
            except APIError as exc:
                parts = path.strip("/").split("/")
                if exc.status == 404 and parts[0] == "containers" and parts[1] in self.created:
                    return _fake_container(parts[1])
                raise
        if (headers or {}).get("Upgrade"):
            raise ComposeError("interactive run is not supported in dry-run mode")
        if stream:
            return _EmptyStream()
        if path == "/containers/create":
            name = (query or {}).get("name") or secrets.token_hex(32)
            self.created.add(name)
            return {"Id": name, "Warnings": []}
        if path.startswith("/containers/") and path.endswith("/exec"):
            return {"Id": secrets.token_hex(32)}
        if path == "/networks/create":
            return {"Id": (body or {}).get("Name", ""), "Warning": ""}
        if path == "/build/context":  # as a dockyardd that has every file (the build's stream is empty)
            return {"Context": "", "Need": []}
        if path == "/volumes/create":
            return {k: (body or {}).get(k) for k in ("Name", "Driver", "Labels")}
        return None
