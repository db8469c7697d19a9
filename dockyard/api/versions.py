"""API versions: what dockyardd advertises and the check dockerd applies to /vX.Y/ prefixes."""

from __future__ import annotations

from dockyard.api.errors import ApiError

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"


def parse(version: str) -> tuple[int, ...]:
    """"1.45" → (1, 45); ApiError 400 for anything that is not dot-separated numbers."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise ApiError(400, f"invalid API version: {version!r}") from None


def check(version: str) -> None:
    """Refuse a client version outside [MIN_API_VERSION, API_VERSION] with dockerd's texts."""
    wanted = parse(version)
    if wanted > parse(API_VERSION):
        raise ApiError(400, f"client version {version} is too new. Maximum supported API version is {API_VERSION}")
    if wanted < parse(MIN_API_VERSION):
        raise ApiError(400, f"client version {version} is too old. Minimum supported API version is "
                            f"{MIN_API_VERSION}, please upgrade your client to a newer version")
