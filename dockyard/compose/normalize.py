"""Canonical forms of a merged compose model, as `docker compose config` prints them: long
syntax for ports/volumes/depends_on/env_file, mappings for environment/labels/networks, command
lists, absolute paths, typed values, default project network and resource names."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import Any

from dockyard.compose import units
from dockyard.compose.errors import InvalidValue
from dockyard.compose.merge import Override, hosts_mapping, strip_tags, to_mapping

_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0", ""}
_BOOL_KEYS = {"read_only", "init", "tty", "stdin_open", "privileged", "oom_kill_disable", "external",
              "attachable", "internal", "enable_ipv6", "disable", "required", "nocopy",
              "create_host_path", "no_cache", "pull", "initial_sync"}
_INT_KEYS = {"scale", "replicas", "retries", "cpu_shares", "pids_limit", "oom_score_adj"}


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise InvalidValue(key, f"invalid boolean: {value!r}")


def as_int(value: Any, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidValue(key, f"invalid integer: {value!r}") from None


def _cast(data: Any, path: tuple[str, ...] = ()) -> Any:
    """Interpolated strings back to booleans and integers where the spec wants them."""
    if isinstance(data, dict):
        out = {}
        free = path[-1:] in (("environment",), ("labels",), ("args",), ("sysctls",), ("driver_opts",))
        for k, v in data.items():
            key = ".".join((*path, str(k)))
            boolean = k in _BOOL_KEYS or (k == "restart" and path[-2:-1] == ("depends_on",))
            if boolean and isinstance(v, str) and not free:
                v = as_bool(v, key)
            elif k in _INT_KEYS and isinstance(v, str) and not free:
                v = as_int(v, key)
            out[k] = _cast(v, (*path, str(k)))
        return out
    if isinstance(data, list):
        return [_cast(v, path) for v in data]
    return data


def scalar_text(value: Any) -> str:
    """A YAML scalar as the string compose-go makes of it (`true`, not `True`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def split_command(value: Any) -> list[str] | None:
    """A command given as a string is split like a shell would (compose-go's shellwords)."""
    if value is None or isinstance(value, list):
        return value
    return shlex.split(value)


def _port_range(text: str) -> list[str]:
    if "-" in text:
        lo, hi = text.split("-", 1)
        return [str(p) for p in range(int(lo), int(hi) + 1)]
    return [text]


def ports(entries: list[Any], key: str) -> list[dict[str, Any]]:
    """Short port syntax `[ip:][host:]container[/proto]` (ranges too) → long entries."""
    out: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        where = f"{key}.{index}"
        if isinstance(entry, dict):
            item = {"mode": entry.get("mode", "ingress"), **entry}
            item["target"] = as_int(item["target"], f"{where}.target")
            if "published" in item:
                item["published"] = str(item["published"])
            item.setdefault("protocol", "tcp")
            out.append(item)
            continue
        text, _, proto = str(entry).partition("/")
        if text.startswith("[") or text.count(":") > 2:  # IPv6 host address
            ip, _, rest = text.rpartition("]:") if "]" in text else ("", "", text)
            ip = ip.lstrip("[")
            host, _, target = rest.rpartition(":")
        else:
            parts = text.split(":")
            target = parts[-1]
            host = parts[-2] if len(parts) > 1 else ""
            ip = parts[0] if len(parts) > 2 else ""
        try:
            targets = _port_range(target)
            hosts = _port_range(host) if host else []
        except ValueError:
            raise InvalidValue(where, f"invalid port {entry!r}") from None
        if hosts and len(hosts) != len(targets) and len(hosts) != 1:
            hosts = [host] * len(targets)
        for i, t in enumerate(targets):
            item = {"mode": "ingress"}
            if ip:
                item["host_ip"] = ip
            item["target"] = as_int(t, where)
            if hosts:
                item["published"] = hosts[i] if len(hosts) == len(targets) else host
            item["protocol"] = proto or "tcp"
            out.append(item)
    return out


def _abs(path: str, base: str) -> str:
    path = os.path.expanduser(path)
    return os.path.normpath(os.path.join(base, path))


def _local_context(source: Any) -> bool:
    """An additional context that is a directory (not an image, a URL or `service:NAME`)."""
    return isinstance(source, str) and bool(source) and "://" not in source and not source.startswith(
        ("service:", "git@"))


def is_bind_source(source: str) -> bool:
    return source.startswith((".", "/", "~")) or (len(source) > 1 and source[1] == ":")


def volume(entry: Any, key: str) -> dict[str, Any]:
    """Short volume syntax `[source:]target[:mode]` → a long entry."""
    if isinstance(entry, dict):
        item = dict(entry)
        if item.get("type") == "bind":
            item.setdefault("bind", {"create_host_path": True})
        elif item.get("type") == "volume":
            item.setdefault("volume", {})
        return item
    parts = str(entry).split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0], "volume": {}}
    if len(parts) > 3:
        raise InvalidValue(key, f"invalid spec: {entry}: too many colons")
    source, target = parts[0], parts[1]
    modes = parts[2].split(",") if len(parts) == 3 else []
    if is_bind_source(source):
        item: dict[str, Any] = {"type": "bind", "source": source, "target": target}
    else:
        item = {"type": "volume", "source": source, "target": target}
    if "ro" in modes:
        item["read_only"] = True
    if item["type"] == "bind":
        bind: dict[str, Any] = {"create_host_path": True}
        if "z" in modes or "Z" in modes:
            bind["selinux"] = "z" if "z" in modes else "Z"
        for p in ("rprivate", "private", "rshared", "shared", "rslave", "slave"):
            if p in modes:
                bind["propagation"] = p
        item["bind"] = bind
    else:
        item["volume"] = {"nocopy": True} if "nocopy" in modes else {}
    return item


