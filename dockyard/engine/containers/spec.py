"""Docker's container create body + the image config -> the stored Config and the OCI runtime
config (runtime-spec 1.x) for one start."""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

from dockyard.engine.containers import health, mounts, resources, security
from dockyard.engine.containers.errors import InvalidParameter
from dockyard.engine.containers.loopback import hook as loopback_hook
from dockyard.engine.containers.users import resolve_user
from dockyard.runtime.paths import secure_join
from dockyard.runtime.spec_template import DEFAULT_PATH

INIT_PATH = "/sbin/docker-init"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Replace base entries by key (in place) and append new keys, as Docker does."""
    out = list(base)
    index = {_env_key(e): i for i, e in enumerate(out)}
    for entry in overrides:
        key = _env_key(entry)
        if key in index:
            out[index[key]] = entry
        else:
            index[key] = len(out)
            out.append(entry)
    return out


def merge_config(config: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """The container's Config as stored and inspected: the request's, with the image's defaults
    (a given Entrypoint keeps the image Cmd out; Env merged by key; Labels merged)."""
    out = copy.deepcopy(config)
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = image.get("Entrypoint")
    out["Env"] = merge_env(image.get("Env") or [], out.get("Env") or [])
    out["Labels"] = {**(image.get("Labels") or {}), **(out.get("Labels") or {})}
    if healthcheck := health.merge(out.get("Healthcheck"), image.get("Healthcheck")):
        out["Healthcheck"] = healthcheck
    for key in ("User", "WorkingDir", "StopSignal"):
        if not out.get(key):
            out[key] = image.get(key) or ""
    for key in ("ExposedPorts", "Volumes"):
        merged = {**(image.get(key) or {}), **(out.get(key) or {})}
        out[key] = merged or None
    if out["WorkingDir"] and not os.path.isabs(out["WorkingDir"]):
        raise InvalidParameter(f"the working directory '{out['WorkingDir']}' is invalid, it needs to be an "
                               "absolute path")
    path_and_args(out)  # refuse a container with nothing to run now, not at start
    return out


def path_and_args(config: dict[str, Any]) -> tuple[str, list[str]]:
    """(Path, Args) as inspect shows them: the entrypoint (unless --entrypoint "") then Cmd."""
    entrypoint = [e for e in config.get("Entrypoint") or []]
    if entrypoint == [""]:
        entrypoint = []
    argv = entrypoint + list(config.get("Cmd") or [])
    if not argv:
        raise InvalidParameter("No command specified")
    return argv[0], argv[1:]


def process_env(config: dict[str, Any], hostname: str, link_env: list[str] | None = None) -> list[str]:
    """PATH (if missing), HOSTNAME and TERM (with a tty), legacy links' variables, then the
    container's Env (as Docker: the container's own values win)."""
    defaults = [DEFAULT_PATH, f"HOSTNAME={hostname}"] + (["TERM=xterm"] if config.get("Tty") else [])
    return merge_env([*defaults, *(link_env or [])], config.get("Env") or [])


def cgroups_path(cid: str, host_config: dict[str, Any]) -> str:
    """CgroupParent/<id>, by default /dockyard/<id>."""
    parent = host_config.get("CgroupParent") or "/dockyard"
    return f"/{parent.strip('/')}/{cid}"


def _namespaces(hc: dict[str, Any], netns: str | None) -> list[dict[str, str]]:
    kinds = ["mount"]
    for kind, key in (("network", "NetworkMode"), ("pid", "PidMode"), ("ipc", "IpcMode"), ("uts", "UTSMode")):
        if hc.get(key) != "host":
            kinds.append(kind)
    if hc.get("CgroupnsMode") == "private":
        kinds.append("cgroup")
    return [{"type": k, "path": netns} if k == "network" and netns else {"type": k} for k in kinds]


def workdir(rootfs: str, path: str) -> str:
    """Create the working directory in the rootfs if missing (as Docker does); return it."""
    if path and path != "/":
        os.makedirs(secure_join(rootfs, path), mode=0o755, exist_ok=True)
    return path or "/"


def build_spec(cid: str, config: dict[str, Any], hc: dict[str, Any], rootfs: str,
               etc_files: dict[str, str], points: list[dict[str, Any]] | None = None,
               netns: str | None = None, link_env: list[str] | None = None) -> dict[str, Any]:
    """The OCI config for a container whose (merged) Config and HostConfig are given, with its
    MountPoints (sources resolved); rootfs is mounted already (the user is looked up in it and
    the working directory created). netns: the network namespace prepared for it (None: a fresh
    one with only lo, brought up by a hook); link_env: its legacy links' variables."""
    path, args = path_and_args(config)
    argv = [path, *args]
    user_mounts = mounts.oci_mounts(points or [], hc)
    if hc.get("Init"):
        argv = [INIT_PATH, "--", *argv]
        user_mounts.append({"destination": INIT_PATH, "type": "bind", "source": mounts.init_binary(),
                            "options": ["rbind", "ro", "rprivate"]})
    hostname = config.get("Hostname") or cid[:12]
    user = resolve_user(rootfs, config.get("User") or "", hc.get("GroupAdd"))
    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")), "user": user, "args": argv,
        "env": process_env(config, hostname, link_env), "cwd": workdir(rootfs, config.get("WorkingDir") or ""),
    }
    if hc.get("ConsoleSize") and any(hc["ConsoleSize"]):
        process["consoleSize"] = {"height": hc["ConsoleSize"][0], "width": hc["ConsoleSize"][1]}
    if rlimits := resources.rlimits(hc):
        process["rlimits"] = rlimits
    if hc.get("OomScoreAdj"):
        process["oomScoreAdj"] = hc["OomScoreAdj"]
    privileged = bool(hc.get("Privileged"))
    destinations = {m["destination"] for m in user_mounts}
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": [*mounts.default_mounts(hc.get("ShmSize") or 0, privileged),
                   *mounts.etc_mounts(etc_files, destinations, bool(hc.get("ReadonlyRootfs"))), *user_mounts],
        "linux": {
            "cgroupsPath": cgroups_path(cid, hc),
            "resources": resources.linux_resources(hc),
            "namespaces": _namespaces(hc, netns),
            "sysctl": dict(hc.get("Sysctls") or {}),
        },
    }
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    if hc.get("NetworkMode") != "host" and not netns:
        spec["hooks"] = {"createRuntime": [loopback_hook(sys.executable, PROJECT_ROOT)]}
    security.apply(spec, hc)
    return spec
