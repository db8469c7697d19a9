"""Restart policies at daemon start: containers whose shim and init died while dockyardd was down
(a host reboot) and stopped ones are started again as dockerd's restore does."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from tests.daemon import Dockyardd
from tests.test_api_containers import daemon, no_leftover_children, ok, pytestmark  # noqa: F401


def _kill_shim_and_init(pid: int) -> None:
    """SIGKILL a container's shim (the parent of its init), then its init."""
    with open(f"/proc/{pid}/stat") as f:
        shim = int(f.read().rsplit(")", 1)[1].split()[1])
    os.kill(shim, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    for child in (shim, pid):  # both are reparented to pytest, a subreaper: reap them
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)


def state(d: Dockyardd, name: str) -> tuple[str, str]:
    """(status, pid) of a container."""
    status, pid = ok(d, "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", name).split()
    return status, pid


def test_restart_policies_at_daemon_start(daemon: Dockyardd) -> None:  # noqa: F811
    for name, policy in (("always", "always"), ("unless", "unless-stopped"), ("onfail", "on-failure:2"),
                         ("never", "no"), ("always-stopped", "always"), ("unless-stopped", "unless-stopped")):
        ok(daemon, "run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "1000")
    ok(daemon, "stop", "-t", "0", "always-stopped", "unless-stopped")
    ok(daemon, "run", "-d", "--name", "onfail-done", "--restart", "on-failure:1", "busybox", "sh", "-c", "exit 3")
    deadline = time.monotonic() + 10  # one restart, then its retries are used up
    while ok(daemon, "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "onfail-done").split() != ["1", "exited"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    before = {name: state(daemon, name)[1] for name in ("always", "unless", "onfail", "never")}
    daemon.stop()
    for name in ("always", "unless", "onfail", "never"):
        _kill_shim_and_init(int(before[name]))
    daemon.start()
    deadline = time.monotonic() + 15
    wanted = {"always", "unless", "onfail", "always-stopped"}
    while {n for n in wanted if state(daemon, n)[0] == "running"} != wanted:
        assert time.monotonic() < deadline, {n: state(daemon, n) for n in wanted}
        time.sleep(0.1)
    for name in ("always", "unless", "onfail"):
        assert state(daemon, name)[1] != before[name]
    assert ok(daemon, "exec", "always", "echo", "alive") == "alive\n"
    assert state(daemon, "never")[0] == "exited"
    assert ok(daemon, "inspect", "-f", "{{.State.ExitCode}}", "never").strip() == "255"
    assert state(daemon, "unless-stopped")[0] == "exited"
    assert state(daemon, "onfail-done")[0] == "exited"
    assert "always-stopped" in ok(daemon, "ps", "--format", "{{.Names}}").split()
