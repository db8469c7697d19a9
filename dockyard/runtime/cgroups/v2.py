"""cgroup v2 back end: one directory in the unified hierarchy."""

from __future__ import annotations

import os
import posixpath

from dockyard.runtime.cgroups.base import (
    SIGKILL,
    Cgroup,
    CgroupError,
    mkdirs,
    read,
    read_int,
    read_kv,
    read_or,
    read_procs,
    remove_tree,
    wait_for,
    write,
    write_pid,
)
from dockyard.runtime.cgroups.convert import (
    blkio_weight_to_io_weight,
    cpu_max,
    cpu_shares_to_weight,
    limit_str,
    memory_swap_to_v2,
)
from dockyard.runtime.cgroups.paths import CGROUP_ROOT

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

FREEZE_TIMEOUT = 10.0
_IO_MAX = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
           "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}


class CgroupV2(Cgroup):
    """A container cgroup at path in the cgroup2 hierarchy mounted at root."""

    version = 2

    def __init__(self, path: str, root: str = CGROUP_ROOT) -> None:
        self.path = posixpath.normpath(path)
        self.root = posixpath.normpath(root)
        if self.path != self.root and not self.path.startswith(self.root + "/"):
            raise CgroupError(f"cgroup {path} is not below the cgroup2 mount {root}")

    def _file(self, name: str) -> str:
        return posixpath.join(self.path, name)

    def create(self) -> None:
        """mkdir -p, enabling in each ancestor's cgroup.subtree_control every controller it offers."""
        parent = self.root
        for part in posixpath.relpath(self.path, self.root).split("/"):
            if part == ".":
                return
            enable_controllers(parent)
            parent = posixpath.join(parent, part)
            mkdirs(parent)

    def add_process(self, pid: int) -> None:
        """Move pid into the cgroup."""
        write_pid(self.path, pid)

    def pids(self) -> list[int]:
        """All processes in the cgroup and its sub-cgroups."""
        return read_procs(self.path)

    def exists(self) -> bool:
        """Whether the cgroup directory exists."""
        return os.path.isdir(self.path)

    def destroy(self) -> None:
        """Remove the cgroup and its sub-cgroups; a missing cgroup is fine."""
        remove_tree(self.path)

    def mount_sources(self) -> list[tuple[str, str]]:
        """The single cgroup2 source: [("", host path)]."""
        return [("", self.path)]

    def freeze(self) -> None:
        """Write cgroup.freeze and wait for cgroup.events to report "frozen 1"."""
        write(self.path, "cgroup.freeze", "1")
        try:
            wait_for(lambda: self._events().get("frozen") == 1, FREEZE_TIMEOUT, f"{self.path} to freeze")
        except CgroupError:
            write(self.path, "cgroup.freeze", "0")
            raise

    def thaw(self) -> None:
        """Write 0 to cgroup.freeze and wait for cgroup.events to report "frozen 0"."""
        write(self.path, "cgroup.freeze", "0")
        wait_for(lambda: self._events().get("frozen") == 0, FREEZE_TIMEOUT, f"{self.path} to thaw")

    def frozen(self) -> bool:
        """True when a freeze was requested (cgroup.freeze is 1)."""
        return read_or(self._file("cgroup.freeze"), "0") == "1"

    def _events(self) -> dict[str, int]:
        return read_kv(self._file("cgroup.events"))

    def kill_all(self, sig: int) -> None:
        """SIGKILL through cgroup.kill when the kernel has it; other signals while frozen."""
        if sig == SIGKILL and os.path.exists(self._file("cgroup.kill")):
            write(self.path, "cgroup.kill", "1")
        else:
            self._signal_frozen(sig)

    # resources

    def apply(self, resources: dict[str, Any]) -> None:
        """Write OCI linux.resources, converted to cgroup v2 files the way runc does."""
        if "cpu" in resources:
            self._cpu(resources["cpu"] or {})
        if "memory" in resources:
            self._memory(resources["memory"] or {})
        if (resources.get("pids") or {}).get("limit"):
            limit = resources["pids"]["limit"]
            write(self.path, "pids.max", str(limit) if limit > 0 else "max")
        if "blockIO" in resources:
            self._io(resources["blockIO"] or {})
        for hp in resources.get("hugepageLimits") or []:
            name = f"hugetlb.{hp['pageSize']}"
            write(self.path, f"{name}.max", str(hp["limit"]))
            if os.path.exists(self._file(f"{name}.rsvd.max")):
                write(self.path, f"{name}.rsvd.max", str(hp["limit"]))
        if resources.get("devices") is not None:
            from dockyard.runtime.cgroups.devices import state_from_rules
            from dockyard.runtime.cgroups.devices_bpf import apply_state

            apply_state(self.path, state_from_rules(resources["devices"]))
        for key, value in (resources.get("unified") or {}).items():
            self._unified(key, str(value))

    def _cpu(self, c: dict[str, Any]) -> None:
        if c.get("realtimeRuntime") or c.get("realtimePeriod"):
            raise CgroupError("real-time CPU scheduling (cpu.realtimeRuntime/realtimePeriod) "
                              "is not supported on cgroup v2")
        if c.get("shares"):
            write(self.path, "cpu.weight", str(cpu_shares_to_weight(c["shares"])))
        quota, period = c.get("quota"), c.get("period")
        if quota or period:
            current = None if quota else read_or(self._file("cpu.max"))
            write(self.path, "cpu.max", cpu_max(quota, period, current))
        if c.get("burst") is not None:
            write(self.path, "cpu.max.burst", str(c["burst"]))
        if c.get("idle") is not None:
            write(self.path, "cpu.idle", str(c["idle"]))
        if c.get("cpus"):
            write(self.path, "cpuset.cpus", c["cpus"])
        if c.get("mems"):
            write(self.path, "cpuset.mems", c["mems"])

    def _memory(self, m: dict[str, Any]) -> None:
        limit, swap = m.get("limit") or 0, m.get("swap") or 0
        if swap or limit == -1:
            memory = limit
            if not memory:  # swap alone (an update): convert against the current memory limit
                current = read_or(self._file("memory.max"), "max")
                memory = -1 if current == "max" else int(current)
            v2swap = memory_swap_to_v2(swap, memory)
            value = "0" if v2swap == 0 and swap > 0 else limit_str(v2swap)  # swap == limit: no swap
            if value is not None:
                try:
                    write(self.path, "memory.swap.max", value)
                except CgroupError:
                    # without swap accounting there is no file: "unlimited" and "none" need no writing
                    if os.path.exists(self._file("memory.swap.max")) or value not in ("max", "0"):
                        raise
        if value := limit_str(limit):
            write(self.path, "memory.max", value)
        if value := limit_str(m.get("reservation")):
            write(self.path, "memory.low", value)

    def _io(self, b: dict[str, Any]) -> None:
        bfq = os.path.exists(self._file("io.bfq.weight"))
        if b.get("weight"):
            if bfq:
                write(self.path, "io.bfq.weight", str(b["weight"]))
            else:
                write(self.path, "io.weight", str(blkio_weight_to_io_weight(b["weight"])))
        for dev in b.get("weightDevice") or []:
            if dev.get("weight"):
                weight = dev["weight"] if bfq else blkio_weight_to_io_weight(dev["weight"])
                write(self.path, "io.bfq.weight" if bfq else "io.weight", f"{dev['major']}:{dev['minor']} {weight}")
        for key, name in _IO_MAX.items():
            for dev in b.get(key) or []:
                rate = dev["rate"] or "max"
                write(self.path, "io.max", f"{dev['major']}:{dev['minor']} {name}={rate}")

    def _unified(self, key: str, value: str) -> None:
        if not key or "/" in key or key.startswith("."):
            raise CgroupError(f"invalid linux.resources.unified key {key!r}")
        if not os.path.exists(self._file(key)):
            controller = key.partition(".")[0]
            enabled = (read_or(self._file("cgroup.controllers")) or "").split()
            hint = "" if controller in enabled or controller == "cgroup" else \
                f" (controller {controller!r} is not enabled for this cgroup)"
            raise CgroupError(f"cannot set {key}={value!r}: {self._file(key)} does not exist{hint}")
        write(self.path, key, value)

    # statistics

    def stats(self) -> dict[str, Any]:
        """memory_stats, cpu_stats, pids_stats and blkio_stats in the shape of Docker's stats API."""
        from dockyard.runtime.cgroups import stats as host  # not on a container's start path
        out: dict[str, Any] = {}
        usage = read_int(self._file("memory.current"))
        if usage is not None:
            limit = read_int(self._file("memory.max"))
            out["memory_stats"] = {
                "usage": usage,
                "max_usage": read_int(self._file("memory.peak")) or 0,
                "failcnt": read_kv(self._file("memory.events")).get("max", 0),
                "limit": min(limit, host.host_memory()) if limit else host.host_memory(),
                "stats": read_kv(self._file("memory.stat")),
            }
        st = read_kv(self._file("cpu.stat"))
        out["cpu_stats"] = {
            "cpu_usage": {"total_usage": st.get("usage_usec", 0) * 1000,
                          "usage_in_usermode": st.get("user_usec", 0) * 1000,
                          "usage_in_kernelmode": st.get("system_usec", 0) * 1000},
            "system_cpu_usage": host.system_cpu_usage(),
            "online_cpus": host.online_cpus(),
            "throttling_data": {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                "throttled_time": st.get("throttled_usec", 0) * 1000},
        }
        current = read_int(self._file("pids.current"))
        if current is not None:
            out["pids_stats"] = {"current": current}
            if limit := read_int(self._file("pids.max")):
                out["pids_stats"]["limit"] = limit
        io = read_or(self._file("io.stat"))
        if io is not None:
            out["blkio_stats"] = _io_stats(io)
        return out


