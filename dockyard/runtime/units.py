"""Parsing of size and count arguments (`update --memory 64m`)."""

from __future__ import annotations

from dockyard.runtime.errors import RuntimeFailure

_SUFFIXES = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes_or_int(value: str, name: str) -> int:
    """'64m' -> 67108864, '-1' -> -1, '100' -> 100; anything else is refused naming the flag."""
    text = value.strip().lower()
    if text.endswith("b") and len(text) > 1 and text[-2] in _SUFFIXES:
        text = text[:-1]
    mult = 1
    if text and text[-1] in _SUFFIXES:
        mult = _SUFFIXES[text[-1]]
        text = text[:-1]
    try:
        return int(text) * mult
    except ValueError:
        raise RuntimeFailure(f"invalid value for --{name.replace('_', '-')}: {value!r}") from None
