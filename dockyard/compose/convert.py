"""A service of the model → the Engine API's container create body, with Docker Compose's
labels (project, service, container number, oneoff, config hash) and resource names."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dockyard.compose import units

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_HASH = "com.docker.compose.config-hash"
LABEL_IMAGE = "com.docker.compose.image"
LABEL_WORKDIR = "com.docker.compose.project.working_dir"
LABEL_FILES = "com.docker.compose.project.config_files"
LABEL_DEPENDS = "com.docker.compose.depends_on"
LABEL_VERSION = "com.docker.compose.version"
LABEL_NETWORK = "com.docker.compose.network"
LABEL_VOLUME = "com.docker.compose.volume"
COMPOSE_VERSION = "2.29.0"
# settings that do not change a container (scaling, building, watching)
_UNHASHED = ("build", "pull_policy", "scale", "develop", "profiles")


def image_name(project: str, name: str, svc: dict[str, Any]) -> str:
    """The service's image: `image`, or `<project>-<service>` for a built one (Compose v2)."""
    return svc.get("image") or f"{project}-{name}"


def container_name(project: str, name: str, svc: dict[str, Any], number: int) -> str:
    return svc.get("container_name") or f"{project}-{name}-{number}"


def config_hash(svc: dict[str, Any]) -> str:
    """sha256 of the service's settings that shape its containers."""
    conf = {k: v for k, v in svc.items() if k not in _UNHASHED}
    deploy = dict(conf.get("deploy") or {})
    deploy.pop("replicas", None)
    if deploy:
        conf["deploy"] = deploy
    else:
        conf.pop("deploy", None)
    return hashlib.sha256(json.dumps(conf, sort_keys=True).encode()).hexdigest()


def replicas(svc: dict[str, Any]) -> int:
    if "scale" in svc:
        return int(svc["scale"])
    return int((svc.get("deploy") or {}).get("replicas", 1))


def _ns(value: str | None) -> int | None:
    return None if value is None else units.duration_ns(value)


def healthcheck(hc: dict[str, Any] | None) -> dict[str, Any] | None:
    """Compose's healthcheck → the API's Config.Healthcheck (durations in nanoseconds)."""
    if not hc:
        return None
    if hc.get("disable"):
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {}
    if hc.get("test"):
        out["Test"] = hc["test"]
    for key, api in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                     ("start_interval", "StartInterval")):
        if hc.get(key) is not None:
            out[api] = _ns(hc[key])
    if hc.get("retries") is not None:
        out["Retries"] = int(hc["retries"])
    return out


def _restart(policy: str | None) -> dict[str, Any] | None:
    if not policy:
        return None
    name, _, count = policy.partition(":")
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": int(count or 0)}


def _mounts(project: str, model: dict[str, Any], svc: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """(Binds, Mounts, Config.Volumes)."""
    binds: list[str] = []
    mounts: list[dict[str, Any]] = []
    anonymous: dict[str, Any] = {}
    volumes = model.get("volumes") or {}
    for v in svc.get("volumes") or []:
        kind = v["type"]
        if kind == "bind":
            opts = ["ro"] if v.get("read_only") else []
            bind = v.get("bind") or {}
            opts += [o for o in (bind.get("selinux"), bind.get("propagation")) if o]
            if bind.get("create_host_path", True):
                binds.append(f"{v['source']}:{v['target']}" + (":" + ",".join(opts) if opts else ""))
            else:
                mounts.append({"Type": "bind", "Source": v["source"], "Target": v["target"],
                               "ReadOnly": bool(v.get("read_only"))})
        elif kind == "volume" and not v.get("source"):
            anonymous[v["target"]] = {}
        elif kind == "volume":
            entry: dict[str, Any] = {"Type": "volume", "Source": volumes[v["source"]]["name"], "Target": v["target"],
                                     "ReadOnly": bool(v.get("read_only"))}
            if (v.get("volume") or {}).get("nocopy"):
                entry["VolumeOptions"] = {"NoCopy": True}
            mounts.append(entry)
        elif kind == "tmpfs":
            entry = {"Type": "tmpfs", "Target": v["target"]}
            size = (v.get("tmpfs") or {}).get("size")
            if size is not None:
                entry["TmpfsOptions"] = {"SizeBytes": units.size_bytes(size)}
            mounts.append(entry)
    for kind in ("secrets", "configs"):
        for item in svc.get(kind) or []:
            conf = (model.get(kind) or {}).get(item["source"]) or {}
            if conf.get("file"):
                binds.append(f"{conf['file']}:{file_target(kind, item)}:ro")
    return binds, mounts, anonymous


def file_target(kind: str, ref: dict[str, Any]) -> str:
    """Where a service's secret or config reference lands in the container: secrets under
    /run/secrets unless the target is absolute, configs at /<source> by default."""
    path = ref.get("target") or ref["source"]
    if path.startswith("/"):
        return path
    return ("/run/secrets/" if kind == "secrets" else "/") + path


def _ports(svc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in svc.get("ports") or []:
        key = f"{p['target']}/{p.get('protocol', 'tcp')}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": p.get("host_ip", ""), "HostPort": str(p.get("published", ""))})
    for e in svc.get("expose") or []:
        port, _, proto = str(e).partition("/")
        exposed[f"{port}/{proto or 'tcp'}"] = {}
    return exposed, bindings


