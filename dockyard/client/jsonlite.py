"""JSON through CPython's `_json` accelerator without importing the `json` package, which pulls
in `re` and `enum` (~6 ms of the CLI's start-up on a loaded 2-vCPU VM). Same output as
json.dumps/json.loads for the values an API client exchanges; errors are ValueErrors."""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """The attributes `_json.make_scanner` reads (json.JSONDecoder's defaults)."""

    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    strict = True


_scan = _json.make_scanner(_Context())
_WHITESPACE = " \t\n\r"


def _unencodable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any, compact: bool = False) -> str:
    """json.dumps(value) (separators (",", ":") when compact)."""
    encode = _json.make_encoder({}, _unencodable, _json.encode_basestring_ascii, None,
                                ":" if compact else ": ", "," if compact else ", ", False, False, True)
    return "".join(encode(value, 0))


def raw_decode(text: str, start: int = 0) -> tuple[Any, int]:
    """The JSON value starting at text[start] and the index after it (no whitespace skipped)."""
    try:
        return _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"Expecting value: char {e.value}") from None


def loads(data: str | bytes) -> Any:
    """json.loads for UTF-8 text or bytes."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    text = text.strip(_WHITESPACE).removeprefix("\ufeff")
    value, end = raw_decode(text)
    if end != len(text):
        raise ValueError(f"Extra data: char {end}")
    return value
