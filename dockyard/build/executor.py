"""What the builder needs from its host to run a RUN step (the engine implements it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# A process's stderr output reaches `output` wrapped in these (red, as dockerd's classic builder).
STDERR_START, STDERR_END = b"\x1b[91m", b"\x1b[0m"


@dataclass
class RunRequest:
    """One RUN: a process in a prepared, mounted root filesystem."""

    rootfs: str
    args: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""
    network: str = "default"  # default | host | none | a user-defined network (its name or ID)
    mounts: list[dict] = field(default_factory=list)  # OCI mount entries (--mount)
    hostname: str = "buildkitsandbox"
    extra_hosts: list[str] = field(default_factory=list)  # "name:ip" entries added to /etc/hosts
    shm_size: int = 0  # bytes of /dev/shm (0: the runtime's default)


class Executor(Protocol):
    """Runs build processes and answers questions about a rootfs's users."""

    def run(self, request: RunRequest, output: Callable[[bytes], None]) -> int:
        """Run the process to completion, its stdout and stderr (each stderr chunk between
        STDERR_START and STDERR_END) given to output; the exit code."""

    def resolve_user(self, rootfs: str, user: str) -> tuple[int, int]:
        """(uid, gid) of a USER / --chown value in rootfs's /etc/passwd and /etc/group."""
