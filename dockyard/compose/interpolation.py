"""Variable interpolation in compose files: `$V`, `${V}`, `${V:-d}`, `${V-d}`, `${V:?e}`, `${V?e}`,
`${V:+r}`, `${V+r}`, `$$` → `$`; defaults may nest further expressions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dockyard.compose.errors import ComposeError

Lookup = Callable[[str], str | None]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Invalid(Exception):
    pass


def substitute(text: str, lookup: Lookup, where: str = "") -> str:
    """Interpolate one string; ComposeError for a malformed expression or a required variable."""
    try:
        out, _ = _scan(text, 0, lookup, None)
    except _Invalid:
        raise ComposeError(f"invalid interpolation format for {where}.\n"
                           f"You may need to escape any $ with another $.\n{text}") from None
    return out


def _scan(text: str, i: int, lookup: Lookup, stop: str | None) -> tuple[str, int]:
    """Expand from i until `stop` (a closing brace at depth 0) or the end; (text, index after)."""
    out: list[str] = []
    while i < len(text):
        c = text[i]
        if stop is not None and c == stop:
            return "".join(out), i + 1
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            value, i = _braced(text, i + 2, lookup)
            out.append(value)
        else:
            m = _NAME.match(text, i + 1)
            if not m:  # `$1`, `$ `, a trailing `$`: kept as written (compose-go's pattern skips them)
                out.append("$")
                i += 1
                continue
            out.append(lookup(m.group()) or "")
            i = m.end()
    if stop is not None:
        raise _Invalid
    return "".join(out), i


def _braced(text: str, i: int, lookup: Lookup) -> tuple[str, int]:
    m = _NAME.match(text, i)
    if not m:
        raise _Invalid
    name, i = m.group(), m.end()
    if text[i:i + 1] == "}":
        return lookup(name) or "", i + 1
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(op, i):
            break
    else:
        raise _Invalid
    arg, end = _scan(text, i + len(op), lookup, "}")
    value = lookup(name)
    unset_or_empty = value is None or (op.startswith(":") and value == "")
    if op.endswith("-"):
        return (arg if unset_or_empty else value or ""), end
    if op.endswith("+"):
        return ("" if unset_or_empty else arg), end
    if unset_or_empty:
        detail = f": {arg}" if arg else ""
        raise ComposeError(f"required variable {name} is missing a value{detail}")
    return value or "", end


def interpolate(data: Any, lookup: Lookup, path: tuple[Any, ...] = ()) -> Any:
    """Interpolate every string value (not keys) of a parsed document."""
    from dockyard.compose.merge import Override
    if isinstance(data, Override):
        return Override(interpolate(data.value, lookup, path))
    if isinstance(data, dict):
        return {k: interpolate(v, lookup, (*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, lookup, (*path, i)) for i, v in enumerate(data)]
    if isinstance(data, str) and "$" in data:
        return substitute(data, lookup, ".".join(str(p) for p in path))
    return data
