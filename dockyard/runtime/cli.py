"""`dockyard-runtime`: the OCI runtime command line, as runc's (create, start, state, kill, ...)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from dockyard.runtime.errors import RuntimeFailure
from dockyard.runtime.state import DEFAULT_ROOT, StateStore, now_rfc3339


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard-runtime", description="OCI runtime of dockyard")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory (default %(default)s)")
    p.add_argument("--log", help="log file for errors (as runc: containerd reads it)")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="not supported: refused")
    p.add_argument("--cgroup-manager", choices=("cgroupfs", "systemd"), default="cgroupfs")
    p.add_argument("--criu", help=argparse.SUPPRESS)
    p.add_argument("--rootless", help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, help_text: str, *aliases: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, aliases=list(aliases))

    for name, text in (("create", "create a container"), ("run", "create and start a container")):
        c = cmd(name, text)
        c.add_argument("id")
        c.add_argument("-b", "--bundle", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")
        c.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            c.add_argument("-d", "--detach", action="store_true")
            c.add_argument("--keep", action="store_true")
    for name, text in (("start", "start a created container"), ("state", "print a container's state"),
                       ("pause", "freeze every process of a container"),
                       ("resume", "thaw a paused container")):
        cmd(name, text).add_argument("id")
    c = cmd("kill", "send a signal to a container")
    c.add_argument("id")
    c.add_argument("signal", nargs="?", default="SIGTERM")
    c.add_argument("-a", "--all", action="store_true")
    c = cmd("delete", "delete a container", "rm")
    c.add_argument("id")
    c.add_argument("-f", "--force", action="store_true")
    c = cmd("exec", "run a process in a running container")
    c.add_argument("-p", "--process")
    c.add_argument("-t", "--tty", action="store_true")
    c.add_argument("--console-socket")
    c.add_argument("--cwd")
    c.add_argument("-e", "--env", action="append", default=[])
    c.add_argument("-u", "--user")
    c.add_argument("-g", "--additional-gids", action="append", default=[])
    c.add_argument("-c", "--cap", action="append", default=[], dest="caps")
    c.add_argument("--no-new-privs", action="store_true")
    c.add_argument("-d", "--detach", action="store_true")
    c.add_argument("--pid-file")
    c.add_argument("--preserve-fds", type=int, default=0)
    c.add_argument("--process-label", help=argparse.SUPPRESS)
    c.add_argument("--apparmor", help=argparse.SUPPRESS)
    c.add_argument("--cgroup", help=argparse.SUPPRESS)
    c.add_argument("id")
    c.add_argument("args", nargs=argparse.REMAINDER)
    c = cmd("list", "list containers", "ls")
    c.add_argument("-f", "--format", choices=("table", "json"), default="table")
    c.add_argument("-q", "--quiet", action="store_true")
    c = cmd("ps", "list the processes of a container")
    c.add_argument("-f", "--format", choices=("table", "json"), default="table")
    c.add_argument("id")
    c.add_argument("ps_args", nargs=argparse.REMAINDER)
    c = cmd("update", "change a container's resource limits")
    c.add_argument("id")
    c.add_argument("-r", "--resources", help="linux.resources JSON file, '-' for stdin")
    for flag in ("memory", "memory-reservation", "memory-swap", "cpu-shares", "cpu-quota", "cpu-period",
                 "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems", "pids-limit",
                 "blkio-weight", "kernel-memory", "kernel-memory-tcp", "l3-cache-schema", "mem-bw-schema"):
        c.add_argument(f"--{flag}")
    cmd("features", "print the features this runtime supports")
    c = cmd("spec", "write a default config.json")
    c.add_argument("-b", "--bundle", default=".")
    c.add_argument("--rootless", action="store_true")
    c = cmd("events", "print container events (--stats: one resource snapshot)")
    c.add_argument("--stats", action="store_true")
    c.add_argument("--interval", default="5s")
    c.add_argument("id")
    return p


def _log_error(args: argparse.Namespace, message: str) -> None:
    sys.stderr.write(f"dockyard-runtime: {message}\n")
    if getattr(args, "log", None):
        try:
            with open(args.log, "a") as f:
                if args.log_format == "json":
                    f.write(json.dumps({"level": "error", "msg": message, "time": now_rfc3339()}) + "\n")
                else:
                    f.write(f'time="{now_rfc3339()}" level=error msg={json.dumps(message)}\n')
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from dockyard.runtime.commands import version

        return version()
    if not args.command:
        parser.print_help()
        return 0
    try:
        if args.systemd_cgroup or args.cgroup_manager == "systemd":
            raise RuntimeFailure("the systemd cgroup driver is not supported: use cgroupfs")
        from dockyard.runtime import commands

        handler: Any = getattr(commands, "cmd_" + {"rm": "delete", "ls": "list"}.get(args.command, args.command))
        return handler(StateStore(os.path.abspath(args.root)), args) or 0
    except RuntimeFailure as e:
        _log_error(args, str(e))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
