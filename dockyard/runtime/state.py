"""Per-container state under the runtime's --root: state.json, the exec fifo, and the status.

A container's status is derived from the kernel, not stored: the init process (pid + start
time, so a recycled pid is not mistaken for it) tells running vs stopped, the exec fifo tells
created, and the freezer tells paused.
"""

from __future__ import annotations

import time

from dockyard.runtime import jsonfast
from dockyard.runtime import oslite as os
from dockyard.runtime.errors import RuntimeFailure

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2"
DEFAULT_ROOT = "/run/dockyard-runtime"
EXEC_FIFO = "exec.fifo"


def now_rfc3339() -> str:
    """UTC time in RFC 3339 with nanosecond precision, as runc prints it."""
    secs, frac = divmod(time.time_ns(), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def process_start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[19])


def process_alive(pid: int, start_time: int | None) -> bool:
    """True if pid is the same process as recorded and it is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    fields = data[data.rfind(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return False
    return start_time is None or int(fields[19]) == start_time


class StateStore:
    """The directory of container states (runc's --root)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def reserve(self, container_id: str) -> str:
        """Create the container's state directory; fail if the id is taken."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        path = self.dir(container_id)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise RuntimeFailure(f"container with id {container_id} already exists") from None
        return path

    def save(self, state: dict[str, Any]) -> None:
        """Write state.json atomically."""
        path = os.path.join(self.dir(state["id"]), "state.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(jsonfast.dumps(state))
        os.rename(tmp, path)

    def load(self, container_id: str) -> dict[str, Any]:
        """Read a container's state, or fail with runc's 'does not exist' message."""
        try:
            with open(os.path.join(self.dir(container_id), "state.json"), "rb") as f:
                return jsonfast.loads(f.read())  # type: ignore[return-value]
        except FileNotFoundError:
            raise RuntimeFailure(f"container {container_id} does not exist") from None
        except ValueError as e:
            raise RuntimeFailure(f"container {container_id}: corrupt state: {e}") from None

    def ids(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [e for e in entries if os.path.exists(os.path.join(self.root, e, "state.json"))]

    def remove(self, container_id: str) -> None:
        """Remove the container's state directory (it holds only flat files)."""
        path = self.dir(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
        os.rmdir(path)

    def status(self, state: dict[str, Any]) -> str:
        """created, running, paused or stopped."""
        if not process_alive(state["pid"], state.get("pid_start")):
            return "stopped"
        if os.path.exists(os.path.join(self.dir(state["id"]), EXEC_FIFO)):
            return "created"
        from dockyard.runtime.cgroups import open_cgroup

        cg = open_cgroup(state.get("cgroups_path"), state["id"], root_pid=state["pid"])
        if cg.exists() and cg.frozen():
            return "paused"
        return "running"

    def oci_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state document of the OCI runtime spec, shaped as runc prints it."""
        status = self.status(state)
        out = {
            "ociVersion": OCI_VERSION,
            "id": state["id"],
            "pid": state["pid"] if status != "stopped" else 0,
            "status": status,
            "bundle": state["bundle"],
            "rootfs": state["rootfs"],
            "created": state["created"],
            "owner": "",
        }
        annotations = state["config"].get("annotations")
        if annotations:
            out["annotations"] = annotations
        return out
