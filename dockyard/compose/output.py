"""`compose config` output: the resolved model as YAML (keys in Docker Compose's order) or JSON."""

from __future__ import annotations

import io
import json
import re
from typing import Any

_QUOTED = re.compile(r"((?:^|: |- ))'((?:[^'\n]|'')*)'$", re.M)
_TOP = ("name", "services", "networks", "volumes", "secrets", "configs")


def _ordered(model: dict[str, Any]) -> dict[str, Any]:
    out = {k: model[k] for k in _TOP if k in model}
    out["services"] = {n: _service(s) for n, s in sorted(model.get("services", {}).items())}
    for k in _TOP[2:]:
        if k in out:
            out[k] = dict(sorted(out[k].items()))
    return out


def _service(svc: dict[str, Any]) -> dict[str, Any]:
    s = dict(sorted(svc.items()))
    if "extra_hosts" in s:
        s["extra_hosts"] = [f"{h}={ip}" for h, ip in s["extra_hosts"].items()]
    if "environment" in s:
        s["environment"] = dict(sorted(s["environment"].items()))
    return s


def to_json(model: dict[str, Any]) -> str:
    return json.dumps(_ordered(model), indent=2) + "\n"


def to_yaml(model: dict[str, Any]) -> str:
    from ruamel.yaml import YAML
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(_ordered(model), buf)
    return _QUOTED.sub(_double, buf.getvalue())


def _double(m: re.Match[str]) -> str:
    """yaml.v3 (compose-go) quotes ambiguous scalars with double quotes; ruamel uses single."""
    text = m.group(2).replace("''", "'")
    if '"' in text or "\\" in text:
        return m.group(0)
    return f'{m.group(1)}"{text}"'

