"""Human-readable sizes and durations exactly as Docker's go-units prints them (shared by the
CLIs: pure functions, no imports)."""

from __future__ import annotations

_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: 2131000 → '2.13MB' (decimal units)."""
    i = 0
    while size >= 1000 and i < len(_SIZE_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{_SIZE_UNITS[i]}"


def bytes_size(size: float) -> str:
    """go-units BytesSize: 679936 → '664KiB' (binary units, 4 significant digits)."""
    i = 0
    while size >= 1024 and i < len(_BINARY_UNITS) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{_BINARY_UNITS[i]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: 'About a minute', '3 hours', '6 months'."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{s // 3600 // 24 // 365} years"
