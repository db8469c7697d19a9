"""HostConfig resource settings -> OCI linux.resources, process.rlimits and oomScoreAdj."""

from __future__ import annotations

from typing import Any

from dockyard.engine.containers import devices
from dockyard.engine.containers.errors import InvalidParameter

CPU_PERIOD = 100_000  # µs, what --cpus uses
_RLIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
            "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


def validate(hc: dict[str, Any]) -> None:
    """Docker's create-time checks on resource values (devices included)."""
    memory = hc.get("Memory") or 0
    if memory and memory < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    swap = hc.get("MemorySwap") or 0
    if memory and swap > 0 and swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage for details")
    if swap and swap != -1 and not memory:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, "
                               "see usage for details")
    if hc.get("NanoCpus") and (hc.get("CpuQuota") or hc.get("CpuPeriod")):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    for ulimit in hc.get("Ulimits") or []:
        if ulimit.get("Name") not in _RLIMITS:
            raise InvalidParameter(f"invalid ulimit type: {ulimit.get('Name')}")
    devices.validate(hc)


UPDATABLE = ("CpuShares", "Memory", "NanoCpus", "BlkioWeight", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
             "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "MemoryReservation", "MemorySwap",
             "MemorySwappiness", "PidsLimit", "OomKillDisable")


def updated(hc: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """POST /containers/{id}/update: hc with the body's resource fields (zero/absent: unchanged)
    and restart policy, checked as Docker checks them."""
    out = dict(hc)
    for key in UPDATABLE:
        if body.get(key):
            out[key] = body[key]
    if body.get("Memory") and not body.get("MemorySwap") and (hc.get("MemorySwap") or 0) > 0 \
            and body["Memory"] > hc["MemorySwap"]:
        raise InvalidParameter("Memory limit should be smaller than already set memoryswap limit, update the "
                               "memoryswap at the same time")
    if body.get("NanoCpus") and (hc.get("CpuQuota") or hc.get("CpuPeriod")) and not body.get("CpuQuota"):
        out["CpuQuota"], out["CpuPeriod"] = 0, 0
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        if hc.get("AutoRemove") and policy["Name"] != "no":
            raise InvalidParameter("Restart policy cannot be updated because AutoRemove is enabled for the container")
        out["RestartPolicy"] = {"Name": policy["Name"], "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
    validate(out)
    return out


def linux_resources(hc: dict[str, Any]) -> dict[str, Any]:
    """linux.resources without devices."""
    res: dict[str, Any] = {}
    memory = {}
    if hc.get("Memory"):
        memory["limit"] = hc["Memory"]
        swap = hc.get("MemorySwap") or 0
        memory["swap"] = swap if swap else hc["Memory"] * 2  # Docker's default: as much swap as memory
    if hc.get("MemoryReservation"):
        memory["reservation"] = hc["MemoryReservation"]
    if hc.get("MemorySwappiness") is not None and hc["MemorySwappiness"] >= 0:
        memory["swappiness"] = hc["MemorySwappiness"]
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = hc["CpuShares"]
    if hc.get("NanoCpus"):
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = hc["NanoCpus"] * CPU_PERIOD // 1_000_000_000
    if hc.get("CpuQuota"):
        cpu["quota"] = hc["CpuQuota"]
    if hc.get("CpuPeriod"):
        cpu["period"] = hc["CpuPeriod"]
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    if hc.get("PidsLimit") and hc["PidsLimit"] > 0:
        res["pids"] = {"limit": hc["PidsLimit"]}
    if hc.get("BlkioWeight"):
        res["blockIO"] = {"weight": hc["BlkioWeight"]}
    return res


def rlimits(hc: dict[str, Any]) -> list[dict[str, Any]]:
    """--ulimit entries as process.rlimits (none given: inherited from the shim, as with dockerd)."""
    return [{"type": f"RLIMIT_{u['Name'].upper()}", "soft": u["Soft"], "hard": u["Hard"]}
            for u in hc.get("Ulimits") or []]
