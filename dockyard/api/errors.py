"""Docker's error shape: every failure is `{"message": "..."}` with the status dockerd gives
its error class (404 not found, 409 conflict, 400 invalid parameter, 501, 500); the
container engine's errors carry their status."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dockyard.engine.containers.errors import ContainerError
from dockyard.image.archive.changes import ChangeError
from dockyard.image.archive.tario import ArchiveError
from dockyard.image.errors import ImageConflict, InvalidFilter, InvalidImage, NoSuchImage, ReferenceConflict
from dockyard.image.manifest import InvalidManifest, NoMatchingPlatform
from dockyard.image.reference import InvalidReference

JSON_HEADERS = {"Content-Type": "application/json"}  # exactly this: the Go client compares the whole value


def json_line(data: Any) -> bytes:
    """One JSON document as dockerd's encoder writes it: compact, newline-terminated."""
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


class ApiError(Exception):
    """An error with its HTTP status, raised by routes and the engine's services."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotImplementedYet(ApiError):
    """An endpoint whose engine part does not exist yet (501)."""

    def __init__(self, message: str) -> None:
        super().__init__(501, message)


_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (NoSuchImage, 404),
    (NoMatchingPlatform, 404),
    (ImageConflict, 409),
    (ReferenceConflict, 409),
    (InvalidReference, 400),
    (InvalidFilter, 400),
    (ChangeError, 400),
    (ArchiveError, 400),
    (InvalidImage, 400),
    (InvalidManifest, 400),
)


def status_of(exc: BaseException) -> int:
    """The HTTP status dockerd would answer for exc (500 when it is not a known client error)."""
    if isinstance(exc, (ApiError, ContainerError)):
        return exc.status
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def error_response(status: int, message: str) -> web.Response:
    """Docker's JSON error body."""
    return web.Response(status=status, body=json_line({"message": message}), headers=JSON_HEADERS)

