"""Validation against the Compose Specification's JSON schema (a copy ships beside this module);
errors name the file, the line and the key path, e.g.
`validating /p/compose.yaml: line 4: services.web additional properties 'imag' not allowed`."""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any

from dockyard.compose.errors import ComposeError
from dockyard.compose.yamlsrc import Source

_TYPES = {"string": "a string", "number": "a number", "integer": "an integer", "boolean": "a boolean",
          "object": "a mapping", "array": "a list", "null": "null"}


@functools.cache
def _validator() -> Any:
    import jsonschema
    with open(os.path.join(os.path.dirname(__file__), "compose-spec.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    return jsonschema.Draft7Validator(schema)


def _key(path: list[Any]) -> str:
    return ".".join(str(p) for p in path)


def _describe(error: Any) -> tuple[list[Any], str]:
    """(key path, message) in Docker Compose's wording."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in error.instance if k not in allowed
                 and not any(re.search(p, k) for p in patterns)]
        where = _key(path) or "(root)"
        return path + extra[:1], f"{where} additional properties {', '.join(repr(k) for k in extra)} not allowed"
    if error.validator == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return path, f"{_key(path)} must be {' or '.join(_TYPES.get(t, t) for t in types)}"
    if error.validator == "enum":
        return path, f"{_key(path)} must be one of the following: {', '.join(map(repr, error.validator_value))}"
    if error.validator == "required":
        return path, f"{_key(path) or '(root)'} {error.message}"
    if error.validator in ("oneOf", "anyOf"):
        types = []
        for sub in error.validator_value:
            sub_types = sub.get("type", "object" if "$ref" in sub else None)
            for t in sub_types if isinstance(sub_types, list) else [sub_types]:
                if t and _TYPES.get(t, t) not in types:
                    types.append(_TYPES.get(t, t))
        return path, f"{_key(path)} must be {' or '.join(types) if types else 'valid'}"
    if error.validator == "pattern" and isinstance(path[-1:][0] if path else None, str):
        return path, f"{_key(path)} does not match pattern {error.validator_value!r}"
    return path, f"{_key(path)} {error.message}"


def _pick(error: Any) -> Any:
    """The most telling error: inside oneOf/anyOf, the branches whose type matched."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return error
    branches: dict[Any, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    depth = len(error.absolute_path)
    matched = [errs for errs in branches.values()
               if not (len(errs) == 1 and errs[0].validator == "type" and len(errs[0].absolute_path) == depth)]
    if not matched:
        return error
    return max((_pick(e) for errs in matched for e in errs), key=lambda e: len(e.absolute_path))


def validate(source: Source, data: dict[str, Any]) -> None:
    """Raise ComposeError for the first schema violation of one file's (interpolated) data."""
    errors = [_pick(e) for e in _validator().iter_errors(data)]
    if not errors:
        return
    error = max(errors, key=lambda e: len(e.absolute_path))
    path, message = _describe(error)
    line = source.line(tuple(path))
    where = f"line {line}: " if line else ""
    raise ComposeError(f"validating {source.filename}: {where}{message}")
