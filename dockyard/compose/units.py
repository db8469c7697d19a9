"""Go durations (`1m30s`, `500ms`) and byte sizes (`512m`, `1gb`) as compose files write them."""

from __future__ import annotations

import re

from dockyard.compose.errors import InvalidValue

_DUR = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_SIZE = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def duration_ns(value: str | int | float, key: str = "") -> int:
    """A Go duration string (or a number of seconds) → nanoseconds."""
    if isinstance(value, (int, float)):
        return int(value * 10**9)
    text = value.strip()
    parts = re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text.lstrip("+"):
        raise InvalidValue(key, f"time: invalid duration {value!r}")
    return int(sum(float(n) * _DUR[u] for n, u in parts))


def format_duration(ns: int) -> str:
    """Nanoseconds → Go's Duration.String() (`1m30s`, `500ms`, `0s`)."""
    if ns == 0:
        return "0s"
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = f"{rest / 10**9:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def size_bytes(value: str | int, key: str = "") -> int:
    """`512m` / `1gb` / 1024 → bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", str(value).strip().lower())
    if not m:
        raise InvalidValue(key, f"invalid size: {value!r}")
    return int(float(m.group(1)) * _SIZE[m.group(2)])
