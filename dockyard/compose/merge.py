"""Merging compose documents (several -f files, `extends`) by the Compose Specification's rules:
mappings merge deeply, most sequences append, some merge by a key (volumes by target, ports kept
unique, environment/labels by name), and command/entrypoint/healthcheck.test are replaced."""

from __future__ import annotations

from typing import Any


class Override:
    """A value tagged `!override` in an override file: it replaces the base's value unmerged."""

    def __init__(self, value: Any) -> None:
        self.value = value


RESET = object()  # a value tagged `!reset`: the key is removed from the merged result


def strip_tags(data: Any) -> Any:
    """The data with !reset keys dropped and !override values unwrapped."""
    if isinstance(data, Override):
        return strip_tags(data.value)
    if isinstance(data, dict):
        return {k: strip_tags(v) for k, v in data.items() if v is not RESET}
    if isinstance(data, list):
        return [strip_tags(v) for v in data if v is not RESET]
    return data

# service keys whose list value replaces the base's one
_REPLACE = {"command", "entrypoint"}
# keys given as a list of "K=V" or a mapping: merged by name
_KEYED = {"environment", "labels", "annotations", "sysctls", "extra_hosts", "args", "additional_contexts"}
# sequences merged by a field of their entries
_BY_FIELD = {"volumes": "target", "devices": "target", "secrets": "source", "configs": "source"}
# sequences whose entries stay unique
_UNIQUE = {"ports", "expose", "dns", "dns_search", "dns_opt", "cap_add", "cap_drop", "security_opt",
           "tmpfs", "env_file", "external_links", "links", "profiles", "group_add", "cache_from",
           "cache_to", "label_file", "volumes_from", "device_cgroup_rules"}


def to_mapping(value: Any, sep: str = "=") -> dict[str, Any]:
    """A "K=V" list (or a mapping) → a mapping; a bare "K" maps to None."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in value or []:
        key, found, val = str(item).partition(sep)
        out[key] = val if found else None
    return out


def hosts_mapping(value: Any) -> dict[str, Any]:
    """extra_hosts as a mapping: "host:ip" / "host=ip" entries or a mapping."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in value or []:
        sep = "=" if "=" in item else ":"
        host, _, ip = item.partition(sep)
        out[host] = ip
    return out


def _entry_key(entry: Any, field: str) -> Any:
    if isinstance(entry, dict):
        return entry.get(field)
    text = str(entry)
    if field == "target":
        parts = text.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    return text


def _merge_list(key: str, base: list[Any], over: list[Any]) -> list[Any]:
    if key in _BY_FIELD:
        merged = {_entry_key(e, _BY_FIELD[key]): e for e in base}
        for e in over:
            merged[_entry_key(e, _BY_FIELD[key])] = e
        return list(merged.values())
    if key in _UNIQUE:
        out = list(base)
        for e in over:
            if e not in out:
                out.append(e)
        return out
    return list(base) + list(over)


def merge_values(key: str, base: Any, over: Any, path: tuple[str, ...] = ()) -> Any:
    """Merge one key's value of an override onto the base's one."""
    if key in _REPLACE or (key == "test" and path[-1:] == ("healthcheck",)):
        return over
    if key in _KEYED:
        conv = hosts_mapping if key == "extra_hosts" else to_mapping
        return {**conv(base), **conv(over)}
    if key in ("depends_on", "networks") and (isinstance(base, list) or isinstance(over, list)):
        b = {n: None for n in base} if isinstance(base, list) else base
        o = {n: None for n in over} if isinstance(over, list) else over
        return merge_mappings(b or {}, o or {}, (*path, key))
    if isinstance(base, dict) and isinstance(over, dict):
        return merge_mappings(base, over, (*path, key))
    if isinstance(base, list) and isinstance(over, list):
        return _merge_list(key, base, over)
    if key == "build" and isinstance(base, (dict, str)) and isinstance(over, (dict, str)):
        b = base if isinstance(base, dict) else {"context": base}
        o = over if isinstance(over, dict) else {"context": over}
        return merge_mappings(b, o, (*path, key))
    return over


def merge_mappings(base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Deep merge of two mappings (the override wins)."""
    out = dict(base)
    for key, value in over.items():
        if value is RESET:
            out.pop(key, None)
        elif isinstance(value, Override):
            out[key] = value.value
        elif key in out and out[key] is not None and value is not None:
            out[key] = merge_values(key, out[key], value, path)
        else:
            out[key] = value
    return out


def merge_documents(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge a whole compose document onto another (services merge per service)."""
    out = dict(base)
    for key, value in over.items():
        if key == "services" and isinstance(out.get("services"), dict) and isinstance(value, dict):
            services = dict(out["services"])
            for name, svc in value.items():
                if svc is RESET:
                    services.pop(name, None)
                elif name in services and isinstance(services[name], dict) and isinstance(svc, dict):
                    services[name] = merge_mappings(services[name], svc, ("services", name))
                else:
                    services[name] = svc
            out["services"] = services
        elif isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merge_mappings(out[key], value, (key,))
        else:
            out[key] = value
    return out
