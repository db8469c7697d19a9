"""Errors of the container engine, each carrying the HTTP status the API will answer with."""

from __future__ import annotations


class ContainerError(Exception):
    """Base class; `status` is the Engine API status code for this error."""

    status = 500


class InvalidParameter(ContainerError):
    """The request is malformed or contradicts itself (400)."""

    status = 400


class NotFound(ContainerError):
    """No such container (or image, or path) (404)."""

    status = 404


class Conflict(ContainerError):
    """The request conflicts with the container's state or another container (409)."""

    status = 409


class NotImplementedByDriver(ContainerError):
    """The container's driver cannot do this (501), e.g. read logs of the `none` log driver."""

    status = 501


class NotModified(ContainerError):
    """Nothing to do: already started / already stopped (304)."""

    status = 304


def no_such_container(ref: str) -> NotFound:
    """Docker's text for an unknown name or ID."""
    return NotFound(f"No such container: {ref}")
