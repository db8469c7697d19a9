"""The distribution spec's error codes and their JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}

# code → (HTTP status, message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "The operation is unsupported."),
    "RANGE_INVALID": (416, "invalid content range"),
    "TOO_LARGE": (413, "payload too large"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
}
# internal names whose answer carries one of the spec's codes
_WIRE_CODES = {"TOO_LARGE": "SIZE_INVALID", "RANGE_INVALID": "BLOB_UPLOAD_INVALID"}


class RegistryError(Exception):
    """An error answered with the spec's body: {"errors": [{"code", "message", "detail"}]}."""

    def __init__(self, code: str, detail: Any = None, message: str | None = None,
                 headers: dict[str, str] | None = None, status: int | None = None) -> None:
        default_status, default_message = CODES[code]
        super().__init__(message or default_message)
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.detail = detail
        self.headers = headers or {}

    def response(self, head: bool = False) -> web.Response:
        """The error as an HTTP response (no body for HEAD)."""
        body = json.dumps({"errors": [{"code": _WIRE_CODES.get(self.code, self.code),
                                       "message": self.message, "detail": self.detail}]}).encode()
        headers = {**API_VERSION_HEADER, "Content-Type": "application/json", **self.headers}
        return web.Response(status=self.status, body=None if head else body, headers=headers)
