"""The container engine core: Docker's container semantics over the image store, dockyard-shim
and an OCI runtime (see service.ContainerService)."""

from dockyard.engine.containers.errors import (
    Conflict,
    ContainerError,
    InvalidParameter,
    NotFound,
    NotModified,
)
from dockyard.engine.containers.service import ContainerService

__all__ = ["Conflict", "ContainerError", "ContainerService", "InvalidParameter", "NotFound", "NotModified"]
