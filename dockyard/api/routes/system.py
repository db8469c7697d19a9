"""System routes: /_ping, /version, /info, /system/df, /events."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import socket
import sys
import time
from collections import Counter
from datetime import UTC, datetime

from aiohttp import web

from dockyard.api import versions
from dockyard.api.errors import ApiError, json_line
from dockyard.api.routes import api_path
from dockyard.api.server import engine, json_query, json_response, start_stream
from dockyard.engine.config import ENGINE_VERSION
from dockyard.engine.events import EventFilter
from dockyard.image import filters as flt
from dockyard.image.manifest import host_platform

# Builder-Version 1: clients use the classic /build protocol (the docker CLI without buildx too)
_PING_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                 "Builder-Version": "1"}
_UNIX_TIME = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")


def routes() -> list[web.RouteDef]:
    return [
        web.get(api_path("/_ping"), ping, allow_head=False),
        web.head(api_path("/_ping"), ping),
        web.get(api_path("/version"), version),
        web.get(api_path("/info"), info),
        web.get(api_path("/system/df"), system_df),
        web.get(api_path("/events"), events),
    ]


async def ping(request: web.Request) -> web.Response:
    """GET/HEAD /_ping: "OK" (empty for HEAD) with the negotiation headers."""
    if request.method == "HEAD":
        return web.Response(headers={**_PING_HEADERS, "Content-Type": "text/plain; charset=utf-8",
                                     "Content-Length": "0"})
    return web.Response(text="OK", content_type="text/plain", charset="utf-8", headers=_PING_HEADERS)


def _sysctl_on(path: str) -> bool:
    """Whether a boolean sysctl reads 1 (False when absent)."""
    try:
        with open(path) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _kernel() -> str:
    return platform.uname().release


async def version(request: web.Request) -> web.Response:
    """GET /version."""
    arch = host_platform().architecture
    details = {"ApiVersion": versions.API_VERSION, "MinAPIVersion": versions.MIN_API_VERSION, "Os": "linux",
               "Arch": arch, "KernelVersion": _kernel(), "GitCommit": "",
               "GoVersion": f"python{platform.python_version()}", "BuildTime": ""}
    eng = engine(request)
    details["Experimental"] = str(eng.config.experimental).lower()
    return json_response({
        "Platform": {"Name": "dockyard"},
        "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
                       {"Name": eng.config.default_runtime, "Version": ENGINE_VERSION,
                        "Details": {"GitCommit": ""}}],
        "Version": ENGINE_VERSION, "ApiVersion": versions.API_VERSION,
        "MinAPIVersion": versions.MIN_API_VERSION, "GitCommit": "",
        "GoVersion": details["GoVersion"], "Os": "linux", "Arch": arch, "KernelVersion": _kernel(),
        "BuildTime": "", **({"Experimental": True} if eng.config.experimental else {}),
    })


def _os_release() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError:
        return "Linux"
    return fields.get("PRETTY_NAME", "Linux").strip('"')


def _mem_total() -> int:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


async def info(request: web.Request) -> web.Response:
    """GET /info: Docker's SystemInfo."""
    eng = engine(request)
    config = eng.config
    states = [r["State"] for r in await eng.run(eng.containers.store.all)]
    paused = sum(1 for st in states if st["Paused"])
    running = sum(1 for st in states if st["Running"]) - paused
    runtimes = {name: rt.info() for name, rt in eng.containers.runtimes.items()}
    security = ["name=seccomp,profile=builtin"] + (["name=cgroupns"] if _cgroup_version() == "2" else [])
    return json_response({
        "ID": eng.id, "Containers": len(states), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused,
        "Images": await eng.images.count(), "Driver": eng.images.store.snapshots.driver, "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "BridgeNfIptables": _sysctl_on("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "BridgeNfIp6tables": _sysctl_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
        "Debug": config.debug, "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False, "NGoroutines": len(sys._current_frames()),
        "SystemTime": datetime.now(UTC).astimezone().isoformat(timespec="microseconds"),
        "LoggingDriver": config.log_driver, "CgroupDriver": "cgroupfs", "CgroupVersion": _cgroup_version(),
        "NEventsListener": eng.events.listeners(), "KernelVersion": _kernel(),
        "OperatingSystem": _os_release(), "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                           "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
                           "IndexConfigs": {name: {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
                                            for name in config.insecure_registries},
                           "Mirrors": None},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
        "DockerRootDir": config.data_root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": config.experimental, "ServerVersion": ENGINE_VERSION,
        "Runtimes": runtimes, "DefaultRuntime": config.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": config.live_restore, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": security, "Warnings": None,
    })


async def system_df(request: web.Request) -> web.Response:
    """GET /system/df: images, containers and local volumes with their sizes; the build cache
    records."""
    eng = engine(request)
    usage = await eng.images.disk_usage()
    containers = await eng.run(eng.containers.list, True, None, True)
    counts = Counter(c["ImageID"] for c in containers)
    for image in usage["Images"]:
        image["Containers"] = counts[image["Id"]]
    volumes = await eng.run(eng.volumes.disk_usage)
    cache = await eng.run(eng.builds.disk_usage) if eng.builds is not None else []
    return json_response({**usage, "Containers": containers, "Volumes": volumes, "BuildCache": cache})


def parse_time_ns(value: str) -> int:
    """A since/until value in nanoseconds: "seconds[.nanoseconds]" as the CLI sends it, or
    anything the image filters' `until` takes (Go durations, RFC 3339)."""
    match = _UNIX_TIME.match(value)
    if match:
        return int(match[1]) * 1_000_000_000 + int((match[2] or "0").ljust(9, "0"))
    return int(flt.timestamp(value) * 1_000_000_000)


async def events(request: web.Request) -> web.StreamResponse:
    """GET /events: past events since `since`, then live ones until `until` (or forever)."""
    eng = engine(request)
    since = parse_time_ns(request.query["since"]) if request.query.get("since") else None
    until = parse_time_ns(request.query["until"]) if request.query.get("until") else None
    wanted = EventFilter(json_query(request, "filters"))
    if since is not None and until is not None and until < since:
        raise ApiError(400, "`since` time must be before `until` time")
    sub = eng.events.subscribe()
    try:
        response = await start_stream(request, "application/json")
        past = [e for e in sub.backlog if since is not None and e.time_nano >= since]
        for event in past:
            if (until is None or event.time_nano <= until) and wanted(event):
                await response.write(json_line(event.to_api()))
        while until is None or time.time_ns() < until:
            timeout = None if until is None else (until - time.time_ns()) / 1e9
            try:
                event = await asyncio.wait_for(sub.get(), timeout)
            except TimeoutError:
                break
            if event is None:
                break
            if (until is None or event.time_nano <= until) and wanted(event):
                await response.write(json_line(event.to_api()))
        await response.write_eof()
        return response
    finally:
        eng.events.unsubscribe(sub)

