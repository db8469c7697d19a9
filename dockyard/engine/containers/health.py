"""Healthchecks (HEALTHCHECK / --health-*): a probe thread per running container that has one,
running the test as an exec in the container every interval and keeping State.Health as Docker
does (Status starting/healthy/unhealthy, FailingStreak, the last 5 results), with a
`health_status: <status>` event at each change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockyard.engine.containers.errors import NotFound
from dockyard.engine.containers.logs import parse_time
from dockyard.shim.logs import rfc3339nano

if TYPE_CHECKING:
    from dockyard.engine.containers.execs import ExecService
    from dockyard.engine.containers.service import ContainerService

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
_FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def merge(container: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's Healthcheck with the image's filling what it leaves unset (as dockerd)."""
    if not container:
        return dict(image) if image else None
    out = dict(container)
    if image:
        if not out.get("Test"):
            out["Test"] = image.get("Test")
        for key in _FIELDS:
            if not out.get(key) and image.get(key):
                out[key] = image[key]
    return out


def probe_command(config: dict[str, Any]) -> list[str] | None:
    """The argv of the container's probe, None when it has none (no test, or ["NONE"])."""
    test = list((config.get("Healthcheck") or {}).get("Test") or [])
    if not test or test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        return None  # none, NONE, or an unknown type (dockerd only warns about it)
    return [*(config.get("Shell") or ["/bin/sh", "-c"]), *test[1:]] if test[0] == "CMD-SHELL" else test[1:]


def go_duration(ns: int) -> str:
    """A duration as Go prints it for whole or fractional seconds and milliseconds ("30s", "500ms")."""
    if ns < SECOND:
        return f"{ns // 1_000_000}ms"
    minutes, seconds = divmod(ns / SECOND, 60)
    text = f"{seconds:g}s"
    return f"{int(minutes)}m{text}" if minutes else text


class HealthMonitor:
    """Probe threads of a daemon's containers; `update(cid, running)` follows their lifecycle."""

    def __init__(self, containers: ContainerService, execs: ExecService,
                 publish: Callable[[dict[str, Any], str], None]) -> None:
        self.containers = containers
        self.execs = execs
        self.publish = publish
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def update(self, cid: str, running: bool) -> None:
        """The container started (or was found running) or stopped: (re)start or stop its probes."""
        with self.containers.locked(cid), self._lock:  # always in this order (the service calls in with it)
            old = self._stops.pop(cid, None)
            if old is not None:
                old.set()
            if not running:
                return
            record = self.containers.store.get(cid)
            if probe_command(record["Config"]) is None:
                return
            health = record["State"].get("Health") or {"Log": []}
            record["State"]["Health"] = {**health, "Status": "starting", "FailingStreak": 0}
            self.containers._save(record)
            stop = self._stops[cid] = threading.Event()
        threading.Thread(target=self._run, args=(cid, stop), name=f"health-{cid[:12]}", daemon=True).start()

    def close(self) -> None:
        """Stop every probe thread (the daemon is going away)."""
        with self._lock:
            for stop in self._stops.values():
                stop.set()
            self._stops.clear()

    def _run(self, cid: str, stop: threading.Event) -> None:
        try:
            record = self.containers.store.get(cid)
        except NotFound:
            return
        hc = record["Config"]["Healthcheck"]
        started = parse_time(record["State"]["StartedAt"]) / 1e9
        start_period = (hc.get("StartPeriod") or DEFAULT_START_PERIOD) / SECOND
        interval = (hc.get("Interval") or DEFAULT_INTERVAL) / SECOND
        start_interval = (hc.get("StartInterval") or DEFAULT_START_INTERVAL) / SECOND
        status = "starting"

        def delay() -> float:
            """dockerd's: the start interval while starting within the start period, which is
            never overrun; the interval otherwise."""
            left = start_period - (time.time() - started)
            if left <= 0:
                return interval
            return left if left < interval else start_interval if status == "starting" else interval

        while not stop.wait(delay()):
            status = self._probe(cid, record["Config"], hc, started, stop) or status

    def _probe(self, cid: str, config: dict[str, Any], hc: dict[str, Any], started: float,
               stop: threading.Event) -> str | None:
        """Run the probe once and record its result; the new status (None when nothing ran)."""
        timeout = hc.get("Timeout") or DEFAULT_TIMEOUT
        begin = time.time_ns()
        result = self.execs.run(cid, probe_command(config) or [], timeout / SECOND, MAX_OUTPUT + 1)
        if result is None:
            try:
                self.containers.store.get(cid)
            except NotFound:  # removed (its exit is then not handled): end this thread
                with self._lock:
                    if self._stops.get(cid) is stop:
                        del self._stops[cid]
                stop.set()
            return None
        if stop.is_set():
            return None
        code, output = result
        text = output[:MAX_OUTPUT].decode(errors="replace") + ("..." if len(output) > MAX_OUTPUT else "")
        if code == -1:
            text = f"Health check exceeded timeout ({go_duration(timeout)})" + (f": {text}" if text else "")
        entry = {"Start": rfc3339nano(begin), "End": rfc3339nano(), "ExitCode": code, "Output": text}
        with self.containers.locked(cid):
            if stop.is_set():
                return None
            try:
                record = self.containers.store.get(cid)
            except NotFound:
                return None
            health = record["State"]["Health"]
            old = health["Status"]
            health["Log"] = [*(health.get("Log") or [])[-(MAX_LOG_ENTRIES - 1):], entry]
            if code == 0:
                health.update(Status="healthy", FailingStreak=0)
            elif old != "starting" or begin / 1e9 - started >= (hc.get("StartPeriod") or 0) / SECOND:
                health["FailingStreak"] = health.get("FailingStreak", 0) + 1
                if health["FailingStreak"] >= (hc.get("Retries") or DEFAULT_RETRIES):
                    health["Status"] = "unhealthy"
            self.containers._save(record)
        if health["Status"] != old:
            self.publish(record, f"health_status: {health['Status']}")
        return health["Status"]
