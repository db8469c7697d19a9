"""Errors of the image store, with Docker's messages (what `docker` prints after "Error response
from daemon: ")."""

from __future__ import annotations

from dockyard.image import digest as digests
from dockyard.image.reference import Reference


class NoSuchImage(LookupError):
    """No image matches the reference or ID (Docker's ErrImageDoesNotExist, HTTP 404)."""

    def __init__(self, ref: Reference | str) -> None:
        if isinstance(ref, Reference) and ref.path and ref.digest is None and ref.tag is None:
            ref = ref.with_tag("latest")
        text = ref.familiar() if isinstance(ref, Reference) else ref
        super().__init__(f"No such image: {text}")


class ImageConflict(Exception):
    """An image that cannot be deleted (HTTP 409); `hard` conflicts cannot be forced."""

    def __init__(self, image_id: str, message: str, hard: bool = False, used: bool = False) -> None:
        how = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {digests.short_id(image_id)} ({how}) - {message}")
        self.image_id = image_id
        self.hard = hard
        self.used = used


class ReferenceConflict(Exception):
    """A repository reference that cannot be removed without force (HTTP 409)."""


class InvalidImage(ValueError):
    """An image whose config, manifest and layers do not agree, or that names missing blobs."""


class InvalidFilter(ValueError):
    """An unknown filter or a filter value that does not parse (Docker's text)."""

    def __init__(self, name: str, values: list[str] | None = None) -> None:
        text = f"invalid filter '{name}"
        if values is not None:
            text += "=" + ",".join(values)
        super().__init__(text + "'")
