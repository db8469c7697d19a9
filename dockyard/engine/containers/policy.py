"""Exit handling helpers: restart policies and their back-off, signal names."""

from __future__ import annotations

import signal as _signal
from typing import Any

from dockyard.engine.containers.errors import InvalidParameter

BACKOFF_START = 0.1  # seconds; doubled after each quick exit, as dockerd's restart manager does
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0  # a container that ran this long starts again from BACKOFF_START
POLICIES = {"", "no", "always", "on-failure", "unless-stopped"}


def parse_signal(sig: str | int | None, default: int = _signal.SIGTERM) -> int:
    """"SIGTERM", "TERM", "term", "15" or 15 -> 15."""
    if sig in (None, ""):
        return default
    if isinstance(sig, int) or str(sig).isdigit():
        number = int(sig)
    else:
        name = str(sig).upper()
        name = name if name.startswith("SIG") else "SIG" + name
        number = getattr(_signal.Signals, name, None) or 0
        number = int(number)
    if not 0 < number < 65:
        raise InvalidParameter(f"Invalid signal: {sig}")
    return number


def validate_restart_policy(hc: dict[str, Any]) -> None:
    """Docker's create-time checks on RestartPolicy."""
    policy = hc.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    if name not in POLICIES:
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if policy.get("MaximumRetryCount") and name != "on-failure":
        raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if policy.get("MaximumRetryCount", 0) < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    if hc.get("AutoRemove") and name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")


def should_restart(hc: dict[str, Any], exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
    """Whether the restart policy brings the container back after this exit."""
    policy = hc.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if manually_stopped or name == "no":
        return False
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return True


def start_at_daemon_start(record: dict[str, Any]) -> bool:
    """Whether a container that is not running when the daemon starts is started by its restart
    policy, as dockerd's restore does: always (even after a manual stop), unless-stopped unless
    stopped by hand, on-failure after a non-zero exit with retries left; only once started before."""
    hc = record["HostConfig"]
    always = ((hc.get("RestartPolicy") or {}).get("Name") or "no") == "always"
    return bool(record.get("HasBeenStartedBefore")) and should_restart(
        hc, record["State"]["ExitCode"], record.get("RestartCount", 0),
        bool(record.get("HasBeenManuallyStopped")) and not always)


def next_backoff(previous: float, ran_for: float) -> float:
    """Delay before the next restart."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_MAX)
