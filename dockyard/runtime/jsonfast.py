"""JSON through CPython's C accelerator without importing the json package.

`import json` pulls in re and enum, which costs more start-up time than a container start
should take; the runtime reads config.json and writes state on every command. The C scanner
and encoder are the same ones json uses, so documents parse and print identically (errors
fall back to json itself for its precise messages)."""

from __future__ import annotations

import _json

_WHITESPACE = " \t\n\r"


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity
    memo: dict = {}


_scan = _json.make_scanner(_Context())


def _no_default(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _no_default, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, True)


def loads(text: str | bytes) -> object:
    """Parse one JSON document (raises ValueError, with json's message, when it is not one)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig" if text.startswith(b"\xef\xbb\xbf") else "utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        end = -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json

        return json.loads(text)  # raises json.JSONDecodeError naming line and column
    return value


_encode_compact = _json.make_encoder(None, _no_default, _json.encode_basestring_ascii, None, ":", ",",
                                     False, False, True)


def dumps(obj: object, compact: bool = False) -> str:
    """JSON with json.dumps' default separators, or with none (compact)."""
    return "".join((_encode_compact if compact else _encode)(obj, 0))


def dumps_indented(obj: object, indent: int = 2, _level: int = 0) -> str:
    """json.dumps(obj, indent=indent) (which runs json's Python encoder, and imports it): objects
    and arrays one member a line, everything else through the C encoder. Keys must be str."""
    if isinstance(obj, dict) and obj:
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("dumps_indented: object keys must be str")
        pad = "\n" + " " * (indent * (_level + 1))
        members = (f"{pad}{dumps(k)}: {dumps_indented(v, indent, _level + 1)}" for k, v in obj.items())
    elif isinstance(obj, (list, tuple)) and obj:
        pad = "\n" + " " * (indent * (_level + 1))
        members = (f"{pad}{dumps_indented(v, indent, _level + 1)}" for v in obj)
    else:
        return dumps(obj)
    opening, closing = ("{", "}") if isinstance(obj, dict) else ("[", "]")
    return opening + ",".join(members) + "\n" + " " * (indent * _level) + closing


def raw_decode(text: str, start: int = 0) -> tuple[object, int]:
    """The JSON value starting at text[start] (no whitespace skipped) and the index after it;
    ValueError when there is none (e.g. the value is cut short)."""
    try:
        return _scan(text, start)
    except StopIteration:
        raise ValueError(f"no JSON value at index {start}") from None
