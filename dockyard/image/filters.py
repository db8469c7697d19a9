"""Docker's image filters (GET /images/json, POST /images/prune): argument shapes, validation,
label and reference matching, and `until` timestamps."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime

from dockyard.image.errors import InvalidFilter

Filters = dict[str, list[str]]

LIST_FILTERS = frozenset({"dangling", "label", "before", "since", "reference", "until"})
PRUNE_FILTERS = frozenset({"dangling", "label", "label!", "until"})

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def normalize(filters: Mapping[str, object] | None, accepted: frozenset[str]) -> Filters:
    """Filters as {name: [values]} from either API shape ({"label": ["a"]} or {"label": {"a": true}});
    InvalidFilter for a name outside accepted."""
    out: Filters = {}
    for name, values in (filters or {}).items():
        if name not in accepted:
            raise InvalidFilter(name)
        if isinstance(values, str):
            out[name] = [values]
        elif isinstance(values, Mapping):
            out[name] = [v for v, on in values.items() if on]
        else:
            out[name] = [str(v) for v in values]  # type: ignore[union-attr]
    return out


def get_bool(filters: Filters, name: str, default: bool) -> bool:
    """A boolean filter ("true"/"1"/"false"/"0", any case); InvalidFilter for anything else."""
    values = filters.get(name)
    if not values:
        return default
    if all(v.lower() in ("true", "1") for v in values):
        return True
    if all(v.lower() in ("false", "0") for v in values):
        return False
    raise InvalidFilter(name, values)


def match(pattern: str, text: str) -> bool:
    """Docker's filters Match: equal, or a regular expression search (a pattern that does not
    compile only matches exactly)."""
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def labels_match(wanted: list[str], labels: Mapping[str, str] | None) -> bool:
    """Every "key" is present and every "key=value" equal (Docker's MatchKVList)."""
    labels = labels or {}
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def labels_pass(filters: Filters, labels: Mapping[str, str] | None) -> bool:
    """The "label" filters all match and no "label!" filter does."""
    if "label" in filters and not labels_match(filters["label"], labels):
        return False
    return not any(labels_match([item], labels) for item in filters.get("label!", []))


def _path_pattern(pattern: str) -> re.Pattern[str]:
    """Go's path.Match as a regex: * and ? stop at "/", [...] classes with ^ for negation."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise InvalidFilter("reference", [pattern])
            body = pattern[i + 1:end]
            out.append("[" + ("^" + re.escape(body[1:]) if body.startswith("^") else re.escape(body))
                       .replace("\\-", "-") + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def reference_matches(pattern: str, familiar: str, familiar_name: str) -> bool:
    """Docker's FamiliarMatch: the pattern matches the whole familiar reference or its name."""
    regex = _path_pattern(pattern)
    return bool(regex.fullmatch(familiar) or regex.fullmatch(familiar_name))


def parse_duration(value: str) -> float | None:
    """Seconds of a Go duration ("1h30m", "90s", "-2h"), or None when it is not one."""
    sign, rest = (-1.0, value[1:]) if value.startswith("-") else (1.0, value.removeprefix("+"))
    if not rest:
        return None
    pos, total = 0, 0.0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def timestamp(value: str, now: float | None = None) -> float:
    """Seconds since the epoch for an `until` value: a Go duration before now, Unix seconds, or
    an RFC 3339 date/time (local time when no zone is given); InvalidFilter otherwise."""
    now = time.time() if now is None else now
    duration = parse_duration(value)
    if duration is not None:
        return now - duration
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise InvalidFilter("until", [value]) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.now().astimezone().tzinfo)
    return parsed.timestamp()
