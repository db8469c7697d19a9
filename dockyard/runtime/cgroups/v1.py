"""cgroup v1 (and hybrid) back end: one directory per mounted hierarchy."""

from __future__ import annotations

from dockyard.runtime import oslite as os
from dockyard.runtime.cgroups.base import (
    Cgroup,
    CgroupError,
    mkdirs,
    read,
    read_int,
    read_kv,
    read_or,
    read_procs,
    remove_tree,
    signal_pids,
    wait_for,
    write,
    write_each,
    write_pid,
)
from dockyard.runtime.cgroups.paths import UNIFIED, Hierarchy

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

FREEZE_TIMEOUT = 10.0
_PROCS_FROM = ("pids", "freezer", "memory", "devices", "cpu", "name=systemd", UNIFIED)
_THROTTLE = {"throttleReadBpsDevice": "blkio.throttle.read_bps_device",
             "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
             "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
             "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device"}


class CgroupV1(Cgroup):
    """A container cgroup in every v1 hierarchy (and the cgroup2 one on hybrid hosts)."""

    version = 1

    def __init__(self, targets: list[tuple[Hierarchy, str]]) -> None:
        self.targets = targets
        self.paths = {h.key: path for h, path in targets}  # hierarchy key -> host path
        self.dirs = {c: path for h, path in targets for c in (h.controllers or [h.key])}  # controller -> path

    def _dir(self, controller: str) -> str:
        try:
            return self.dirs[controller]
        except KeyError:
            raise CgroupError(f"the {controller} cgroup controller is not mounted") from None

    def create(self) -> None:
        """Create the directory in each hierarchy; new cpuset cgroups get the parent's cpus and mems."""
        for h, path in self.targets:
            if "cpuset" in h.controllers:
                _create_cpuset(h.mountpoint, path)
            else:
                mkdirs(path)

    def add_process(self, pid: int) -> None:
        """Move pid into the cgroup in every hierarchy."""
        for path in self.paths.values():
            write_pid(path, pid)

    def join_self(self) -> bool:
        """Join every v1 hierarchy through `tasks` ("0" = the caller's own thread)."""
        for key, path in self.paths.items():
            if key != UNIFIED:
                write(path, "tasks", "0")
        return self.self_joinable()

    def self_joinable(self) -> bool:
        """True unless a hybrid host's cgroup2 hierarchy is involved (no `tasks` file there)."""
        return UNIFIED not in self.paths

    def add_remaining(self, pid: int) -> None:
        """On hybrid hosts, the cgroup2 hierarchy (no `tasks` file there)."""
        if UNIFIED in self.paths:
            write_pid(self.paths[UNIFIED], pid)

    def pids(self) -> list[int]:
        """All processes in the cgroup (read from one hierarchy that every member joined)."""
        for key in _PROCS_FROM:
            if key in self.dirs:
                return read_procs(self.dirs[key])
        return read_procs(next(iter(self.paths.values()))) if self.paths else []

    def exists(self) -> bool:
        """Whether the cgroup directory exists in any hierarchy."""
        return any(os.path.isdir(p) for p in self.paths.values())

    def destroy(self) -> None:
        """Remove the directory (and sub-cgroups) everywhere; missing directories are fine."""
        for path in self.paths.values():
            remove_tree(path)

    def mount_sources(self) -> list[tuple[str, str]]:
        """(basename of the host mountpoint, e.g. "cpu,cpuacct", host path) for each v1 hierarchy."""
        return [(os.path.basename(h.mountpoint), path) for h, path in self.targets if h.key != UNIFIED]

    # freezer

    def freeze(self) -> None:
        """Freeze via freezer.state and wait for FROZEN (rewriting it, as a task may be mid-fork)."""
        d = self._dir("freezer")
        write(d, "freezer.state", "FROZEN")
        try:
            wait_for(lambda: read(f"{d}/freezer.state") == "FROZEN", FREEZE_TIMEOUT, f"{d} to freeze",
                     retry=lambda: write(d, "freezer.state", "FROZEN"))
        except CgroupError:
            write(d, "freezer.state", "THAWED")
            raise

    def thaw(self) -> None:
        """Thaw via freezer.state."""
        d = self._dir("freezer")
        write(d, "freezer.state", "THAWED")
        wait_for(lambda: read(f"{d}/freezer.state") == "THAWED", FREEZE_TIMEOUT, f"{d} to thaw")

    def frozen(self) -> bool:
        """True while freezer.state is FROZEN or FREEZING."""
        d = self.dirs.get("freezer")
        return d is not None and read_or(f"{d}/freezer.state", "THAWED") != "THAWED"

    def kill_all(self, sig: int) -> None:
        """Signal every process; frozen meanwhile when possible so none escapes by forking."""
        if "freezer" in self.dirs and os.path.isdir(self.dirs["freezer"]):
            self._signal_frozen(sig)
        else:
            signal_pids(self.pids(), sig)

    # resources

    def apply(self, resources: dict[str, Any]) -> None:
        """Write OCI linux.resources to the v1 controller files."""
        if resources.get("unified"):
            raise CgroupError("linux.resources.unified requires cgroup v2, but this host uses cgroup v1")
        if "memory" in resources:
            self._memory(resources["memory"] or {})
        if "cpu" in resources:
            self._cpu(resources["cpu"] or {})
        if (resources.get("pids") or {}).get("limit"):
            limit = resources["pids"]["limit"]
            write(self._dir("pids"), "pids.max", str(limit) if limit > 0 else "max")
        if "blockIO" in resources:
            self._blkio(resources["blockIO"] or {})
        for hp in resources.get("hugepageLimits") or []:
            d = self._dir("hugetlb")
            name = f"hugetlb.{hp['pageSize']}"
            write(d, f"{name}.limit_in_bytes", str(hp["limit"]))
            if os.path.exists(f"{d}/{name}.rsvd.limit_in_bytes"):
                write(d, f"{name}.rsvd.limit_in_bytes", str(hp["limit"]))
        if resources.get("devices") is not None:
            self._devices(resources["devices"])

    def _memory(self, m: dict[str, Any]) -> None:
        d = self._dir("memory")
        limit, swap = m.get("limit") or 0, m.get("swap") or 0
        has_swap = os.path.exists(f"{d}/memory.memsw.limit_in_bytes")
        if limit == -1 and swap == 0 and has_swap:
            swap = -1  # unlimited memory and no explicit swap limit: unlimited swap as well
        if swap and not has_swap:
            raise CgroupError(f"swap limit {swap} requested but {d} has no memory.memsw.limit_in_bytes "
                              "(swap accounting is disabled)")
        # The kernel requires limit <= memsw at every moment: write in the order that keeps it true.
        swap_first = bool(limit and swap) and (swap == -1 or (read_int(f"{d}/memory.limit_in_bytes") or 0) < swap)
        if swap_first:
            write(d, "memory.memsw.limit_in_bytes", str(swap))
        if limit:
            write(d, "memory.limit_in_bytes", str(limit))
        if swap and not swap_first:
            write(d, "memory.memsw.limit_in_bytes", str(swap))
        if m.get("reservation"):
            write(d, "memory.soft_limit_in_bytes", str(m["reservation"]))
        swappiness = m.get("swappiness")
        if swappiness is not None and swappiness != -1:
            if not 0 <= swappiness <= 100:
                raise CgroupError(f"invalid memory swappiness {swappiness} (valid range is 0-100)")
            write(d, "memory.swappiness", str(swappiness))
        if m.get("disableOOMKiller"):
            write(d, "memory.oom_control", "1")

    def _cpu(self, c: dict[str, Any]) -> None:
        if c.get("shares"):
            d = self._dir("cpu")
            write(d, "cpu.shares", str(c["shares"]))
            actual = read_int(f"{d}/cpu.shares")
            if actual != c["shares"]:
                bound = "maximum" if c["shares"] > (actual or 0) else "minimum"
                raise CgroupError(f"cpu shares {c['shares']} out of range: the {bound} allowed is {actual}")
        period, quota = c.get("period") or 0, c.get("quota") or 0
        if period:
            d = self._dir("cpu")
            try:
                write(d, "cpu.cfs_period_us", str(period))
            except CgroupError:
                if not quota:
                    raise
                # the current quota may not fit the new period: set the quota first
                write(d, "cpu.cfs_quota_us", str(quota))
                write(d, "cpu.cfs_period_us", str(period))
        if quota:
            write(self._dir("cpu"), "cpu.cfs_quota_us", str(quota))
        if c.get("burst") is not None:
            write(self._dir("cpu"), "cpu.cfs_burst_us", str(c["burst"]))
        if c.get("realtimePeriod"):
            write(self._dir("cpu"), "cpu.rt_period_us", str(c["realtimePeriod"]))
        if c.get("realtimeRuntime"):
            write(self._dir("cpu"), "cpu.rt_runtime_us", str(c["realtimeRuntime"]))
        if c.get("idle") is not None:
            write(self._dir("cpu"), "cpu.idle", str(c["idle"]))
        if c.get("cpus"):
            write(self._dir("cpuset"), "cpuset.cpus", c["cpus"])
        if c.get("mems"):
            write(self._dir("cpuset"), "cpuset.mems", c["mems"])

    def _blkio(self, b: dict[str, Any]) -> None:
        d = self._dir("blkio")
        weight_file = "blkio.bfq.weight" if os.path.exists(f"{d}/blkio.bfq.weight") else "blkio.weight"
        if b.get("weight"):
            write(d, weight_file, str(b["weight"]))
        if b.get("leafWeight"):
            write(d, "blkio.leaf_weight", str(b["leafWeight"]))
        for dev in b.get("weightDevice") or []:
            if dev.get("weight"):
                write(d, weight_file, f"{dev['major']}:{dev['minor']} {dev['weight']}")
            if dev.get("leafWeight"):
                write(d, "blkio.leaf_weight_device", f"{dev['major']}:{dev['minor']} {dev['leafWeight']}")
        for key, name in _THROTTLE.items():
            for dev in b.get(key) or []:
                write(d, name, f"{dev['major']}:{dev['minor']} {dev['rate']}")

    def _devices(self, rules: list[dict[str, Any]]) -> None:
        """Bring devices.list to the state the rules describe; nothing is written if it already is."""
        from dockyard.runtime.cgroups.devices import state_from_list, state_from_rules  # create's only

        d = self._dir("devices")
        target = state_from_rules(rules)
        current = state_from_list(read(f"{d}/devices.list"))
        if current == target and (not target.default_allow or not target.exceptions):
            return  # default-allow cgroups do not list their exceptions, so only then is equality known
        # one opening of the exceptions' file for all of them: a rule per write(2)
        reset, each = ("devices.allow", "devices.deny") if target.default_allow else ("devices.deny", "devices.allow")
        write(d, reset, "a")
        if target.exceptions:
            write_each(d, each, [str(ex) for ex in target.exceptions])

    # statistics

    def stats(self) -> dict[str, Any]:
        """memory_stats, cpu_stats, pids_stats and blkio_stats in the shape of Docker's stats API."""
        from dockyard.runtime.cgroups import stats as host  # not on a container's start path
        out: dict[str, Any] = {}
        if "memory" in self.dirs:
            d = self.dirs["memory"]
            limit = read_int(f"{d}/memory.limit_in_bytes") or 0
            out["memory_stats"] = {
                "usage": read_int(f"{d}/memory.usage_in_bytes") or 0,
                "max_usage": read_int(f"{d}/memory.max_usage_in_bytes") or 0,
                "failcnt": read_int(f"{d}/memory.failcnt") or 0,
                "limit": min(limit, host.host_memory()) if limit else host.host_memory(),
                "stats": read_kv(f"{d}/memory.stat"),
            }
        cpu: dict[str, Any] = {"system_cpu_usage": host.system_cpu_usage(), "online_cpus": host.online_cpus()}
        if "cpuacct" in self.dirs:
            d = self.dirs["cpuacct"]
            ticks = read_kv(f"{d}/cpuacct.stat")
            cpu["cpu_usage"] = {
                "total_usage": read_int(f"{d}/cpuacct.usage") or 0,
                "percpu_usage": [int(x) for x in (read_or(f"{d}/cpuacct.usage_percpu") or "").split()],
                "usage_in_usermode": host.ticks_to_ns(ticks.get("user", 0)),
                "usage_in_kernelmode": host.ticks_to_ns(ticks.get("system", 0)),
            }
        if "cpu" in self.dirs:
            st = read_kv(f"{self.dirs['cpu']}/cpu.stat")
            cpu["throttling_data"] = {"periods": st.get("nr_periods", 0),
                                      "throttled_periods": st.get("nr_throttled", 0),
                                      "throttled_time": st.get("throttled_time", 0)}
        out["cpu_stats"] = cpu
        if "pids" in self.dirs:
            d = self.dirs["pids"]
            pids = {"current": read_int(f"{d}/pids.current") or 0}
            if limit := read_int(f"{d}/pids.max"):
                pids["limit"] = limit
            out["pids_stats"] = pids
        if "blkio" in self.dirs:
            d = self.dirs["blkio"]
            out["blkio_stats"] = {
                "io_service_bytes_recursive": _blkio_list(f"{d}/blkio.throttle.io_service_bytes_recursive"),
                "io_serviced_recursive": _blkio_list(f"{d}/blkio.throttle.io_serviced_recursive"),
            }
        return out


def _blkio_list(path: str) -> list[dict[str, object]]:
    from dockyard.runtime.cgroups import stats as host

    entries = []
    for line in (read_or(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            entries.append(host.blkio_entry(parts[0], parts[1].lower(), int(parts[2])))
    return entries


def _create_cpuset(mountpoint: str, path: str) -> None:
    """mkdir -p, copying cpuset.cpus/mems from the parent into each new level (they start empty)."""
    parent = mountpoint
    for part in os.path.relpath(path, mountpoint).split("/"):
        current = os.path.join(parent, part)
        mkdirs(current)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read(f"{current}/{name}"):
                write(current, name, read(f"{parent}/{name}"))
        parent = current