def _get(svc: dict[str, Any], key: str) -> Any:
    value = svc.get(key)
    return value.value if isinstance(value, Override) else value


def _set(svc: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(svc.get(key), Override):
        svc[key].value = value
    else:
        svc[key] = value


def resolve_paths(doc: dict[str, Any], base: str) -> dict[str, Any]:
    """Make the relative host paths of one file's document absolute against base (its directory,
    or the project directory for -f files); values tagged !override are resolved inside."""
    for svc in (doc.get("services") or {}).values():
        if not isinstance(svc, dict):
            continue
        build = _get(svc, "build")
        if isinstance(build, str):
            build = {"context": build}
            _set(svc, "build", build)
        if isinstance(build, dict):
            ctx = build.get("context", ".")
            if "://" not in ctx and not ctx.startswith("git@"):
                build["context"] = _abs(ctx, base)
            extra = build.get("additional_contexts")
            if isinstance(extra, (dict, list)):
                build["additional_contexts"] = {
                    k: _abs(v, base) if _local_context(v) else v for k, v in to_mapping(extra).items()}
        env_files = _get(svc, "env_file")
        if env_files is not None:
            env_files = env_files if isinstance(env_files, list) else [env_files]
            _set(svc, "env_file", [{"path": _abs(e, base), "required": True} if isinstance(e, str)
                                   else {**e, "path": _abs(e["path"], base)} for e in env_files])
        vols = _get(svc, "volumes")
        if isinstance(vols, list):
            new = []
            for v in vols:
                if isinstance(v, str):
                    source, sep, rest = v.partition(":")
                    if sep and source.startswith((".", "~")):
                        v = _abs(source, base) + sep + rest
                elif isinstance(v, dict) and v.get("type") == "bind" and v.get("source"):
                    v = {**v, "source": _abs(v["source"], base)}
                new.append(v)
            _set(svc, "volumes", new)
        ext = _get(svc, "extends")
        if isinstance(ext, dict) and ext.get("file"):
            ext["file"] = _abs(ext["file"], base)
        develop = _get(svc, "develop")
        if isinstance(develop, dict):
            for rule in develop.get("watch") or []:
                if isinstance(rule, dict) and "path" in rule:
                    rule["path"] = _abs(rule["path"], base)
    for kind in ("secrets", "configs"):
        for item in (doc.get(kind) or {}).values():
            if isinstance(item, dict) and item.get("file"):
                item["file"] = _abs(item["file"], base)
    return doc


def _healthcheck(hc: dict[str, Any], key: str) -> dict[str, Any]:
    out = dict(hc)
    test = out.get("test")
    if isinstance(test, str):
        out["test"] = ["CMD-SHELL", test]
    for k in ("interval", "timeout", "start_period", "start_interval"):
        if k in out:
            out[k] = units.format_duration(units.duration_ns(out[k], f"{key}.{k}"))
    return out


def _sizes(s: dict[str, Any], key: str) -> None:
    """Byte sizes (`512m`) as compose-go's UnitBytes print them (a string of bytes); CPUs as numbers."""
    places = [(s, k, k) for k in ("mem_limit", "memswap_limit", "mem_reservation", "shm_size") if k in s]
    resources = (s.get("deploy") or {}).get("resources") or {}
    places += [(resources[part], "memory", f"deploy.resources.{part}.memory")
               for part in ("limits", "reservations") if "memory" in (resources.get(part) or {})]
    for holder, k, path in places:
        if holder[k] not in (None, -1, "-1"):
            holder[k] = str(units.size_bytes(holder[k], f"{key}.{path}"))
    cpus = [(s, "cpus", "cpus")] if "cpus" in s else []
    cpus += [(resources[part], "cpus", f"deploy.resources.{part}.cpus")
             for part in ("limits", "reservations") if "cpus" in (resources.get(part) or {})]
    for holder, k, path in cpus:
        try:
            holder[k] = float(holder[k])
        except (TypeError, ValueError):
            raise InvalidValue(f"{key}.{path}", f"invalid number of CPUs: {holder[k]!r}") from None


def check(name: str, svc: dict[str, Any]) -> None:
    """InvalidValue (with its key path) for a value one file gives a service that the model
    cannot use: run before merging, so that the loader can name the file and line."""
    service(name, {k: v for k, v in strip_tags(svc).items() if k != "env_file"}, lambda _: None, "/")


def service(name: str, svc: dict[str, Any], lookup: Callable[[str], str | None], project_dir: str,
            defaults: bool = True) -> dict[str, Any]:
    """One service's canonical form (env files are read here); with defaults, the implicit build
    context and Dockerfile and the default network added."""
    from dockyard.compose import dotenv
    key = f"services.{name}"
    s = _cast(svc, ("services", name))
    _sizes(s, key)
    if "build" in s:
        build = s["build"] if isinstance(s["build"], dict) else {"context": s["build"]}
        if defaults:
            build = {"context": build.get("context", project_dir), **build}
            if "dockerfile_inline" not in build:
                build.setdefault("dockerfile", "Dockerfile")
        if "args" in build:
            build["args"] = {k: (v if v is not None else lookup(k)) for k, v in to_mapping(build["args"]).items()}
        if "secrets" in build:
            build["secrets"] = [{"source": e} if isinstance(e, str) else e for e in build["secrets"]]
        if "extra_hosts" in build:
            build["extra_hosts"] = hosts_mapping(build["extra_hosts"])
        s["build"] = build
    for k in ("command", "entrypoint"):
        if k in s:
            s[k] = split_command(s[k])
    env: dict[str, Any] = {}
    for ef in s.get("env_file") or []:
        env.update(dotenv.read(os.path.join(project_dir, ef["path"]), lookup, ef.get("required", True)))
    env.update({k: (v if v is not None else lookup(k)) for k, v in to_mapping(s.get("environment")).items()})
    env = {k: None if v is None else scalar_text(v) for k, v in env.items()}
    if env or "environment" in s:
        s["environment"] = env
    for k in ("labels", "sysctls", "annotations"):
        if k in s:
            s[k] = {name: "" if v is None else scalar_text(v) for name, v in to_mapping(s[k]).items()}
    if "ports" in s:
        s["ports"] = ports(s["ports"], f"{key}.ports")
    if "expose" in s:
        s["expose"] = [str(p) for p in s["expose"]]
    if "volumes" in s:
        s["volumes"] = [volume(v, f"{key}.volumes.{i}") for i, v in enumerate(s["volumes"])]
    if isinstance(s.get("tmpfs"), str):
        s["tmpfs"] = [s["tmpfs"]]
    for k in ("dns", "dns_search"):
        if isinstance(s.get(k), str):
            s[k] = [s[k]]
    if "extra_hosts" in s:
        s["extra_hosts"] = hosts_mapping(s["extra_hosts"])
    if isinstance(s.get("networks"), list):
        s["networks"] = {n: None for n in s["networks"]}
    if defaults and "networks" not in s and "network_mode" not in s:
        s["networks"] = {"default": None}
    deps = s.get("depends_on")
    if deps is not None:
        deps = {d: {} for d in deps} if isinstance(deps, list) else deps
        s["depends_on"] = {d: {"condition": (c or {}).get("condition", "service_started"),
                               **({"restart": True} if (c or {}).get("restart") else {}),
                               "required": (c or {}).get("required", True)} for d, c in deps.items()}
    for link in s.get("links") or []:  # a linked service is a dependency (compose-go adds it so)
        s.setdefault("depends_on", {}).setdefault(str(link).partition(":")[0], {
            "condition": "service_started", "restart": True, "required": True})
    if "healthcheck" in s:
        s["healthcheck"] = _healthcheck(s["healthcheck"], f"{key}.healthcheck")
    if "stop_grace_period" in s:
        s["stop_grace_period"] = units.format_duration(units.duration_ns(s["stop_grace_period"],
                                                                         f"{key}.stop_grace_period"))
    for k in ("secrets", "configs"):
        if k in s:
            s[k] = [{"source": e} if isinstance(e, str) else _file_mode(e, f"{key}.{k}.{i}")
                    for i, e in enumerate(s[k])]
    return s


def _file_mode(ref: dict[str, Any], key: str) -> dict[str, Any]:
    """A secret or config reference's mode as compose-go prints it: an octal string ("0440");
    a string in the file is read as octal, a number as is."""
    if "mode" not in ref:
        return ref
    mode = ref["mode"]
    if isinstance(mode, str):
        try:
            mode = int(mode, 8)
        except ValueError:
            raise InvalidValue(f"{key}.mode", f"invalid file mode {mode!r}: must be octal") from None
    return {**ref, "mode": f"0{int(mode):o}"}


def top_level(doc: dict[str, Any], project: str) -> None:
    """Default names of networks/volumes/secrets/configs; the implicit default network."""
    used_default = any("default" in (s.get("networks") or {}) for s in doc["services"].values())
    networks = doc.get("networks") or {}
    if used_default and "default" not in networks:
        networks = {"default": None, **networks}
    for kind, items in (("networks", networks), ("volumes", doc.get("volumes") or {})):
        out = {}
        for name, conf in items.items():
            conf = _cast(dict(conf or {}), (kind, name))
            if "labels" in conf:
                conf["labels"] = {k: "" if v is None else scalar_text(v) for k, v in to_mapping(conf["labels"]).items()}
            ext = conf.get("external")
            if isinstance(ext, dict):  # legacy `external: {name: x}`
                conf["name"] = ext.get("name", name)
                conf["external"] = True
            out[name] = {"name": conf.pop("name", name if conf.get("external") else f"{project}_{name}"), **conf}
        if out:
            doc[kind] = out
        else:
            doc.pop(kind, None)
    for kind in ("secrets", "configs"):
        items = doc.get(kind) or {}
        for name, conf in items.items():
            conf = dict(conf or {})
            items[name] = {"name": conf.pop("name", name if conf.get("external") else f"{project}_{name}"), **conf}