def network_names(model: dict[str, Any], svc: dict[str, Any]) -> list[str]:
    """The service's networks (keys of the top-level networks), by priority then name."""
    nets = svc.get("networks") or {}
    return sorted(nets, key=lambda n: (-((nets[n] or {}).get("priority") or 0), n))


def create_body(project: Any, name: str, svc: dict[str, Any], number: int, image_id: str = "",
                oneoff: bool = False, links: list[str] | None = None) -> dict[str, Any]:
    """The POST /containers/create body for container `number` of service `name`; links:
    HostConfig.Links ("container:alias", from the linked services' containers)."""
    model = project.model
    labels = dict(svc.get("labels") or {})
    labels.update({
        LABEL_PROJECT: project.name, LABEL_SERVICE: name, LABEL_NUMBER: str(number),
        LABEL_ONEOFF: "True" if oneoff else "False", LABEL_HASH: config_hash(svc),
        LABEL_WORKDIR: project.directory, LABEL_FILES: ",".join(project.files),
        LABEL_VERSION: COMPOSE_VERSION, LABEL_IMAGE: image_id,
        LABEL_DEPENDS: ",".join(f"{d}:{c['condition']}:{str(bool(c.get('restart'))).lower()}"
                                for d, c in (svc.get("depends_on") or {}).items()),
    })
    exposed, bindings = _ports(svc)
    binds, mounts, anonymous = _mounts(project.name, model, svc)
    env = [f"{k}={v}" for k, v in (svc.get("environment") or {}).items() if v is not None]
    body: dict[str, Any] = {
        "Image": image_name(project.name, name, svc), "Labels": labels, "Env": env,
        "Cmd": svc.get("command"), "Entrypoint": svc.get("entrypoint"),
        "User": svc.get("user", ""), "WorkingDir": svc.get("working_dir", ""),
        "Hostname": svc.get("hostname", ""), "Domainname": svc.get("domainname", ""),
        "Tty": bool(svc.get("tty")), "OpenStdin": bool(svc.get("stdin_open")),
        "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
        "ExposedPorts": exposed or None, "Volumes": anonymous or None,
        "StopSignal": svc.get("stop_signal"), "Healthcheck": healthcheck(svc.get("healthcheck")),
    }
    if svc.get("stop_grace_period"):
        body["StopTimeout"] = units.duration_ns(svc["stop_grace_period"]) // 10**9
    resources = ((svc.get("deploy") or {}).get("resources") or {})
    limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
    memory = limits.get("memory", svc.get("mem_limit"))
    cpus = limits.get("cpus", svc.get("cpus"))
    hc: dict[str, Any] = {
        "Binds": binds or None, "Mounts": mounts or None, "PortBindings": bindings or None,
        "RestartPolicy": _restart(svc.get("restart")), "Init": svc.get("init"),
        "ReadonlyRootfs": bool(svc.get("read_only")), "Privileged": bool(svc.get("privileged")),
        "CapAdd": svc.get("cap_add"), "CapDrop": svc.get("cap_drop"), "SecurityOpt": svc.get("security_opt"),
        "Tmpfs": {t.split(":")[0]: (t.split(":", 1)[1] if ":" in t else "") for t in svc.get("tmpfs") or []} or None,
        "Ulimits": [{"Name": k, "Soft": v if isinstance(v, int) else v["soft"],
                     "Hard": v if isinstance(v, int) else v["hard"]}
                    for k, v in (svc.get("ulimits") or {}).items()] or None,
        "ExtraHosts": [f"{h}:{ip}" for h, ip in (svc.get("extra_hosts") or {}).items()] or None,
        "Dns": svc.get("dns"), "DnsSearch": svc.get("dns_search"), "DnsOptions": svc.get("dns_opt"),
        "Sysctls": svc.get("sysctls") if isinstance(svc.get("sysctls"), dict) else None,
        "PidMode": svc.get("pid"), "IpcMode": svc.get("ipc"), "GroupAdd": svc.get("group_add"),
        "OomScoreAdj": svc.get("oom_score_adj"), "PidsLimit": limits.get("pids", svc.get("pids_limit")),
        "Memory": units.size_bytes(memory) if memory is not None else None,
        "MemoryReservation": units.size_bytes(reservations["memory"]) if reservations.get("memory") else None,
        "NanoCpus": int(float(cpus) * 1e9) if cpus is not None else None,
        "CpuShares": svc.get("cpu_shares"), "ShmSize": units.size_bytes(svc["shm_size"]) if svc.get("shm_size") else None,
        "Devices": [_device(d) for d in svc.get("devices") or []] or None,
        "CgroupParent": svc.get("cgroup_parent"),
        "VolumesFrom": [_volumes_from(project, v) for v in svc.get("volumes_from") or []] or None,
        "Links": links or None,
    }
    if svc.get("logging"):
        hc["LogConfig"] = {"Type": svc["logging"].get("driver", "json-file"),
                           "Config": {k: str(v) for k, v in (svc["logging"].get("options") or {}).items()}}
    mode = svc.get("network_mode")
    nets = network_names(model, svc)
    if mode:
        hc["NetworkMode"] = _network_mode(project, mode)
    elif nets:
        first = nets[0]
        hc["NetworkMode"] = model["networks"][first]["name"]
        body["NetworkingConfig"] = {"EndpointsConfig": {model["networks"][first]["name"]:
                                                        endpoint(project, name, svc, first, number, links)}}
    body["HostConfig"] = {k: v for k, v in hc.items() if v is not None}
    return {k: v for k, v in body.items() if v is not None}


