"""Docker's volumes: records and directories (store), the local driver, copy-up and the service
the API routes and the container service use."""

from dockyard.engine.volumes.service import ANONYMOUS_LABEL, VolumeService

__all__ = ["ANONYMOUS_LABEL", "VolumeService"]
