"""dockyard-shim: the per-container monitor.

The foreground command forks a detached shim (new session, double fork, then exec of a lean
interpreter running daemon.py) and waits on a pipe: the shim creates the container and reports
{"pid", "socket", "shim_pid"} (printed as JSON, exit 0) or the runtime's error (printed to stderr,
exit 1). The shim then serves its control socket and records the container's exit in
<state-dir>/exit.json. Its own diagnostics go to <state-dir>/shim.log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

# what the exec'd interpreter runs: argv is [-c, project root, sync fd, options as JSON]
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from dockyard.shim import daemon; "
         "daemon.run(int(sys.argv[2]), sys.argv[3])")


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
    p.add_argument("--delete-on-exit", action="store_true", help="run `runtime delete` after the exit")
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
    os.makedirs(opts.state_dir, mode=0o700, exist_ok=True)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _daemon(opts, write_fd)
    os.close(write_fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    try:
        report = json.loads(data)
    except ValueError:
        report = {"error": f"dockyard-shim died during start-up (see {opts.state_dir}/shim.log)"}
    if "error" in report:
        print(report["error"], file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


def _daemon(opts: argparse.Namespace, sync_fd: int) -> None:
    """The forked child: detach (new session, second fork) and exec the lean shim; never returns."""
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        _redirect_stdio(opts.state_dir, sync_fd)
        os.chdir("/")
        os.set_inheritable(sync_fd, True)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        # -I -S: no site-packages, no environment: a smaller interpreter per container
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _BOOT, root, str(sync_fd),
                                  json.dumps(vars(opts))])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)


def _redirect_stdio(state_dir: str, keep: int) -> None:
    """stdin/stdout to /dev/null, stderr to shim.log; close every other inherited fd but keep."""
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(state_dir, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
