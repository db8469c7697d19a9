"""dockyard-shim: the per-container monitor.

The foreground command starts a detached shim (a lean interpreter running daemon.py in a new
session, see client.launch_shim) and waits on a pipe: the shim creates the container (and with
--start starts it) and reports {"pid", "socket", "shim_pid"[, "started_at"]} (printed as JSON, exit
0) or the runtime's error (printed to stderr, exit 1). The shim then serves its control socket
and records the container's exit in <state-dir>/exit.json. Its own diagnostics go to
<state-dir>/shim.log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from dockyard.shim.client import ShimError, launch_shim


def _default_runtime() -> str:
    """dockyard-runtime beside this interpreter (the project's venv), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "dockyard-runtime")
    return beside if os.access(beside, os.X_OK) else "dockyard-runtime"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; paths are made absolute (the shim runs in /)."""
    p = argparse.ArgumentParser(prog="dockyard-shim", description="Monitor one OCI container.")
    p.add_argument("--id", required=True, help="container id, as given to the runtime")
    p.add_argument("--bundle", required=True, help="OCI bundle directory")
    p.add_argument("--state-dir", required=True, help="directory for shim.sock, exit.json, init.pid, shim.log")
    p.add_argument("--runtime", default=_default_runtime(),
                   help="OCI runtime binary, path or name on PATH (default: dockyard-runtime)")
    p.add_argument("--runtime-root", help="passed to the runtime as --root")
    p.add_argument("--runtime-arg", action="append", default=[], metavar="ARG",
                   help="extra global runtime option (repeatable; write --runtime-arg=--flag)")
    p.add_argument("--log-path", required=True, help="json-file log")
    p.add_argument("--log-max-size", type=int, default=-1, metavar="BYTES", help="rotate past this size")
    p.add_argument("--log-max-file", type=int, default=1, metavar="N", help="log files kept, FILE included")
    p.add_argument("--stdin", action="store_true", help="give the container a stdin pipe")
    p.add_argument("--tty", action="store_true", help="use a pty from the runtime's console socket")
    p.add_argument("--start", action="store_true", help="start the container as soon as it is created")
    p.add_argument("--delete-on-exit", action="store_true", help="run `runtime delete` when the container exits, before recording the exit")
    opts = p.parse_args(argv)
    for name in ("bundle", "state_dir", "log_path", "runtime_root"):
        if getattr(opts, name):
            setattr(opts, name, os.path.abspath(getattr(opts, name)))
    if os.sep in opts.runtime:
        opts.runtime = os.path.abspath(opts.runtime)
    return opts


def main(argv: list[str] | None = None) -> int:
    """Launch a detached shim and report its result; the exit status says whether create worked."""
    opts = parse_args(argv)
    try:
        info = launch_shim(opts.id, opts.bundle, opts.state_dir, opts.runtime, opts.log_path,
                           runtime_root=opts.runtime_root, runtime_args=tuple(opts.runtime_arg), stdin=opts.stdin,
                           tty=opts.tty, log_max_size=opts.log_max_size, log_max_file=opts.log_max_file,
                           delete_on_exit=opts.delete_on_exit, start=opts.start)
    except ShimError as e:
        print(e, file=sys.stderr)
        return 1
    report = {"pid": info.pid, "socket": info.socket, "shim_pid": info.shim_pid}
    print(json.dumps({**report, "started_at": info.started_at} if info.started_at else report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
