"""docker top and docker stats against dockyardd: the real docker CLI, docker-py and the dockyard
CLI on a private daemon (tests/daemon.py)."""

from __future__ import annotations

import json
import re

from tests.daemon import Dockyardd
from tests.test_api_containers import daemon, no_leftover_children, ok, pytestmark  # noqa: F401
from tests.test_cli import dy, same

STATS_HEADER = ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%", "NET", "I/O",
                "BLOCK", "I/O", "PIDS"]


def test_top(daemon: Dockyardd) -> None:  # noqa: F811
    ok(daemon, "run", "-d", "--name", "topc", "busybox", "sh", "-c", "sleep 1000 & exec sleep 999")
    lines = ok(daemon, "top", "topc").splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert sorted(line.split(None, 7)[7] for line in lines[1:]) == ["sleep 1000", "sleep 999"]
    aux = ok(daemon, "top", "topc", "aux").splitlines()
    assert aux[0].split()[:2] == ["USER", "PID"] and len(aux) == 3
    assert same(daemon, "top", "topc", "-o", "pid,comm", stderr=True).stdout.split()[:2] == ["PID", "COMMAND"]
    same(daemon, "top", "nosuch", stderr=True)
    top = daemon.client().containers.get("topc").top()
    assert top["Titles"][1] == "PID" and len(top["Processes"]) == 2
    assert "sleep 999" in [p[-1] for p in top["Processes"]]
    ok(daemon, "create", "--name", "idle", "busybox", "true")
    proc = daemon.docker("top", "idle")
    assert proc.returncode == 1 and "is not running" in proc.stderr
    proc = daemon.docker("top", "nosuch")
    assert proc.returncode == 1 and "No such container: nosuch" in proc.stderr


def test_stats(daemon: Dockyardd) -> None:  # noqa: F811
    cid = ok(daemon, "run", "-d", "--name", "busy", "-m", "64m", "busybox", "sh", "-c",
             "dd if=/dev/zero of=/tmp/f bs=1M count=8; while :; do :; done").strip()
    ok(daemon, "create", "--name", "stopped", "busybox", "true")
    status, _, body = daemon.request("GET", "/v1.45/containers/busy/stats?stream=0")
    doc = json.loads(body)
    assert status == 200 and doc["id"] == cid and doc["name"] == "/busy"
    for key in ("read", "preread", "cpu_stats", "precpu_stats", "memory_stats", "pids_stats", "blkio_stats"):
        assert key in doc, key
    cpu, pre = doc["cpu_stats"], doc["precpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0 and cpu["online_cpus"] >= 1
    assert set(cpu["cpu_usage"]) >= {"usage_in_kernelmode", "usage_in_usermode"} and "throttling_data" in cpu
    assert doc["memory_stats"]["limit"] == 64 * 1024 * 1024 and doc["memory_stats"]["usage"] > 0
    assert doc["pids_stats"]["current"] == 1
    one = json.loads(daemon.request("GET", "/containers/busy/stats?stream=false&one-shot=true")[2])
    assert one["precpu_stats"]["cpu_usage"]["total_usage"] == 0 and one["preread"].startswith("0001-")
    idle = json.loads(daemon.request("GET", "/containers/stopped/stats?stream=0")[2])
    assert idle["read"].startswith("0001-") and idle["name"] == "/stopped"
    assert daemon.request("GET", "/containers/nosuch/stats?stream=0")[0] == 404
    status, _, body = daemon.request("GET", "/containers/busy/stats?one-shot=1")
    assert status == 400 and json.loads(body)["message"] == "cannot have stream=true and one-shot=true"

    streamed = daemon.client().api.stats("busy", decode=True, stream=True)
    first, second = next(streamed), next(streamed)
    streamed.close()
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
    assert daemon.client().containers.get("busy").stats(stream=False)["id"] == cid

    for out in (ok(daemon, "stats", "--no-stream"), dy(daemon, "stats", "--no-stream").stdout):
        lines = out.splitlines()
        assert lines[0].split() == STATS_HEADER
        row = next(line for line in lines if line.startswith(cid[:12])).split()
        assert row[1] == "busy" and row[4:6] == ["/", "64MiB"] and row[-1] == "1", row
        assert re.fullmatch(r"\d+\.\d\d%", row[2]) and float(row[2][:-1]) > 10, row  # a busy loop
        assert row[8] == "/" and all(re.fullmatch(r"[\d.]+k?B", v) for v in (row[7], row[9])), row  # eth0
    assert "stopped" in dy(daemon, "stats", "-a", "--no-stream").stdout
    assert dy(daemon, "stats", "--no-stream", "--format", "{{.Name}}:{{.PIDs}}", "busy").stdout == "busy:1\n"
    fields = json.loads(dy(daemon, "stats", "--no-stream", "--format", "json", "busy").stdout)
    assert list(fields) == sorted(fields) == list(json.loads(ok(daemon, "stats", "--no-stream", "--format", "json",
                                                                  "busy")))
    proc = dy(daemon, "stats", "--no-stream", "nosuch")
    assert proc.returncode == 1 and "No such container: nosuch" in proc.stderr
