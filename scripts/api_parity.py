"""Engine API shape parity: the same sequence of raw API calls against two daemons (dockerd as the
oracle, dockyardd under test), then per endpoint the differences in status code, the headers
clients read, error messages and JSON structure (missing keys, extra keys, type differences;
null, [] and {} are different types, key order is not compared).

    python scripts/api_parity.py --oracle /tmp/d/docker.sock --ours /tmp/y/d.sock [--version 1.41]
    python scripts/api_parity.py --private [--record tests/data/api_shapes/dockerd-20.10-v1.41.json]
    python scripts/api_parity.py --expect tests/data/api_shapes/dockerd-20.10-v1.41.json --ours SOCK

Both daemons must have busybox:latest and nothing else of the scenario's names. --private starts
both on temporary state (dockerd with its own containerd, a bridge of its own and iptables off;
busybox loaded offline into each) and removes everything afterwards. --record writes the oracle's
skeletons (what tests/test_api_shapes.py compares dockyardd against, without dockerd). With
--expect FILE instead of --oracle, the recorded skeletons are the oracle; an unpinned or newer
--version carries them forward by moby's version history (upgrade()).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.daemon import UnixHTTPConnection  # noqa: E402 - after the repository is on the path

HEADERS = ("Content-Type", "Api-Version", "Docker-Experimental", "Ostype", "Server")
# headers whose value (not just presence) must match
VALUE_HEADERS = ("Content-Type", "Docker-Experimental", "Ostype")
PREFIX = "apiparity-"  # every object the scenario creates is named with it
def filters(value: dict[str, list[str]]) -> str:
    """A filters query value, URL-encoded."""
    return urllib.parse.quote(json.dumps(value, separators=(",", ":")))


ID_RE = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")
FULL_ID_RE = re.compile(r"[0-9a-f]{64}")


@dataclass
class Reply:
    """One recorded response: status, the headers clients read, the body (JSON when it parses)."""

    status: int
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


class Api:
    """Raw Engine API calls on a unix socket, paths prefixed with /v<version> when one is pinned."""

    def __init__(self, sock: str, version: str | None) -> None:
        self.sock = sock
        self.version = version

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
             versioned: bool = True) -> Reply:
        """One request; body is sent as JSON, raw as is (with a JSON Content-Type)."""
        if versioned and self.version:
            path = f"/v{self.version}{path}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn = UnixHTTPConnection(self.sock)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            got = {h: resp.headers[h] for h in (*HEADERS, "X-Docker-Container-Path-Stat") if h in resp.headers}
        finally:
            conn.close()
        return Reply(resp.status, got, parse_body(payload), payload)


def parse_body(payload: bytes) -> Any:
    """JSON, or a list of JSON documents (one per line, as streams send them), or None."""
    text = payload.decode(errors="replace").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None


# ---- skeletons --------------------------------------------------------------------------------

def type_name(value: Any) -> str:
    """JSON type name; null, array and object are distinct (clients break on the difference)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def skeleton(value: Any) -> Any:
    """Keys and types without values: {"k": skel}, [merged element skel] or [], or a type name."""
    if isinstance(value, dict):  # keys that are IDs (a network's Containers) differ: one "<id>" for all
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = "<id>" if FULL_ID_RE.fullmatch(k) else k
            out[key] = merge(out[key], skeleton(v)) if key in out else skeleton(v)
        return out
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = skeleton(item) if merged is None else merge(merged, skeleton(item))
        return [] if merged is None else [merged]
    return type_name(value)


def merge(a: Any, b: Any) -> Any:
    """Union of two skeletons (of list elements); a type conflict becomes "null|object" etc."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {**b, **{k: merge(v, b[k]) if k in b else v for k, v in a.items()}}
    if isinstance(a, list) and isinstance(b, list):
        if a and b:
            return [merge(a[0], b[0])]
        return a or b
    if skel_type(a) == skel_type(b):
        return a
    return "|".join(sorted(set(skel_type(a).split("|")) | set(skel_type(b).split("|"))))


def skel_type(s: Any) -> str:
    """The type name of a skeleton node."""
    if isinstance(s, dict):
        return "object"
    if isinstance(s, list):
        return "array"
    return s


def diff(want: Any, got: Any, path: str = "") -> Iterator[str]:
    """Differences of got from want (skeletons): missing, extra, type."""
    if isinstance(want, dict) and isinstance(got, dict):
        for k in want:
            if k not in got:
                yield f"{path}.{k}: missing (oracle: {skel_type(want[k])})"
            else:
                yield from diff(want[k], got[k], f"{path}.{k}")
        for k in got:
            if k not in want:
                yield f"{path}.{k}: extra (ours: {skel_type(got[k])})"
    elif isinstance(want, list) and isinstance(got, list):
        if want and got:
            yield from diff(want[0], got[0], f"{path}[]")
    elif not set(skel_type(got).split("|")) <= set(skel_type(want).split("|")):  # "null|array": either
        yield f"{path or '.'}: type oracle {skel_type(want)} vs ours {skel_type(got)}"


# ---- recorded steps ----------------------------------------------------------------------------

@dataclass
class Step:
    """What one endpoint call recorded: comparable across daemons."""

    status: int
    headers: dict[str, str]
    shape: Any
    message: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "shape": self.shape, "message": self.message}


def demultiplex(raw: bytes) -> str:
    """An attach/logs stream's 8-byte-header frames as "stream:payload" items (compared exactly)."""
    out = []
    while len(raw) >= 8:
        size = int.from_bytes(raw[4:8], "big")
        out.append(f"{raw[0]}:{raw[8:8 + size].decode(errors='replace')!r}")
        raw = raw[8 + size:]
    return " ".join(out) + (f" trailing {raw!r}" if raw else "")


def normalise_message(text: str) -> str:
    """An error text with IDs replaced (they differ between daemons)."""
    return ID_RE.sub("<id>", text)