def endpoint(project: Any, name: str, svc: dict[str, Any], net: str, number: int,
             links: list[str] | None = None) -> dict[str, Any]:
    """EndpointsConfig entry: aliases (service name, container name), links (as in
    HostConfig: dockerd reads a user network's links here) and static addresses."""
    conf = (svc.get("networks") or {}).get(net) or {}
    aliases = [name, *(conf.get("aliases") or [])]
    out: dict[str, Any] = {"Aliases": aliases}
    if links:
        out["Links"] = links
    ipam = {k: conf[c] for k, c in (("IPv4Address", "ipv4_address"), ("IPv6Address", "ipv6_address")) if conf.get(c)}
    if ipam:
        out["IPAMConfig"] = ipam
    return out


def _network_mode(project: Any, mode: str) -> str:
    if mode.startswith("service:"):
        return f"container:{container_name(project.name, mode[8:], project.services[mode[8:]], 1)}"
    return mode


def _volumes_from(project: Any, spec: str) -> str:
    """`service[:ro]` → its first container; `container:name[:ro]` → name."""
    if spec.startswith("container:"):
        return spec[len("container:"):]
    service, _, mode = spec.partition(":")
    name = container_name(project.name, service, project.services[service], 1)
    return f"{name}:{mode}" if mode else name


def _device(spec: Any) -> dict[str, str]:
    if isinstance(spec, dict):
        return {"PathOnHost": spec["source"], "PathInContainer": spec.get("target", spec["source"]),
                "CgroupPermissions": spec.get("permissions", "rwm")}
    parts = str(spec).split(":")
    return {"PathOnHost": parts[0], "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
            "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"}

