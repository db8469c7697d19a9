"""Healthchecks against dockyardd: image HEALTHCHECK and --health-* flags (real docker CLI and the
dockyard CLI), State.Health, ps status and filter, health_status events, probes stopping with the
container and resuming after a daemon restart. Intervals are 200 ms to keep the tests fast."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.daemon import Dockyardd
from tests.test_api_containers import daemon, no_leftover_children, ok, pytestmark  # noqa: F401
from tests.test_cli import dy

FAST = ["--health-interval", "200ms", "--health-retries", "2", "--health-timeout", "1s"]


def health(d: Dockyardd, name: str) -> dict[str, Any]:
    return json.loads(ok(d, "inspect", "-f", "{{json .State.Health}}", name))


def until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def status(d: Dockyardd, name: str) -> str:
    return ok(d, "ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").strip()


def test_health_flags_status_and_events(daemon: Dockyardd) -> None:  # noqa: F811
    since = str(int(time.time()) - 1)
    ok(daemon, "run", "-d", "--name", "hc", *FAST, "--health-cmd", "test -e /tmp/ok && echo fine",
       "busybox", "sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 1000")
    config = json.loads(ok(daemon, "inspect", "-f", "{{json .Config.Healthcheck}}", "hc"))
    assert config == {"Test": ["CMD-SHELL", "test -e /tmp/ok && echo fine"], "Interval": 200_000_000,
                      "Timeout": 1_000_000_000, "Retries": 2}
    assert status(daemon, "hc").endswith("(health: starting)")
    until(lambda: health(daemon, "hc")["Status"] == "healthy")
    assert status(daemon, "hc").endswith("(healthy)")
    state = health(daemon, "hc")
    assert state["FailingStreak"] == 0 and state["Log"][-1]["Output"] == "fine\n" and state["Log"][-1]["ExitCode"] == 0
    assert set(state["Log"][-1]) == {"Start", "End", "ExitCode", "Output"}
    assert ok(daemon, "ps", "-q", "--filter", "health=healthy") != ""
    ok(daemon, "exec", "hc", "rm", "/tmp/ok")
    until(lambda: health(daemon, "hc")["Status"] == "unhealthy")
    state = health(daemon, "hc")
    assert state["FailingStreak"] >= 2 and len(state["Log"]) == 5 and state["Log"][-1]["ExitCode"] == 1
    assert status(daemon, "hc").endswith("(unhealthy)")
    assert ok(daemon, "ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").split() == ["hc"]
    assert ok(daemon, "ps", "--filter", "health=healthy", "-q") == ""
    proc = daemon.docker("ps", "--filter", "health=bogus")
    assert proc.returncode == 1 and "Unrecognised filter value for health: bogus" in proc.stderr
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", "container=hc", "--format", "{{.Action}}").splitlines()
    assert "health_status: healthy" in events and "health_status: unhealthy" in events
    ok(daemon, "stop", "-t", "0", "hc")
    count = len(health(daemon, "hc")["Log"])
    last = health(daemon, "hc")["Log"][-1]["Start"]
    time.sleep(0.6)
    assert health(daemon, "hc")["Log"][-1]["Start"] == last and len(health(daemon, "hc")["Log"]) == count
    ok(daemon, "start", "hc")  # probes again, from "starting"
    assert health(daemon, "hc")["Status"] == "starting"
    until(lambda: health(daemon, "hc")["Log"][-1]["Start"] != last)


def test_image_healthcheck_timeout_and_none(daemon: Dockyardd) -> None:  # noqa: F811
    ok(daemon, "create", "--name", "base", "busybox")
    ok(daemon, "commit", "-c", "HEALTHCHECK --interval=200ms --timeout=300ms --retries=1 CMD sleep 5", "base",
       "slowcheck:1")
    ok(daemon, "run", "-d", "--name", "slow", "slowcheck:1", "sleep", "1000")
    until(lambda: health(daemon, "slow")["Status"] == "unhealthy")
    entry = health(daemon, "slow")["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (300ms)"
    time.sleep(1)  # timed-out probes are killed: at most the current one runs
    assert len([p for p in daemon.client().containers.get("slow").top()["Processes"] if "sleep 5" in p[-1]]) <= 1
    # flags override the image's; --no-healthcheck disables it
    ok(daemon, "run", "-d", "--name", "fixed", "--health-cmd", "true", "slowcheck:1", "sleep", "1000")
    cfg = json.loads(ok(daemon, "inspect", "-f", "{{json .Config.Healthcheck}}", "fixed"))
    assert cfg["Test"] == ["CMD-SHELL", "true"] and cfg["Interval"] == 200_000_000 and cfg["Retries"] == 1
    until(lambda: health(daemon, "fixed")["Status"] == "healthy")
    proc = dy(daemon, "run", "-d", "--name", "none", "--no-healthcheck", "slowcheck:1", "sleep", "1000")
    assert proc.returncode == 0, proc.stderr
    assert ok(daemon, "inspect", "-f", "{{json .State.Health}}", "none").strip() == "null"
    assert status(daemon, "none").startswith("Up") and "health" not in status(daemon, "none")
    assert ok(daemon, "ps", "--filter", "health=none", "--format", "{{.Names}}").split() == ["none"]
    proc = dy(daemon, "run", "--no-healthcheck", "--health-cmd", "true", "busybox")
    assert proc.returncode == 125 and "--no-healthcheck conflicts with --health-* options" in proc.stderr
    proc = dy(daemon, "run", "-d", "--name", "ours", *FAST, "--health-cmd", "exit 3", "busybox", "sleep", "1000")
    assert proc.returncode == 0, proc.stderr
    until(lambda: health(daemon, "ours")["Status"] == "unhealthy")
    assert health(daemon, "ours")["Log"][-1]["ExitCode"] == 3
    ok(daemon, "rm", "-f", "slow", "fixed", "none", "ours", "base")
    ok(daemon, "rmi", "slowcheck:1")


def test_probes_resume_after_daemon_restart(daemon: Dockyardd) -> None:  # noqa: F811
    ok(daemon, "run", "-d", "--name", "kept", *FAST, "--health-cmd", "true", "busybox", "sleep", "1000")
    until(lambda: health(daemon, "kept")["Status"] == "healthy")
    daemon.stop()
    daemon.start()
    last = health(daemon, "kept")["Log"][-1]["Start"]
    until(lambda: health(daemon, "kept")["Log"][-1]["Start"] != last)
    until(lambda: health(daemon, "kept")["Status"] == "healthy")


def test_start_period_with_docker_py(daemon: Dockyardd) -> None:  # noqa: F811
    """Failures within the start period do not count (probes every start interval meanwhile)."""
    ms = 1_000_000
    client = daemon.client()
    container = client.containers.run("busybox", "sleep 1000", detach=True, name="period", healthcheck={
        "test": "echo x >> /counter.txt && test `wc -l < /counter.txt` -ge 3", "interval": 200 * ms,
        "timeout": 1000 * ms, "retries": 1, "start_period": 1000 * ms, "start_interval": 100 * ms})
    try:
        until(lambda: health(daemon, "period")["Status"] == "healthy")
        state = health(daemon, "period")
        assert [e["ExitCode"] for e in state["Log"]][:3] == [1, 1, 0] and state["FailingStreak"] == 0
        assert client.api.inspect_container("period")["Config"]["Healthcheck"]["Test"] == [
            "CMD-SHELL", "echo x >> /counter.txt && test `wc -l < /counter.txt` -ge 3"]
    finally:
        container.remove(force=True)
