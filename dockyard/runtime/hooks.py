"""Running OCI hooks: each gets the container state as JSON on stdin, within its timeout."""

from __future__ import annotations

import time

from dockyard.runtime import jsonfast
from dockyard.runtime import oslite as os
from dockyard.runtime.errors import RuntimeFailure

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any


def run_hook(hook: dict[str, Any], state: dict[str, Any], kind: str) -> None:
    """Execute one hook and wait for it; a non-zero exit or a timeout is a RuntimeFailure."""
    path = hook["path"]
    args = hook.get("args") or [path]
    env = hook.get("env") or []
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: stdin from the pipe, then exec
        try:
            os.close(w)
            os.dup2(r, 0)
            os.execve(path, args, dict(e.split("=", 1) for e in env if "=" in e))
        except BaseException as e:  # noqa: BLE001 - report anything before exec
            os.write(2, f"{kind} hook {path}: {e}\n".encode())
        os._exit(127)
    os.close(r)
    try:
        os.write(w, jsonfast.dumps(state).encode())
    except BrokenPipeError:
        pass
    finally:
        os.close(w)
    timeout = hook.get("timeout")
    deadline = time.monotonic() + timeout if timeout else None
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)  # SIGKILL
            os.waitpid(pid, 0)
            raise RuntimeFailure(f"{kind} hook {path} timed out after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeFailure(f"{kind} hook {path} failed with exit status {code}")


def has_runtime_hooks(config: dict[str, Any]) -> bool:
    """Whether the config has prestart or createRuntime hooks: the runtime runs them between the
    init's mounts and its pivot_root, the only point where the init must wait for the runtime."""
    hooks = config.get("hooks") or {}
    return bool(hooks.get("prestart") or hooks.get("createRuntime"))


def run_hooks(config: dict[str, Any], kind: str, state: dict[str, Any], fatal: bool = True) -> None:
    """Run every hook of a kind in order; non-fatal kinds only warn on stderr."""
    for hook in (config.get("hooks") or {}).get(kind) or []:
        try:
            run_hook(hook, state, kind)
        except (RuntimeFailure, OSError) as e:
            if fatal:
                raise RuntimeFailure(str(e)) from None
            os.write(2, f"warning: {e}\n".encode())
