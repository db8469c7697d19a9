"""SSH agents for `--ssh id=KEYFILE`: an `ssh-agent` holding the keys the client sent, on a
socket a RUN --mount=type=ssh step gets bound in; stopped by its PID after the build."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable


class AgentError(Exception):
    """The agent could not be started or refused a key."""


def start_agent(keys: list[bytes], directory: str) -> tuple[str, Callable[[], None]]:
    """An ssh-agent holding keys (private key files' contents), listening in directory:
    (its socket path, stop)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    sock = os.path.join(tempfile.mkdtemp(prefix="ssh-", dir=directory), "agent.sock")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    try:
        proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    except OSError as e:
        raise AgentError(f"cannot start ssh-agent: {e.strerror}") from None

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        try:
            os.rmdir(os.path.dirname(sock))
        except OSError:
            pass

    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AgentError("ssh-agent did not start")
            time.sleep(0.01)
        for i, key in enumerate(keys):
            added = subprocess.run(["ssh-add", "-q", "-"], input=key, capture_output=True, timeout=30,
                                   env={**env, "SSH_AUTH_SOCK": sock, "SSH_ASKPASS_REQUIRE": "never"})
            if added.returncode != 0:
                err = added.stderr.decode("utf-8", "replace").strip()
                raise AgentError(f"ssh key {i + 1} was refused (a key with a passphrase cannot be used): {err}")
    except BaseException:
        stop()
        raise
    return sock, stop