def record_of(reply: Reply) -> Step:
    """A reply reduced to what the comparison looks at."""
    headers = {h: v for h, v in reply.headers.items() if h in HEADERS}
    shape: Any = skeleton(reply.body) if reply.body is not None else None
    stat = reply.headers.get("X-Docker-Container-Path-Stat")
    if stat:
        shape = {"X-Docker-Container-Path-Stat": skeleton(json.loads(base64.b64decode(stat)))}
    message = None
    if reply.status >= 400 and isinstance(reply.body, dict):
        message = normalise_message(str(reply.body.get("message", "")))
    return Step(reply.status, headers, shape, message)


def compare(name: str, want: Step, got: Step, ignore: Callable[[str, str], bool] | None = None) -> list[str]:
    """The differences of one step (ignore(step, line) drops the ones that must differ)."""
    out = []
    if want.status != got.status:
        out.append(f"status: oracle {want.status} vs ours {got.status}")
    for h in HEADERS:
        if (h in want.headers) != (h in got.headers):
            out.append(f"header {h}: {'missing' if h in want.headers else 'extra'}")
        elif h in VALUE_HEADERS and want.headers.get(h) != got.headers.get(h):
            out.append(f"header {h}: oracle {want.headers.get(h)!r} vs ours {got.headers.get(h)!r}")
    if want.message != got.message:
        out.append(f"message: oracle {want.message!r} vs ours {got.message!r}")
    if (want.shape is None) != (got.shape is None):
        out.append(f"body: oracle {skel_type(want.shape) if want.shape is not None else 'none'} vs ours "
                   f"{skel_type(got.shape) if got.shape is not None else 'none'}")
    elif want.shape is not None:
        out.extend(diff(want.shape, got.shape))
    return [line for line in out if not (ignore and ignore(name, line))]


# ---- the scenario ------------------------------------------------------------------------------

