"""Network errors: the container engine's classes plus Docker's 403 (forbidden) for networks."""

from __future__ import annotations

from dockyard.engine.containers.errors import Conflict, ContainerError, InvalidParameter, NotFound


class Forbidden(ContainerError):
    """An operation the network's state forbids (403), e.g. removing a network in use."""

    status = 403


def no_such_network(ref: str) -> NotFound:
    """Docker's text for an unknown network."""
    return NotFound(f"network {ref} not found")


__all__ = ["Conflict", "ContainerError", "Forbidden", "InvalidParameter", "NotFound", "no_such_network"]
