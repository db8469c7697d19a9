"""Conversions from OCI (cgroup v1 flavoured) resource values to cgroup v2 file values, as runc does."""

from __future__ import annotations

import math

from dockyard.runtime.cgroups.base import CgroupError


def cpu_shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] to cpu.weight [1, 10000]; 1024 (the default) maps to 100; 0 means unset."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    # quadratic in log2(shares) through (2, 1), (1024, 100) and (262144, 10000)
    return math.ceil(10 ** ((log * log + 125 * log) / 612.0 - 7.0 / 34.0))


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] to io.weight [1, 10000]; 0 means unset."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def memory_swap_to_v2(swap: int, memory: int) -> int:
    """OCI memory.swap (memory+swap) to memory.swap.max (swap alone); -1 is unlimited, 0 unset."""
    if memory == -1 and swap == 0:
        return -1  # unlimited memory without an explicit swap limit: unlimited swap too
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise CgroupError("cannot set a swap limit without a memory limit")
    if memory < 0:
        raise CgroupError(f"invalid memory limit {memory}")
    if swap < memory:
        raise CgroupError(f"memory+swap limit {swap} must be at least the memory limit {memory}")
    return swap - memory


def limit_str(value: int | None) -> str | None:
    """A v2 limit value: None (leave alone) for None or 0, "max" for -1, else the number."""
    if not value:
        return None
    return "max" if value == -1 else str(value)


def cpu_max(quota: int | None, period: int | None, current: str | None) -> str:
    """cpu.max content for OCI quota/period (None or 0 = not given; a negative quota = unlimited).

    A missing quota keeps the current one (from current cpu.max content); a missing period is left out,
    which makes the kernel keep its period.
    """
    if quota:
        value = "max" if quota < 0 else str(quota)
    else:
        value = (current or "max").split()[0]
    return f"{value} {period}" if period else value
