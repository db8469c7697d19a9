"""The detached shim process: a fresh, lean interpreter exec'd by main.py.

It becomes a child subreaper, creates the container (and with the start option starts it, adding
"started_at"), reports {"pid", "socket", "shim_pid"} or {"error"} on the sync pipe, then runs the
monitor until the exit is recorded. It imports only what
the monitor needs, since one of these runs per container.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

from dockyard.shim import protocol
from dockyard.shim.logs import JsonFileWriter
from dockyard.shim.monitor import Monitor
from dockyard.shim.oci import OciRuntime, RuntimeFailed
from dockyard.shim.startup import create, force_delete, unix_listener

PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36


def run(sync_fd: int, options: str) -> None:
    """Entry point: options is the JSON of main.py's parsed command line; never returns."""
    code = 1
    try:
        os.set_inheritable(sync_fd, False)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, b"dockyard-shim", 0, 0, 0)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        code = _serve(json.loads(options), sync_fd)
    except BaseException:
        import traceback  # only here: the shim's resident size matters

        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _report(sync_fd: int, message: dict[str, object]) -> None:
    os.write(sync_fd, json.dumps(message).encode())
    os.close(sync_fd)


def _serve(opts: dict, sync_fd: int) -> int:
    state = opts["state_dir"]
    sock_path = os.path.join(state, protocol.SOCKET_NAME)
    log_path = opts["log_path"]
    runtime = OciRuntime(opts["runtime"], opts["runtime_root"], opts["runtime_arg"], state,
                         in_process=bool(opts.get("runtime_in_process")))
    try:
        os.unlink(os.path.join(state, protocol.EXIT_FILE))
    except FileNotFoundError:
        pass
    new_log = not os.path.exists(log_path)
    listener = logger = None
    try:
        listener = unix_listener(sock_path)
        logger = JsonFileWriter(log_path, opts["log_max_size"], opts["log_max_file"])
        pid, stdio = create(runtime, opts["id"], opts["bundle"], os.path.join(state, "init.pid"), opts["stdin"],
                            opts["tty"], os.path.join(state, "console.sock"))
        monitor = Monitor(opts["id"], runtime, pid, stdio, listener, logger, state, opts["delete_on_exit"],
                          opts["bundle"])
        report: dict[str, object] = {"pid": pid, "socket": sock_path, "shim_pid": os.getpid()}
        if opts.get("start"):  # started at once: nobody needs the created state (no attach to connect first)
            try:
                report["started_at"] = monitor.start()
            except RuntimeFailed:
                force_delete(runtime, opts["id"])
                raise
    except (RuntimeFailed, OSError) as exc:
        if listener is not None:
            listener.close()
            os.unlink(sock_path)
        if logger is not None:
            logger.close()
            if new_log:
                os.unlink(log_path)
        _report(sync_fd, {"error": str(exc)})
        return 1
    _report(sync_fd, report)
    monitor.run()
    return 0
