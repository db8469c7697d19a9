"""Validation against the Compose Specification's JSON schema (a copy ships beside this module);
errors name the file, the line and the key path, e.g.
`validating /p/compose.yaml: line 4: services.web additional properties 'imag' not allowed`.

A valid file is recognised by `conforms`, a small checker of the draft-07 keywords the schema
uses; only a file it rejects pays for importing jsonschema (~90 ms), which then finds and
words the error."""

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
def _schema() -> dict[str, Any]:
    with open(os.path.join(os.path.dirname(__file__), "compose-spec.schema.json"), encoding="utf-8") as f:
        return json.load(f)


@functools.cache
def _validator() -> Any:
    import jsonschema
    return jsonschema.Draft7Validator(_schema())


class _Unsure(Exception):
    """A keyword `conforms` does not implement: let jsonschema decide."""


_IGNORED = frozenset(("description", "deprecated", "default", "title", "$schema", "$id", "definitions",
                      "format", "properties", "patternProperties", "additionalProperties"))
_PY_TYPES: dict[str, Any] = {"string": str, "object": dict, "array": list, "boolean": bool,
                             "null": type(None)}


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return name == "number" or isinstance(value, int) or value.is_integer()
    return isinstance(value, _PY_TYPES[name])


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def conforms(value: Any, node: dict[str, Any] | bool | None = None) -> bool:
    """True when value is valid against the schema node (the Compose schema by default).
    Never True for a value jsonschema's Draft7Validator rejects: an unknown keyword raises
    _Unsure, which `validate` treats as a possible error."""
    root = _schema()
    node = root if node is None else node
    if isinstance(node, bool):
        return node
    if "$ref" in node:  # draft-07: siblings of $ref are ignored
        ref = node["$ref"]
        if not ref.startswith("#/definitions/"):
            raise _Unsure(ref)
        return conforms(value, root["definitions"][ref[len("#/definitions/"):]])
    for key, want in node.items():
        if key in _IGNORED:
            continue
        if key == "type":
            if not any(_is_type(value, t) for t in (want if isinstance(want, list) else [want])):
                return False
        elif key == "enum":
            if not any(_same(value, w) for w in want):
                return False
        elif key == "oneOf":
            if sum(conforms(value, sub) for sub in want) != 1:
                return False
        elif key == "anyOf":
            if not any(conforms(value, sub) for sub in want):
                return False
        elif key == "allOf":
            if not all(conforms(value, sub) for sub in want):
                return False
        elif key == "required":
            if isinstance(value, dict) and any(k not in value for k in want):
                return False
        elif key == "items":
            if not isinstance(want, (dict, bool)):
                raise _Unsure("items as a list")
            if isinstance(value, list) and not all(conforms(v, want) for v in value):
                return False
        elif key == "uniqueItems":
            if want and isinstance(value, list) and any(
                    _same(a, b) for i, a in enumerate(value) for b in value[i + 1:]):
                return False
        elif key in ("minimum", "maximum"):
            if _is_type(value, "number") and (value < want if key == "minimum" else value > want):
                return False
        elif key == "pattern":
            if isinstance(value, str) and not re.search(want, value):
                return False
        else:
            raise _Unsure(key)
    return not isinstance(value, dict) or _properties_conform(value, node)


def _properties_conform(value: dict[str, Any], node: dict[str, Any]) -> bool:
    props = node.get("properties") or {}
    patterns = node.get("patternProperties") or {}
    extra = node.get("additionalProperties", True)
    for k, v in value.items():
        matched = k in props
        if matched and not conforms(v, props[k]):
            return False
        for pattern, sub in patterns.items():
            if re.search(pattern, k):
                matched = True
                if not conforms(v, sub):
                    return False
        if not matched and not conforms(v, extra):
            return False
    return True


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
    try:
        if conforms(data):
            return
    except _Unsure:
        pass
    errors = [_pick(e) for e in _validator().iter_errors(data)]
    if not errors:
        return
    error = max(errors, key=lambda e: len(e.absolute_path))
    path, message = _describe(error)
    line = source.line(tuple(path))
    where = f"line {line}: " if line else ""
    raise ComposeError(f"validating {source.filename}: {where}{message}")
