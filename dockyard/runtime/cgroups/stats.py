"""Host-wide figures that Docker's stats API reports next to a container's cgroup usage."""

from __future__ import annotations

import os


def system_cpu_usage() -> int:
    """Total host CPU time in nanoseconds (sum of the "cpu" line of /proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def online_cpus() -> int:
    """Number of CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def host_memory() -> int:
    """MemTotal in bytes, reported as the limit of containers without one (as Docker does)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def ticks_to_ns(ticks: int) -> int:
    """USER_HZ clock ticks (cpuacct.stat) to nanoseconds."""
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def blkio_entry(major_minor: str, op: str, value: int) -> dict[str, object]:
    """One entry of blkio_stats.io_service_bytes_recursive / io_serviced_recursive."""
    major, _, minor = major_minor.partition(":")
    return {"major": int(major), "minor": int(minor), "op": op, "value": value}
