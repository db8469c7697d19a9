"""Running one command: parse its flags, call it with a `Cli` context, and turn errors into
docker's messages and exit codes."""

from __future__ import annotations

import os
import sys

from dockyard.cli.flags import Command, UsageError
from dockyard.cli.main import DEFAULT_HOST, PROG
from dockyard.client import http
from dockyard.client.api import APIError, Client


class CommandError(Exception):
    """A failure the command reports itself: message for stderr, exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Cli:
    """What a command gets: the API client, output streams, and its own name for messages."""

    def __init__(self, host: str, name: str) -> None:
        self.host = host
        self.name = name
        self.client = Client(host)
        self.out = sys.stdout
        self.err = sys.stderr

    def write(self, text: str) -> None:
        self.out.write(text)

    def error(self, text: str) -> None:
        self.out.flush()
        self.err.write(text.rstrip("\n") + "\n")


def site_packages() -> None:
    """Turn on site-packages for a command that needs third-party packages (compose, the registry
    server): the launcher starts Python without site processing, for a fast start-up."""
    import site
    site.main()


def may_autostart(host: str) -> bool:
    """Whether a failed connection to host starts dockyardd: the default socket is absent, we are
    root, and DOCKYARD_NO_AUTOSTART is not 1."""
    return (host == DEFAULT_HOST and not os.path.exists(host.removeprefix("unix://")) and os.geteuid() == 0
            and os.environ.get("DOCKYARD_NO_AUTOSTART") != "1")


def autostart(host: str) -> bool:
    """Start dockyardd in the background when may_autostart(host); True if it was started and
    answers."""
    path = host.removeprefix("unix://")
    if not may_autostart(host):
        return False
    import subprocess
    import time
    daemon = os.path.join(os.path.dirname(sys.executable), "dockyardd")
    argv = [daemon] if os.path.exists(daemon) else [sys.executable, "-m", "dockyard.engine.daemon"]
    sys.stderr.write(f"{PROG}: {path} is absent: starting dockyardd in the background "
                     "(log: /var/log/dockyardd.log; DOCKYARD_NO_AUTOSTART=1 to opt out)\n")
    with open("/var/log/dockyardd.log", "ab") as log:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http.request(host, "HEAD", "/_ping", timeout=2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def run_command(where: tuple[str, str], name: str, argv: list[str], host: str) -> int:
    """Parse argv for the command and run it; docker's error texts and exit codes."""
    path = f"dockyard.cli.commands.{where[0]}"
    __import__(path)  # importlib's package costs an import of its own
    module = sys.modules[path]
    command: Command = module.COMMANDS[where[1]]
    prog = f"{PROG} {name}"
    usage = f"\nUsage:  {prog} {command.usage}\n\n%s '{prog} --help' for more information\n"
    try:
        opts, args = command.parse(argv)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n{usage % 'Run'}")
        return 125
    if opts.help:
        sys.stdout.write(command.help(prog))
        return 0
    if len(args) < command.min_args or (command.max_args is not None and len(args) > command.max_args):
        problem, see = _arity(command)
        sys.stderr.write(f"{PROG}: '{prog}' {problem}\n{usage % see}")
        return 1
    cli = Cli(host, name)
    error_code = getattr(module, "ERROR_CODES", {}).get(where[1], 1)
    prefix = f"{PROG}: " if error_code == 125 else ""
    suffix = f"\n\nRun '{prog} --help' for more information" if error_code == 125 else ""
    for attempt in (0, 1):
        try:
            return command.run(cli, opts, args)
        except http.ConnectError:
            if attempt == 0 and autostart(host):
                continue
            cli.error(f"{prefix}Cannot connect to the dockyard daemon at {host}. Is the dockyard daemon running?{suffix}")
            return error_code
        except APIError as exc:
            cli.error(f"{prefix}Error response from daemon: {exc.message}{suffix}")
            return error_code
        except UsageError as exc:
            cli.error(f"{prefix}{exc}{suffix}")
            return 125
        except CommandError as exc:
            cli.error(str(exc))
            return exc.code
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return 0
        except Exception as exc:
            # a template error can only come from a command that imported the template engine:
            # looked up here rather than imported by every command (~0.5 ms of each `exec`)
            templates = sys.modules.get("dockyard.cli.gotemplate")
            if templates is None or not isinstance(exc, templates.TemplateError):
                raise
            cli.error(str(exc))
            return exc.code
    return error_code


def _arity(command: Command) -> tuple[str, str]:
    """docker's complaint about the number of arguments, and the verb of its last line ('SRun' is
    docker's own typo for at-most counts, kept: scripts match the text)."""
    least, most = command.min_args, command.max_args
    if most == 0:
        return "accepts no arguments", "Run"
    if most == least:
        return f"requires {least} argument{'s' if least != 1 else ''}", "Run"
    if most is None:
        return f"requires at least {least} argument{'s' if least != 1 else ''}", "See"
    if least == 0:
        return f"requires at most {most} argument{'s' if most != 1 else ''}", "SRun"
    return f"requires at least {least} and at most {most} argument{'s' if most != 1 else ''}", "Run"
