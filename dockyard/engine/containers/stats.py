"""docker stats: samples of a container's cgroup (v1, hybrid or v2, through the runtime's cgroup
code), its network interfaces and the host's CPU time, in Docker's stats JSON shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dockyard.engine.containers import spec
from dockyard.engine.containers.views import ZERO_TIME
from dockyard.runtime.cgroups import CgroupError, open_cgroup
from dockyard.shim.logs import rfc3339nano

if TYPE_CHECKING:
    from dockyard.engine.containers.service import ContainerService

INTERVAL = 1.0  # seconds between samples, as dockerd's collector
_NET_FIELDS = ("bytes", "packets", "errs", "drop")
_NET_KEYS = ("bytes", "packets", "errors", "dropped")
_EMPTY_CPU = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
              "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
               "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
               "sectors_recursive")


def network_stats(pid: int) -> dict[str, dict[str, int]]:
    """Counters of each interface but lo in the network namespace of pid (/proc/<pid>/net/dev)."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, counters = line.partition(":")
        name = name.strip()
        values = [int(v) for v in counters.split()]
        if name == "lo" or len(values) < 12:
            continue
        rx, tx = values[0:4], values[8:12]
        out[name] = {**{f"rx_{k}": v for k, v in zip(_NET_KEYS, rx, strict=True)},
                     **{f"tx_{k}": v for k, v in zip(_NET_KEYS, tx, strict=True)}}
    return out


def _empty(record: dict[str, Any]) -> dict[str, Any]:
    """The sample of a container that does not run (as dockerd: zeroes, zero times)."""
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": dict.fromkeys(_BLKIO_KEYS),
            "num_procs": 0, "storage_stats": {}, "cpu_stats": _EMPTY_CPU, "precpu_stats": _EMPTY_CPU,
            "memory_stats": {}, "name": record["Name"], "id": record["ID"]}


def sample(record: dict[str, Any]) -> dict[str, Any]:
    """One stats document for the container's current state (precpu_stats left empty)."""
    state = record["State"]
    if not state["Running"] or state["Restarting"] or not state["Pid"]:
        return _empty(record)
    try:
        cgroup_stats = open_cgroup(spec.cgroups_path(record["ID"], record["HostConfig"]), record["ID"],
                                   state["Pid"]).stats()
    except (CgroupError, OSError):
        return _empty(record)
    out = {"read": rfc3339nano(), "preread": ZERO_TIME, "pids_stats": {}, "num_procs": 0, "storage_stats": {},
           "memory_stats": {}, **cgroup_stats, "precpu_stats": _EMPTY_CPU}
    # as dockerd: on cgroup v1 every list is there (empty ones too); on v2 an empty one is null
    blkio = out.get("blkio_stats") or {}
    complete = all(k in blkio for k in _BLKIO_KEYS)
    out["blkio_stats"] = {k: blkio.get(k) if complete else blkio.get(k) or None for k in _BLKIO_KEYS}
    if networks := network_stats(state["Pid"]):
        out["networks"] = networks
    out.update(name=record["Name"], id=record["ID"])
    return out


def samples(service: ContainerService, ref: str, stream: bool = True, one_shot: bool = False
            ) -> Iterator[dict[str, Any]]:
    """GET /containers/{id}/stats: one_shot → one sample at once; stream=False → one sample whose
    precpu_stats come from a sample INTERVAL earlier (CPU % needs two); else a sample every
    INTERVAL, each with the previous one's CPU figures, until the consumer stops. A container
    that does not run gets its empty sample at once when not streaming."""
    cid = service.store.resolve(ref)
    previous: dict[str, Any] | None = None
    while True:
        current = sample(service.store.get(cid))
        if previous is not None:
            current["precpu_stats"], current["preread"] = previous["cpu_stats"], previous["read"]
        if one_shot or previous is not None or stream or current["read"] == ZERO_TIME:
            yield current
            if one_shot or not stream:
                return
        previous = current
        time.sleep(INTERVAL)