def _io_stats(text: str) -> dict[str, list[dict[str, object]]]:
    """io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...") as Docker's blkio_stats lists."""
    from dockyard.runtime.cgroups import stats as host

    service_bytes: list[dict[str, object]] = []
    serviced: list[dict[str, object]] = []
    for line in text.splitlines():
        dev, *fields = line.split()
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        for key, target, op in (("rbytes", service_bytes, "read"), ("wbytes", service_bytes, "write"),
                                ("rios", serviced, "read"), ("wios", serviced, "write")):
            if key in values:
                target.append(host.blkio_entry(dev, op, int(values[key])))
    return {"io_service_bytes_recursive": service_bytes, "io_serviced_recursive": serviced}


def enable_controllers(directory: str) -> None:
    """Enable in directory/cgroup.subtree_control each controller of cgroup.controllers not yet enabled.

    Controllers the kernel refuses (e.g. because the cgroup holds processes) are skipped, as runc does.
    """
    available = read(posixpath.join(directory, "cgroup.controllers")).split()
    enabled = set(read(posixpath.join(directory, "cgroup.subtree_control")).split())
    missing = [c for c in available if c not in enabled]
    if not missing:
        return
    try:
        write(directory, "cgroup.subtree_control", " ".join("+" + c for c in missing))
    except CgroupError:
        for c in missing:
            try:
                write(directory, "cgroup.subtree_control", "+" + c)
            except CgroupError:
                continue
