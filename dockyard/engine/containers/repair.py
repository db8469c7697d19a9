"""Start-up repair helpers: what a daemon killed at any instant can leave behind (a shim of a
start that never completed, runtime state, mounts, snapshots and directories of containers whose
record was never written or already deleted)."""

from __future__ import annotations

import os
import re

from dockyard.shim.client import ShimClient, ShimError

_CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")


def stop_shim(shim_dir: str, timeout: float = 10) -> bool:
    """SIGKILL the container of a shim that still answers and wait for its exit; whether one did."""
    try:
        client = ShimClient(shim_dir, timeout=timeout)
        if client.state().get("status") == "stopped":
            return True
        client.signal(9)
        client.wait(timeout=timeout)
    except (ShimError, OSError):
        return False
    return True


def orphan_ids(directory: str, known: set[str]) -> list[str]:
    """Entries of directory named like a container ID that no record knows."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _CONTAINER_ID.match(n) and n not in known)


def is_container_id(name: str) -> bool:
    """Whether name has the shape of a container ID (64 lowercase hex digits)."""
    return bool(_CONTAINER_ID.match(name))