def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    """Poll check until it is true (or give up quietly: the step's record will show it)."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


CREATE_VARIANTS: dict[str, dict[str, Any]] = {
    "basic": {"Cmd": ["sleep", "300"]},
    "ports": {"Cmd": ["sleep", "300"], "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
              "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                             "PublishAllPorts": True}},
    "binds": {"Cmd": ["true"], "HostConfig": {"Binds": ["/tmp:/hosttmp:ro", f"{PREFIX}vol:/vol"]}},
    "mounts": {"Cmd": ["true"], "HostConfig": {"Mounts": [
        {"Type": "bind", "Source": "/tmp", "Target": "/b", "ReadOnly": True},
        {"Type": "volume", "Source": f"{PREFIX}vol", "Target": "/v", "VolumeOptions": {"NoCopy": True}},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20}}]}},
    "tmpfs": {"Cmd": ["true"], "HostConfig": {"Tmpfs": {"/run": "size=64m"}}},
    "resources": {"Cmd": ["true"], "HostConfig": {"Memory": 64 << 20, "MemorySwap": 128 << 20,
                                                  "NanoCpus": 500_000_000, "CpuShares": 512,
                                                  "PidsLimit": 100, "BlkioWeight": 300}},
    "restart": {"Cmd": ["true"], "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}},
    "log": {"Cmd": ["true"], "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}},
    "security": {"Cmd": ["true"], "User": "1000:1000",
                 "HostConfig": {"SecurityOpt": ["no-new-privileges"], "CapAdd": ["NET_ADMIN"],
                                "CapDrop": ["MKNOD"], "ReadonlyRootfs": True, "Privileged": False}},
    "privileged": {"Cmd": ["true"], "HostConfig": {"Privileged": True, "Init": True, "AutoRemove": False,
                                                   "Sysctls": {"net.ipv4.ip_forward": "1"}}},
    "ulimits": {"Cmd": ["true"], "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]}},
    "devices": {"Cmd": ["true"], "HostConfig": {"Devices": [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rwm"}]}},
    "health": {"Cmd": ["sleep", "300"], "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 500_000_000,
                                                         "Timeout": 1_000_000_000, "Retries": 2}},
    "labels": {"Cmd": ["true"], "Labels": {"com.example.a": "1", "b": ""}, "Env": ["A=1"],
               "WorkingDir": "/tmp", "Entrypoint": ["/bin/sh", "-c"], "StopSignal": "SIGUSR1",
               "StopTimeout": 3, "Hostname": "h1", "Domainname": "example.com"},
    "host": {"Cmd": ["true"], "HostConfig": {"NetworkMode": "host"}},
    "none": {"Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}},
    "bridge": {"Cmd": ["true"], "HostConfig": {"NetworkMode": "bridge", "ExtraHosts": ["a.example:10.0.0.1"],
                                               "Dns": ["10.0.0.2"]}},
    "container": {"Cmd": ["true"], "HostConfig": {"NetworkMode": f"container:{PREFIX}basic"}},
    "usernet": {"Cmd": ["sleep", "300"], "HostConfig": {"NetworkMode": f"{PREFIX}net"},
                "NetworkingConfig": {"EndpointsConfig": {f"{PREFIX}net": {"Aliases": ["web"]}}}},
    "exited": {"Cmd": ["sh", "-c", "echo out; sleep 0.2; echo err >&2; exit 3"]},
    "paused": {"Cmd": ["sleep", "300"]},
}


class Scenario:
    """The scenario against one daemon: steps recorded by name."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.steps: dict[str, Step] = {}
        self.bodies: dict[str, Any] = {}  # the successful replies' JSON, by step
        self.ids: dict[str, str] = {}

    def rec(self, name: str, method: str, path: str, body: Any = None, raw: bytes | None = None,
            versioned: bool = True) -> Reply:
        reply = self.api.call(method, path, body=body, raw=raw, versioned=versioned)
        self.steps[name] = record_of(reply)
        if reply.status < 300:
            self.bodies[name] = reply.body
        return reply

    def call(self, method: str, path: str, body: Any = None) -> Reply:
        return self.api.call(method, path, body=body)

    def state(self, name: str) -> str:
        reply = self.call("GET", f"/containers/{PREFIX}{name}/json")
        return reply.body["State"]["Status"] if reply.status == 200 else "?"

    def run(self) -> dict[str, Step]:
        """Every step, then removal of everything the scenario made."""
        since = f"{time.time():.9f}"  # the scenario's own events only
        try:
            self.system()
            self.objects()
            self.containers()
            self.lists()
            self.images()
            self.errors()
            self.prunes()
            until = f"{time.time() + 1:.9f}"
            reply = self.api.call("GET", f"/events?since={since}&until={until}")
            by_kind: dict[str, list[Any]] = {}
            for event in reply.body if isinstance(reply.body, list) else []:
                by_kind.setdefault(f"{event.get('Type')}/{event.get('Action', '').split(':')[0]}", []).append(event)
            for kind, events in by_kind.items():
                self.steps[f"events {kind}"] = Step(reply.status, {}, skeleton(events)[0])
            self.steps["events"] = Step(reply.status, record_of(reply).headers, None)
        finally:
            self.cleanup()
        return self.steps

    def system(self) -> None:
        self.rec("GET /_ping", "GET", "/_ping", versioned=False)
        self.rec("HEAD /_ping", "HEAD", "/_ping", versioned=False)
        self.rec("GET /version", "GET", "/version")
        self.rec("GET /info", "GET", "/info")

    def objects(self) -> None:
        self.rec("POST /networks/create", "POST", "/networks/create",
                 {"Name": f"{PREFIX}net", "Labels": {"l": "v"}, "Attachable": True})
        self.call("POST", "/networks/create", {"Name": f"{PREFIX}net2", "Internal": True,
                                               "IPAM": {"Config": [{"Subnet": "10.254.77.0/24"}]}})
        self.rec("POST /volumes/create", "POST", "/volumes/create",
                 {"Name": f"{PREFIX}vol", "Labels": {"l": "v"}})
        self.call("POST", "/volumes/create", {"Name": f"{PREFIX}vol2"})

    def containers(self) -> None:
        for variant, body in CREATE_VARIANTS.items():
            reply = self.rec(f"POST /containers/create ({variant})", "POST", f"/containers/create?name={PREFIX}{variant}",
                             {"Image": "busybox:latest", **body})
            if reply.status == 201:
                self.ids[variant] = reply.body["Id"]
            self.rec(f"GET /containers/{{id}}/json ({variant}, created)", "GET", f"/containers/{PREFIX}{variant}/json")
        for variant in ("basic", "ports", "health", "usernet", "exited", "paused", "container"):
            self.call("POST", f"/containers/{PREFIX}{variant}/start")
        wait_for(lambda: self.state("exited") == "exited")
        wait_for(lambda: self.call("GET", f"/containers/{PREFIX}health/json").body["State"]
                 .get("Health", {}).get("Status") == "healthy")
        self.rec("POST /containers/{id}/pause", "POST", f"/containers/{PREFIX}paused/pause")
        c = f"/containers/{PREFIX}basic"
        self.rec("GET /containers/{id}/json (running)", "GET", f"{c}/json")
        self.rec("GET /containers/{id}/json (running, size)", "GET", f"{c}/json?size=1")
        self.rec("GET /containers/{id}/json (ports, running)", "GET", f"/containers/{PREFIX}ports/json")
        self.rec("GET /containers/{id}/json (usernet, running)", "GET", f"/containers/{PREFIX}usernet/json")
        self.rec("GET /containers/{id}/json (container:, running)", "GET", f"/containers/{PREFIX}container/json")
        self.rec("GET /containers/{id}/json (healthy)", "GET", f"/containers/{PREFIX}health/json")
        self.rec("GET /containers/{id}/json (exited)", "GET", f"/containers/{PREFIX}exited/json")
        self.rec("GET /containers/{id}/json (paused)", "GET", f"/containers/{PREFIX}paused/json")
        self.rec("GET /containers/{id}/top", "GET", f"{c}/top")
        self.rec("GET /containers/{id}/top?ps_args=aux", "GET", f"{c}/top?ps_args=aux")
        self.call("POST", f"{c}/exec", {"Cmd": ["touch", "/newfile"]})
        exec_reply = self.rec("POST /containers/{id}/exec", "POST", f"{c}/exec",
                              {"Cmd": ["sh", "-c", "echo hi; rm -f /etc/hostname.x; mkdir -p /tmp/d"],
                               "AttachStdout": True, "AttachStderr": True})
        exec_id = exec_reply.body.get("Id", "none") if isinstance(exec_reply.body, dict) else "none"
        self.rec("GET /exec/{id}/json (created)", "GET", f"/exec/{exec_id}/json")
        self.rec("POST /exec/{id}/start (detach)", "POST", f"/exec/{exec_id}/start", {"Detach": True})
        wait_for(lambda: self.call("GET", f"/exec/{exec_id}/json").body.get("Running") is False)
        self.rec("GET /exec/{id}/json (exited)", "GET", f"/exec/{exec_id}/json")
        self.rec("GET /containers/{id}/changes", "GET", f"{c}/changes")
        self.rec("GET /containers/{id}/changes (none)", "GET", f"/containers/{PREFIX}ports/changes")
        self.rec("GET /containers/{id}/stats?stream=false", "GET", f"{c}/stats?stream=false")
        self.rec("GET /containers/{id}/stats?stream=false&one-shot=true", "GET", f"{c}/stats?stream=false&one-shot=true")
        self.rec("GET /containers/{id}/stats (exited)", "GET", f"/containers/{PREFIX}exited/stats?stream=false")
        for query in ("stdout=1&stderr=1", "stdout=1&tail=1", "stderr=1&timestamps=0"):
            reply = self.rec(f"GET /containers/{{id}}/logs?{query}", "GET", f"/containers/{PREFIX}exited/logs?{query}")
            self.steps[f"GET /containers/{{id}}/logs?{query}"].message = demultiplex(reply.raw)
        self.rec("GET /containers/{id}/logs (no stream chosen)", "GET", f"/containers/{PREFIX}exited/logs")
        self.rec("POST /containers/{id}/wait", "POST", f"/containers/{PREFIX}exited/wait")
        self.rec("HEAD /containers/{id}/archive (dir)", "HEAD", f"{c}/archive?path=/etc")
        self.rec("HEAD /containers/{id}/archive (file)", "HEAD", f"{c}/archive?path=/etc/passwd")
        self.rec("HEAD /containers/{id}/archive (missing)", "HEAD", f"{c}/archive?path=/nonexistent")
        self.rec("POST /networks/{id}/connect", "POST", f"/networks/{PREFIX}net2/connect",
                 {"Container": f"{PREFIX}basic", "EndpointConfig": {"Aliases": ["b2"]}})
        self.rec("GET /containers/{id}/json (two networks)", "GET", f"{c}/json")
        self.rec("GET /networks/{id} (with container)", "GET", f"/networks/{PREFIX}net2")
        self.rec("POST /networks/{id}/disconnect", "POST", f"/networks/{PREFIX}net2/disconnect",
                 {"Container": f"{PREFIX}basic"})
        self.rec("POST /containers/{id}/start (running)", "POST", f"{c}/start")
        self.rec("POST /containers/{id}/stop (stopped)", "POST", f"/containers/{PREFIX}exited/stop")
        self.rec("POST /containers/{id}/kill (stopped)", "POST", f"/containers/{PREFIX}exited/kill")
        self.rec("DELETE /containers/{id} (running)", "DELETE", c)
        self.rec("POST /containers/{id}/rename", "POST", f"/containers/{PREFIX}log/rename?name={PREFIX}log2")
        self.rec("POST /containers/{id}/update", "POST", f"/containers/{PREFIX}resources/update",
                 {"CpuShares": 256})
        self.rec("POST /commit", "POST", f"/commit?container={PREFIX}basic&repo={PREFIX}img&tag=committed",
                 {"Labels": {"c": "1"}})

    def lists(self) -> None:
        cases = {
            "status": {"status": ["running"]}, "label": {"label": ["com.example.a=1"]},
            "name": {"name": [f"{PREFIX}basic"]}, "id": {"id": [self.ids.get("basic", "x")[:12]]},
            "ancestor": {"ancestor": ["busybox"]}, "before": {"before": [f"{PREFIX}usernet"]},
            "since": {"since": [f"{PREFIX}basic"]}, "network": {"network": [f"{PREFIX}net"]},
            "volume": {"volume": [f"{PREFIX}vol"]}, "exited": {"exited": ["3"]},
            "health": {"health": ["healthy"]}, "is-task": {"is-task": ["false"]},
        }
        self.rec("GET /containers/json", "GET", "/containers/json")
        self.rec("GET /containers/json?all=1", "GET", "/containers/json?all=1")
        self.rec("GET /containers/json?all=1&size=1", "GET", "/containers/json?all=1&size=1")
        for name, f in cases.items():
            q = filters(f)
            reply = self.rec(f"GET /containers/json (filter {name})", "GET", f"/containers/json?all=1&filters={q}")
            if reply.status == 200:  # which containers matched is compared as the step's text
                self.steps[f"GET /containers/json (filter {name})"].message = "matched: " + " ".join(
                    sorted(n.removeprefix(f"/{PREFIX}") for c in reply.body for n in c.get("Names", [])))
        self.rec("GET /containers/json (bad filter)", "GET", "/containers/json?filters=" + filters({"nope": ["1"]}))
        self.rec("GET /networks", "GET", "/networks")
        self.rec("GET /networks/{id}", "GET", f"/networks/{PREFIX}net")
        self.rec("GET /networks/{id} (bridge)", "GET", "/networks/bridge")
        self.rec("GET /volumes", "GET", "/volumes")
        self.rec("GET /volumes/{name}", "GET", f"/volumes/{PREFIX}vol")
        self.rec("GET /system/df", "GET", "/system/df")

    def images(self) -> None:
        self.rec("GET /images/json", "GET", "/images/json")
        self.rec("GET /images/json?all=1", "GET", "/images/json?all=1")
        self.rec("GET /images/{name}/json", "GET", "/images/busybox:latest/json")
        self.rec("GET /images/{name}/json (committed)", "GET", f"/images/{PREFIX}img:committed/json")
        self.rec("GET /images/{name}/history", "GET", "/images/busybox:latest/history")
        self.rec("POST /images/{name}/tag", "POST", f"/images/busybox:latest/tag?repo={PREFIX}tag&tag=1")
        self.rec("DELETE /images/{name} (untag)", "DELETE", f"/images/{PREFIX}tag:1")
        self.rec("DELETE /images/{name} (in use)", "DELETE", f"/images/{PREFIX}img:committed")
        self.call("POST", f"/containers/{PREFIX}basic/kill")
        self.call("DELETE", f"/containers/{PREFIX}basic?force=1")
        self.rec("DELETE /images/{name} (delete)", "DELETE", f"/images/{PREFIX}img:committed")

    def errors(self) -> None:
        self.rec("GET /containers/{id}/json (missing)", "GET", f"/containers/{PREFIX}missing/json")
        self.rec("GET /images/{name}/json (missing)", "GET", f"/images/{PREFIX}missing:1/json")
        self.rec("GET /networks/{id} (missing)", "GET", f"/networks/{PREFIX}missing")
        self.rec("GET /volumes/{name} (missing)", "GET", f"/volumes/{PREFIX}missing")
        self.rec("GET /exec/{id}/json (missing)", "GET", f"/exec/{PREFIX}missing/json")
        self.rec("POST /containers/create (name conflict)", "POST", f"/containers/create?name={PREFIX}exited",
                 {"Image": "busybox:latest"})
        self.rec("POST /containers/create (missing image)", "POST", "/containers/create",
                 {"Image": f"{PREFIX}missing:1"})
        self.rec("POST /containers/create (invalid JSON)", "POST", "/containers/create", raw=b"{not json")
        self.rec("POST /containers/create (bad reference)", "POST", "/containers/create", {"Image": "Busy:Box:x"})
        self.rec("POST /containers/create (bad port)", "POST", "/containers/create",
                 {"Image": "busybox:latest", "HostConfig": {"PortBindings": {"99999/tcp": [{"HostPort": "1"}]}}})
        self.rec("POST /containers/create (bad restart)", "POST", "/containers/create",
                 {"Image": "busybox:latest", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}})
        self.rec("POST /containers/create (restart always with count)", "POST", "/containers/create",
                 {"Image": "busybox:latest", "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}})
        self.rec("POST /containers/create (bad network mode)", "POST", "/containers/create",
                 {"Image": "busybox:latest", "HostConfig": {"NetworkMode": f"{PREFIX}nonet"}})
        self.rec("POST /containers/create (bad mount type)", "POST", "/containers/create",
                 {"Image": "busybox:latest", "HostConfig": {"Mounts": [{"Type": "floppy", "Target": "/x"}]}})
        self.rec("POST /containers/create (bad bind)", "POST", "/containers/create",
                 {"Image": "busybox:latest", "HostConfig": {"Binds": ["/a:/b:c:d"]}})
        self.rec("POST /containers/create (bad name)", "POST", "/containers/create?name=/bad/name",
                 {"Image": "busybox:latest"})
        for key, value in (("CapAdd", ["NOPE"]), ("LogConfig", {"Type": "nope"}), ("Memory", "lots"),
                           ("IpcMode", "weird"), ("SecurityOpt", ["bogus"]), ("PidMode", "weird"),
                           ("RestartPolicy", {"Name": "on-failure", "MaximumRetryCount": -1})):
            self.rec(f"POST /containers/create (bad {key})", "POST", "/containers/create",
                     {"Image": "busybox:latest", "HostConfig": {key: value}})
        self.rec("POST /containers/create (unknown field)", "POST", "/containers/create",
                 {"Image": "busybox:latest", "Bogus": 1, "HostConfig": {"Bogus": True}})
        self.rec("POST /networks/{id}/connect (missing container)", "POST", f"/networks/{PREFIX}net/connect",
                 {"Container": f"{PREFIX}missing"})
        self.rec("POST /exec/{id}/start (missing)", "POST", f"/exec/{PREFIX}missing/start", {"Detach": True})
        self.rec("DELETE /volumes/{name} (missing)", "DELETE", f"/volumes/{PREFIX}missing")
        self.rec("POST /containers/{id}/stop (missing)", "POST", f"/containers/{PREFIX}missing/stop")
        self.rec("POST /containers/{id}/rename (taken)", "POST",
                 f"/containers/{PREFIX}ports/rename?name={PREFIX}exited")
        self.rec("POST /networks/{id}/connect (connected)", "POST", f"/networks/{PREFIX}net/connect",
                 {"Container": f"{PREFIX}usernet"})
        self.rec("DELETE /networks/{id} (in use)", "DELETE", f"/networks/{PREFIX}net")
        self.rec("DELETE /images/{name} (used by running)", "DELETE", "/images/busybox:latest")
        self.rec("POST /volumes/create (bad name)", "POST", "/volumes/create", {"Name": "a/b"})
        self.rec("POST /networks/create (bad subnet)", "POST", "/networks/create",
                 {"Name": f"{PREFIX}badnet", "IPAM": {"Config": [{"Subnet": "10.0.0.300/24"}]}})
        self.rec("POST /containers/{id}/wait (missing)", "POST", f"/containers/{PREFIX}missing/wait")
        self.rec("GET /containers/{id}/logs (missing)", "GET", f"/containers/{PREFIX}missing/logs?stdout=1")
        self.rec("GET /containers/{id}/stats (missing)", "GET", f"/containers/{PREFIX}missing/stats?stream=false")
        self.rec("POST /containers/{id}/restart (missing)", "POST", f"/containers/{PREFIX}missing/restart")
        self.rec("POST /exec/{id}/resize (missing)", "POST", f"/exec/{PREFIX}missing/resize?h=10&w=10")
        self.rec("POST /containers/{id}/resize (stopped)", "POST", f"/containers/{PREFIX}exited/resize?h=10&w=10")
        self.rec("GET /containers/{id}/archive (missing path)", "GET", f"/containers/{PREFIX}ports/archive?path=/nope")
        self.rec("PUT /containers/{id}/archive (missing dir)", "PUT", f"/containers/{PREFIX}ports/archive?path=/nope",
                 raw=b"")
        self.rec("GET /networks (filter)", "GET", "/networks?filters=" + filters({"name": [f"{PREFIX}net"]}))
        self.rec("GET /volumes (filter dangling)", "GET", "/volumes?filters=" + filters({"dangling": ["true"]}))
        self.rec("GET /images/json (filter reference)", "GET",
                 "/images/json?filters=" + filters({"reference": ["busybox"]}))
        self.rec("GET /images/json (bad filter)", "GET", "/images/json?filters=" + filters({"nope": ["1"]}))
        self.rec("POST /networks/create (duplicate)", "POST", "/networks/create", {"Name": f"{PREFIX}net"})
        self.rec("POST /images/{name}/tag (bad repo)", "POST", "/images/busybox:latest/tag?repo=Bad_Repo")
        self.rec("DELETE /networks/{id} (missing)", "DELETE", f"/networks/{PREFIX}missing")
        self.rec("DELETE /volumes/{name} (in use)", "DELETE", f"/volumes/{PREFIX}vol")
        self.rec("DELETE /images/{name} (missing)", "DELETE", f"/images/{PREFIX}missing:1")
        self.rec("POST /containers/{id}/start (missing)", "POST", f"/containers/{PREFIX}missing/start")
        self.rec("POST /containers/{id}/wait (bad condition)", "POST", f"/containers/{PREFIX}exited/wait?condition=bad")
        self.rec("POST /containers/{id}/unpause (not paused)", "POST", f"/containers/{PREFIX}ports/unpause")
        self.rec("POST /containers/{id}/pause (paused)", "POST", f"/containers/{PREFIX}paused/pause")
        self.rec("POST /containers/{id}/exec (paused)", "POST", f"/containers/{PREFIX}paused/exec", {"Cmd": ["true"]})
        self.rec("POST /containers/{id}/exec (stopped)", "POST", f"/containers/{PREFIX}exited/exec", {"Cmd": ["true"]})
        self.rec("GET /containers/{id}/top (stopped)", "GET", f"/containers/{PREFIX}exited/top")
        self.rec("GET /nonexistent", "GET", "/nonexistent")
        self.rec("GET /v9.99/version", "GET", "/v9.99/version", versioned=False)
        self.rec("GET /v1.12/version", "GET", "/v1.12/version", versioned=False)

    def prunes(self) -> None:
        self.call("POST", f"/containers/{PREFIX}paused/unpause")
        for variant in CREATE_VARIANTS:
            self.call("DELETE", f"/containers/{PREFIX}{variant}?force=1")
        self.call("DELETE", f"/containers/{PREFIX}log2?force=1")
        self.rec("POST /containers/prune", "POST", "/containers/prune")
        self.rec("POST /volumes/prune", "POST", "/volumes/prune?filters=" + filters({"label": ["l=v"]}))
        self.rec("POST /networks/prune", "POST", "/networks/prune?filters=" + filters({"label": ["l=v"]}))
        self.rec("POST /images/prune", "POST", "/images/prune")
        self.rec("DELETE /networks/{id}", "DELETE", f"/networks/{PREFIX}net2")
        self.rec("DELETE /volumes/{name}", "DELETE", f"/volumes/{PREFIX}vol2")

    def cleanup(self) -> None:
        """Remove whatever the scenario made, even after a failure."""
        self.call("POST", f"/containers/{PREFIX}paused/unpause")
        for variant in (*CREATE_VARIANTS, "log2"):
            self.call("DELETE", f"/containers/{PREFIX}{variant}?force=1&v=1")
        for net in ("net", "net2"):
            self.call("DELETE", f"/networks/{PREFIX}{net}")
        for vol in ("vol", "vol2"):
            self.call("DELETE", f"/volumes/{PREFIX}{vol}?force=1")
        for image in (f"{PREFIX}img:committed", f"{PREFIX}tag:1"):
            self.call("DELETE", f"/images/{image}?force=1")


# ---- shapes that must differ, and what a newer API version changes ------------------------------

# lines (regex, matched against "step: line") that are not differences of shape: data-keyed maps
# whose keys are names of things that differ between engines (runtimes, drivers' own options)
MUST_DIFFER = [
    r"^GET /info: \.Runtimes\.",
    r"^GET /info: \.RegistryConfig\.IndexConfigs\.",  # keyed by registry names
    r"\.GraphDriver\.Data\.",
    r"^GET /version: \.Components\[\]\.Details\.",
    r": \.Options\.com\.docker\.network\.",
    r": \[\]\.Options\.com\.docker\.network\.",
    r"header Server",
    r"\(healthy\): \.ExecIDs: type",  # health probes in flight at that instant are listed
]


# differences from dockerd 20.10 that are not ours to fix, as "step: line" regexes: newer dockerd
# (the API 1.45 one dockyardd stands for) answers as dockyardd does, or the value legitimately
# differs (IDs, sizes, the advertised versions)
NEWER_DOCKERD = [
    r"^GET /containers/\{id\}/json \(\w+, created\): \.HostConfig\.Runtime: extra",  # set at create since 23.0
    r"^GET /containers/\{id\}/logs\?[^:]*: header Content-Type: extra",  # API 1.42
    r"^GET /(containers|images)/json \(bad filter\): message: oracle \"Invalid filter",  # lower case since 23.0
    r"^DELETE /networks/\{id\} \(in use\): message",  # the endpoints named since 25.0
    r"^GET /images/\{name\}/json \(missing\): message: oracle 'no such image: ",  # one "No such image" since 23.0
    r"^POST /containers/create \(invalid JSON\): ",  # 400 since 23.0; the decoder's text is Go's
    r"^POST /containers/create \(bad reference\): message",  # the name in the text since 25.0
    r"^POST /images/\{name\}/tag \(bad repo\): ",  # 400 and the name in the text since 25.0
    r"^POST /containers/create \(restart always with count\): message",  # 25.0's text
    r"^POST /containers/create \(bad RestartPolicy\): message",  # 25.0's text
    r"^POST /containers/create \(bad Memory\): ",  # 400 since 23.0; the body is decoded whole since 25.0
    r"^POST /containers/create \(bad SecurityOpt\): status",  # 400 since 23.0
    r"^POST /containers/create \(bad bind\): status",  # 400 since 23.0
    r"^POST /networks/create \(duplicate\): ",  # 409 from API 1.44 (every version)
    r"^POST /containers/\{id\}/wait \(bad condition\): ",  # 400 since API 1.42 (every version)
    r"^POST /containers/\{id\}/unpause \(not paused\): status",  # 409 since 23.0
    r"^POST /containers/\{id\}/exec \(stopped\): message: oracle 'Container",  # lower case since 23.0
    r"^GET /v9\.99/version: message",  # the maximum version is each daemon's
    r"^GET /v1\.12/version: ",  # 1.24 is the minimum since 25.0
    r"SizeRw: extra",  # omitted when zero: our writable layer holds what dockerd puts in its init layer
]
# differences that are ours and not fixed yet (each one a known problem of the report), or kept
KNOWN = [
    r"\.EnableIPv4: extra",  # shown at every API version: dockyard's --ipv4=false (API 1.47) needs it
    r"^GET /images/\{name\}/json \(committed\): \.GraphDriver\.Data: type",  # null until its layers unpack
    r"^POST /networks/create \(bad subnet\): ",  # 400 with our text (dockerd 20.10: 500, "Invalid subnet ... : ...")
]


def must_differ(step: str, line: str) -> bool:
    """Whether a difference is one of values that must differ between the engines."""
    return any(re.search(p, f"{step}: {line}") for p in MUST_DIFFER)


def accepted(step: str, line: str) -> bool:
    """must_differ, or a change of newer dockerd, or a known difference of ours."""
    return must_differ(step, line) or any(re.search(p, f"{step}: {line}") for p in NEWER_DOCKERD + KNOWN)


# ---- what newer API versions change in a recorded (older) oracle ------------------------------

def _dicts(shape: Any) -> Iterator[dict[str, Any]]:
    """Every object node of a skeleton."""
    if isinstance(shape, dict):
        yield shape
        for v in shape.values():
            yield from _dicts(v)
    elif isinstance(shape, list):
        for v in shape:
            yield from _dicts(v)


def upgrade(steps: dict[str, Step], version: tuple[int, ...]) -> dict[str, Step]:
    """The recorded oracle's skeletons as a dockerd answers API `version` (1.42 to 1.45), from
    moby's version history: dropped, added and retyped fields."""
    out = json.loads(json.dumps({k: v.as_json() for k, v in steps.items()}))
    for name, step in out.items():
        if name.startswith("GET /containers/{id}/logs?") and version >= (1, 42):
            step["headers"]["Content-Type"] = "application/vnd.docker.multiplexed-stream"
        for node in _dicts(step["shape"]):
            if version >= (1, 42):
                if "CpuShares" in node and "KernelMemory" in node:  # HostConfig: omitted when unset
                    node.pop("KernelMemory")
                    node.pop("KernelMemoryTCP", None)
                if "NCPU" in node:  # /info: omitted unless supported
                    node.pop("KernelMemory", None)
                    node.pop("KernelMemoryTCP", None)
                if "LayersSize" in node:  # /system/df
                    node.pop("BuilderSize", None)
            if version >= (1, 43) and "RepoTags" in node and "ParentId" in node:  # image summaries
                node["RepoTags"] = node["RepoDigests"] = "array"
            if version >= (1, 44):
                if "RepoTags" in node:
                    node.pop("VirtualSize", None)
                if "NetworkID" in node and "EndpointID" in node:  # EndpointSettings
                    node["DNSNames"] = "array|null"
                if "NCPU" in node:
                    node["CDISpecDirs"] = "array"
            if version >= (1, 45) and "RepoTags" in node and "GraphDriver" in node:  # image inspect
                node.pop("Container", None)
                node.pop("ContainerConfig", None)
    return {k: Step(v["status"], v["headers"], v["shape"], v.get("message")) for k, v in out.items()}


# ---- moby's swagger as a second oracle (for the newest API version) -----------------------------

class Swagger:
    """Response schemas of moby's api/swagger.yaml: which keys an endpoint's JSON may have."""

    def __init__(self, path: str) -> None:
        from ruamel.yaml import YAML

        with open(path) as f:
            self.doc = YAML(typ="safe").load(f)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """schema with $ref and allOf followed (allOf merged into one object schema)."""
        while "$ref" in schema:
            schema = self.doc["definitions"][schema["$ref"].rsplit("/", 1)[1]]
        if "allOf" in schema:
            merged: dict[str, Any] = {"type": "object", "properties": {}}
            for part in schema["allOf"]:
                merged["properties"].update(self.resolve(part).get("properties") or {})
            return merged
        return schema

    def response(self, step: str) -> dict[str, Any] | None:
        """The 2xx response schema of the endpoint a step name starts with ("GET /path ...")."""
        method, _, rest = step.partition(" ")
        path = rest.split(" ")[0].split("?")[0]
        op = (self.doc["paths"].get(path) or {}).get(method.lower()) or {}
        for code, resp in (op.get("responses") or {}).items():
            if str(code).startswith("2") and "schema" in resp:
                return resp["schema"]
        return None

    def check(self, schema: dict[str, Any], value: Any, path: str = "") -> Iterator[str]:
        """Keys of value the schema does not define, keys it defines that value lacks, and type
        mismatches (null passes: Go writes nil slices and maps as null)."""
        schema = self.resolve(schema)
        kind = schema.get("type")
        if value is None:
            return
        if kind == "object" and isinstance(value, dict):
            props = schema.get("properties")
            extra = schema.get("additionalProperties")
            if props is None:
                if isinstance(extra, dict):
                    for k, v in value.items():
                        yield from self.check(extra, v, f"{path}.{k}")
                return
            for k, v in value.items():
                if k in props:
                    yield from self.check(props[k], v, f"{path}.{k}")
                elif not extra:
                    yield f"{path}.{k}: not in the swagger"
            for k in props:
                if k not in value:
                    yield f"{path}.{k}: in the swagger, absent here"
        elif kind == "array" and isinstance(value, list):
            for item in value[:1]:
                yield from self.check(schema.get("items") or {}, item, f"{path}[]")
        elif kind and type_name(value) != {"integer": "number", "boolean": "bool"}.get(kind, kind):
            yield f"{path or '.'}: swagger {kind} vs here {type_name(value)}"


# ---- command line --------------------------------------------------------------------------------

def parse_version(text: str) -> tuple[int, ...]:
    """"1.45" → (1, 45)."""
    return tuple(int(p) for p in text.split("."))


def load(path: str) -> dict[str, Step]:
    """Recorded steps from a --record file."""
    with open(path) as f:
        data = json.load(f)
    return {name: Step(s["status"], s["headers"], s["shape"], s.get("message")) for name, s in data["steps"].items()}


def report(oracle: dict[str, Step], ours: dict[str, Step], ignore: Callable[[str, str], bool]) -> int:
    """Print the differences per step; how many steps differ."""
    bad = 0
    for name in list(oracle) + [n for n in ours if n not in oracle]:
        if name not in ours or name not in oracle:
            print(f"{name}: only {'oracle' if name in oracle else 'ours'} has this step")
            bad += 1
            continue
        if name.startswith("events "):  # only the shape: when and how many differ
            lines = [line for line in diff(oracle[name].shape, ours[name].shape) if not ignore(name, line)]
        else:
            lines = compare(name, oracle[name], ours[name], ignore)
        if lines:
            bad += 1
            print(f"{name}:")
            for line in lines:
                print(f"    {line}")
    return bad


PRIVATE_BRIDGE, PRIVATE_BRIDGE_ADDRESS = "dyparity0", "10.251.77.1/24"


@contextlib.contextmanager
def private_daemons() -> Iterator[tuple[str, str]]:
    """A private dockerd and dockyardd with busybox; (dockerd socket, dockyardd socket)."""
    from tests.daemon import Dockyardd, busybox_archive

    tmp = Path(tempfile.mkdtemp(prefix="dy-parity-", dir="/tmp"))
    dockerd: subprocess.Popen[bytes] | None = None
    (tmp / "dockyardd").mkdir()
    ours = Dockyardd(tmp=str(tmp / "dockyardd"))
    subprocess.run(["ip", "link", "add", PRIVATE_BRIDGE, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", PRIVATE_BRIDGE_ADDRESS, "dev", PRIVATE_BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", PRIVATE_BRIDGE, "up"], check=True)
        archive = busybox_archive(tmp)
        sock = tmp / "docker.sock"
        (tmp / "daemon.json").write_text("{}")
        with open(tmp / "dockerd.log", "wb") as log:
            dockerd = subprocess.Popen(
                ["dockerd", "--config-file", str(tmp / "daemon.json"), "--data-root", str(tmp / "docker"),
                 "--exec-root", str(tmp / "exec"), "--pidfile", str(tmp / "docker.pid"), "-H", f"unix://{sock}",
                 "--bridge", PRIVATE_BRIDGE, "--iptables=false", "--ip6tables=false", "--ip-masq=false"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        docker = ["docker", "-H", f"unix://{sock}"]
        wait_for(lambda: subprocess.run([*docker, "version"], capture_output=True).returncode == 0, 60)
        subprocess.run([*docker, "load", "-i", str(archive)], check=True, capture_output=True)
        ours.start()
        ours.docker("load", "-i", str(archive))
        yield str(sock), str(ours.socket)
    finally:
        ours.cleanup()
        if dockerd is not None:
            dockerd.terminate()
            dockerd.wait(60)
        sys.path.insert(0, str(ROOT / "bench"))
        from _peers import dockerd_bridges, remove_bridges
        remove_bridges({PRIVATE_BRIDGE, *dockerd_bridges(tmp / "docker")})  # dockerd keeps its networks' bridges
        with open("/proc/self/mountinfo") as f:  # dockerd's overlay mounts, deepest first
            points = sorted((line.split()[4] for line in f if line.split()[4].startswith(str(tmp))),
                            key=len, reverse=True)
        for point in points:
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oracle", help="the oracle daemon's unix socket (dockerd)")
    parser.add_argument("--expect", help="recorded oracle skeletons (instead of --oracle)")
    parser.add_argument("--ours", help="dockyardd's unix socket")
    parser.add_argument("--private", action="store_true", help="start a private dockerd and dockyardd (root)")
    parser.add_argument("--version", default="1.41", help="API version to pin ('' for unversioned paths)")
    parser.add_argument("--record", help="write the oracle's skeletons to this file")
    parser.add_argument("--swagger", help="also check our replies against moby's api/swagger.yaml")
    parser.add_argument("--all", action="store_true",
                        help="also show the differences newer dockerd shares and the known ones")
    args = parser.parse_args(argv)
    if args.private:
        with private_daemons() as (oracle, ours):
            rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--private"]
            return main([*rest, "--oracle", oracle, "--ours", ours])
    version = args.version or None
    oracle: dict[str, Step] = {}
    if args.oracle:
        oracle = Scenario(Api(args.oracle, version)).run()
        if args.record:
            with open(args.record, "w") as f:
                json.dump({"api_version": version, "steps": {k: v.as_json() for k, v in oracle.items()}},
                          f, indent=1, sort_keys=True)
                f.write("\n")
    elif args.expect:
        oracle = load(args.expect)
    if oracle and version is None or version and parse_version(version) > (1, 41):
        oracle = upgrade(oracle, parse_version(version or "1.45"))
    if not args.ours:
        return 0
    scenario = Scenario(Api(args.ours, version))
    ours = scenario.run()
    bad = 0
    if oracle:
        bad = report(oracle, ours, must_differ if args.all else accepted)
        print(f"{bad} of {len(oracle)} steps differ")
    if args.swagger:
        bad += swagger_report(Swagger(args.swagger), scenario.bodies)
    return 1 if bad else 0


def swagger_report(swagger: Swagger, bodies: dict[str, Any]) -> int:
    """Print, per step, where our replies leave the swagger's schemas; how many steps do."""
    bad = 0
    for name, body in bodies.items():
        schema = swagger.response(name)
        if schema is None or body is None:
            continue
        lines = [line for line in swagger.check(schema, body) if not must_differ(name, line)]
        if lines:
            bad += 1
            print(f"{name} (swagger):")
            for line in lines:
                print(f"    {line}")
    return bad


if __name__ == "__main__":
    sys.exit(main())
