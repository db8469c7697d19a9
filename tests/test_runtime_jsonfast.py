"""jsonfast.dumps_indented prints what json.dumps(indent=N) prints, without importing json."""

from __future__ import annotations

import json

import pytest

from dockyard.runtime import jsonfast

DOCUMENTS = [
    {}, [], "text", 0, -1.5, True, None,
    {"ociVersion": "1.0.2", "id": "c1", "pid": 42, "status": "running", "bundle": "/b", "owner": "",
     "annotations": {"a": "b", "unicode": "h\u00e9\u2603", "quote": "\"\\\n"}},
    {"nested": {"empty": {}, "list": [], "deep": [[1, 2], {"x": [None, False, 1e100]}]}, "tuple": (1, "2")},
    [{"a": 1}, [], [[]], {}],
]


@pytest.mark.parametrize("indent", [2, 4])
def test_matches_json(indent: int) -> None:
    for doc in DOCUMENTS:
        assert jsonfast.dumps_indented(doc, indent) == json.dumps(doc, indent=indent), doc


def test_only_str_keys() -> None:
    with pytest.raises(TypeError):
        jsonfast.dumps_indented({1: "x"})
