"""Image config updates of the metadata instructions (the image's `config` section)."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"
INLINE_CACHE_FIELD = "dockyard.build.cache.v0"  # --cache-to type=inline: the step configs of an image


def timestamp(source_date_epoch: int | None) -> str:
    """RFC 3339 creation time: SOURCE_DATE_EPOCH when given (reproducible builds), else now."""
    if source_date_epoch is not None:
        return datetime.fromtimestamp(source_date_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def env_list_set(env: list[str], name: str, value: str) -> list[str]:
    """Env with name set to value (replacing an existing entry in place)."""
    out = list(env)
    for i, entry in enumerate(out):
        if entry.partition("=")[0] == name:
            out[i] = f"{name}={value}"
            return out
    out.append(f"{name}={value}")
    return out


def env_dict(env: list[str]) -> dict[str, str]:
    """KEY=VALUE entries as a dict."""
    return dict(e.partition("=")[::2] for e in env)


def scratch_config(arch: str, variant: str) -> dict[str, Any]:
    """The config a `FROM scratch` stage starts from (BuildKit gives it a default PATH)."""
    doc: dict[str, Any] = {"architecture": arch, "os": "linux", "config": {"Env": [DEFAULT_PATH]},
                           "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
    if variant:
        doc["variant"] = variant
    return doc


def child_config(base: dict[str, Any]) -> dict[str, Any]:
    """A stage's starting config from its base image's: ONBUILD triggers are consumed, the
    env gets a PATH when it has none."""
    doc = copy.deepcopy(base)
    cfg = doc.setdefault("config", {})
    cfg.pop("OnBuild", None)
    env = cfg.get("Env") or []
    if not any(e.startswith("PATH=") for e in env):
        cfg["Env"] = [DEFAULT_PATH, *env]
    for key in ("container", "container_config", "docker_version", INLINE_CACHE_FIELD):
        doc.pop(key, None)
    return doc


def add_history(doc: dict[str, Any], created: str, created_by: str, empty: bool, buildkit: bool = True) -> None:
    """Append a history entry the way BuildKit writes them (with its comment) or the classic builder."""
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if buildkit:
        entry["comment"] = HISTORY_COMMENT
    if empty:
        entry["empty_layer"] = True
    doc.setdefault("history", []).append(entry)
    doc["created"] = created
