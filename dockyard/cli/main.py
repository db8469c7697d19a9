"""`dockyard`: the user CLI, docker's commands, flags, output and exit codes over the Engine API.
Command modules are imported only when their command runs, so start-up stays small."""

from __future__ import annotations

import os
import sys

VERSION = "0.1.0"
PROG = "dockyard"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"

# command words → (module under dockyard.cli.commands, command name in its COMMANDS table)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("version",): ("system", "version"), ("info",): ("system", "info"),
    ("system", "info"): ("system", "info"), ("system", "df"): ("system", "df"),
    ("system", "prune"): ("system", "prune"),
    ("events",): ("system", "events"), ("system", "events"): ("system", "events"),
    ("images",): ("images", "ls"), ("image", "ls"): ("images", "ls"), ("image", "list"): ("images", "ls"),
    ("image", "inspect"): ("images", "inspect"), ("history",): ("images", "history"),
    ("image", "history"): ("images", "history"), ("tag",): ("images", "tag"), ("image", "tag"): ("images", "tag"),
    ("rmi",): ("images", "rm"), ("image", "rm"): ("images", "rm"), ("image", "remove"): ("images", "rm"),
    ("image", "prune"): ("images", "prune"), ("save",): ("images", "save"), ("image", "save"): ("images", "save"),
    ("load",): ("images", "load"), ("image", "load"): ("images", "load"),
    ("import",): ("images", "import"), ("image", "import"): ("images", "import"),
    ("inspect",): ("inspect", "inspect"),
    ("ps",): ("containers", "ls"), ("container", "ls"): ("containers", "ls"),
    ("container", "list"): ("containers", "ls"), ("container", "inspect"): ("containers", "inspect"),
    ("stop",): ("containers", "stop"), ("container", "stop"): ("containers", "stop"),
    ("restart",): ("containers", "restart"), ("container", "restart"): ("containers", "restart"),
    ("kill",): ("containers", "kill"), ("container", "kill"): ("containers", "kill"),
    ("rm",): ("containers", "rm"), ("container", "rm"): ("containers", "rm"),
    ("pause",): ("containers", "pause"), ("container", "pause"): ("containers", "pause"),
    ("unpause",): ("containers", "unpause"), ("container", "unpause"): ("containers", "unpause"),
    ("rename",): ("containers", "rename"), ("container", "rename"): ("containers", "rename"),
    ("wait",): ("containers", "wait"), ("container", "wait"): ("containers", "wait"),
    ("top",): ("containers", "top"), ("container", "top"): ("containers", "top"),
    ("stats",): ("stats", "stats"), ("container", "stats"): ("stats", "stats"),
    ("cp",): ("files", "cp"), ("container", "cp"): ("files", "cp"),
    ("diff",): ("files", "diff"), ("container", "diff"): ("files", "diff"),
    ("export",): ("files", "export"), ("container", "export"): ("files", "export"),
    ("commit",): ("files", "commit"), ("container", "commit"): ("files", "commit"),
    ("container", "prune"): ("containers", "prune"),
    ("logs",): ("containers", "logs"), ("container", "logs"): ("containers", "logs"),
    ("run",): ("run", "run"), ("container", "run"): ("run", "run"),
    ("create",): ("run", "create"), ("container", "create"): ("run", "create"),
    ("start",): ("run", "start"), ("container", "start"): ("run", "start"),
    ("attach",): ("run", "attach"), ("container", "attach"): ("run", "attach"),
    ("exec",): ("run", "exec"), ("container", "exec"): ("run", "exec"),
    ("volume", "create"): ("volume", "create"), ("volume", "ls"): ("volume", "ls"),
    ("volume", "list"): ("volume", "ls"), ("volume", "inspect"): ("volume", "inspect"),
    ("volume", "rm"): ("volume", "rm"), ("volume", "remove"): ("volume", "rm"),
    ("volume", "prune"): ("volume", "prune"),
    ("port",): ("network", "port"), ("container", "port"): ("network", "port"),
    **{("network", verb): ("network", verb) for verb in ("create", "ls", "inspect", "rm", "prune", "connect",
                                                         "disconnect")},
    ("network", "list"): ("network", "ls"), ("network", "remove"): ("network", "rm"),
    ("pull",): ("registry_client", "pull"), ("image", "pull"): ("registry_client", "pull"),
    ("push",): ("registry_client", "push"), ("image", "push"): ("registry_client", "push"),
    ("login",): ("registry_client", "login"), ("logout",): ("registry_client", "logout"),
    ("manifest", "inspect"): ("registry_client", "manifest-inspect"),
    ("registry", "serve"): ("registry", "serve"), ("registry", "gc"): ("registry", "gc"),
    ("build",): ("build", "build"), ("image", "build"): ("build", "build"), ("builder", "build"): ("build", "build"),
    ("builder", "prune"): ("build", "prune"),
}
GROUPS = {"image": "Manage images", "container": "Manage containers", "network": "Manage networks",
          "system": "Manage Docker", "volume": "Manage volumes", "registry": "Run an image registry",
          "manifest": "Manage Docker image manifests and manifest lists", "builder": "Manage builds"}

USAGE = f"""
Usage:  {PROG} [OPTIONS] COMMAND

A Docker-compatible container engine client

Common Commands:
  run         Create and run a new container from an image
  exec        Execute a command in a running container
  ps          List containers
  build       Build an image from a Dockerfile
  images      List images
  version     Show the dockyard version information
  info        Display system-wide information

Management Commands:
  builder     Manage builds
  container   Manage containers
  image       Manage images
  network     Manage networks
  manifest    Inspect image manifests in a registry
  registry    Run an image registry
  system      Manage dockyard
  volume      Manage volumes
  compose     Define and run multi-container applications

Commands:
  attach, commit, cp, create, diff, events, export, history, import, inspect, kill, load, login,
  logout, logs, pause, port, pull, push, rename, restart, rm, rmi, save, start, stats, stop, tag,
  top, unpause, wait

Global Options:
  -H, --host string   Daemon socket to connect to (DOCKYARD_HOST, DOCKER_HOST)
      --tls           Use TLS; implied by --tlsverify
      --tlscacert string  Trust certs signed only by this CA (default "~/.docker/ca.pem")
      --tlscert string    Path to TLS certificate file (default "~/.docker/cert.pem")
      --tlskey string     Path to TLS key file (default "~/.docker/key.pem")
      --tlsverify     Use TLS and verify the remote (DOCKER_TLS_VERIFY)
  -v, --version       Print version information and quit

Run '{PROG} COMMAND --help' for more information on a command.
"""


def select_host(flag: str | None) -> str:
    """-H, then DOCKYARD_HOST, then DOCKER_HOST, then the default socket."""
    return flag or os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


TLS_FILES = {"--tlscacert": "ca.pem", "--tlscert": "cert.pem", "--tlskey": "key.pem"}
_VALUED = ("-H", "--host", "-l", "--log-level", "--config", "--context", "-c", *TLS_FILES)


def split_globals(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Global options before the command word ({option: value}, flags as "true"), and the rest."""
    found: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        if name in _VALUED:
            if not eq:
                if i + 1 >= len(argv):
                    break
                value = argv[i + 1]
                i += 1
            found["--host" if name == "-H" else name] = value
        elif name in ("-D", "--debug", "--tls", "--tlsverify"):
            found[name] = value if eq else "true"
        else:
            break
        i += 1
    return found, argv[i:]


def tls_options(found: dict[str, str]) -> dict[str, str] | None:
    """docker's TLS settings: --tlsverify (or DOCKER_TLS_VERIFY) verifies the daemon, --tls only
    encrypts; files default to DOCKER_CERT_PATH (or ~/.docker)/{ca,cert,key}.pem when they exist.
    None: plain TCP."""
    flag = found.get("--tlsverify")
    verify = flag == "true" if flag is not None else bool(os.environ.get("DOCKER_TLS_VERIFY"))
    if not verify and found.get("--tls") != "true" and not any(f in found for f in TLS_FILES):
        return None
    cert_dir = os.environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")
    files = {flag: found.get(flag) or os.path.join(cert_dir, name) for flag, name in TLS_FILES.items()}
    return {"verify": "true" if verify else "", **{k: v for k, v in files.items() if os.path.exists(v)}}


def group_help(group: str) -> str:
    """`dockyard image` with no subcommand: its subcommands."""
    subs = sorted({words[1] for words in COMMANDS if words[0] == group and len(words) == 2})
    return (f"\nUsage:  {PROG} {group} COMMAND\n\n{GROUPS[group]}\n\nCommands:\n"
            + "".join(f"  {s}\n" for s in subs)
            + f"\nRun '{PROG} {group} COMMAND --help' for more information on a command.\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    found, args = split_globals(args)
    host = found.get("--host")
    tls = tls_options(found)
    if tls is not None:
        from dockyard.client import http

        http.tls = http.TLSOptions(bool(tls["verify"]), tls.get("--tlscacert"), tls.get("--tlscert"),
                                   tls.get("--tlskey"))
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if args[0] in ("-v", "--version"):
        print(f"Dockyard version {VERSION}")
        return 0
    if args[0].startswith("-"):
        sys.stderr.write(f"unknown flag: {args[0]}\nSee '{PROG} --help'.\n")
        return 125
    if args[0] == "compose":
        from dockyard.cli.runner import site_packages
        site_packages()  # ruamel.yaml and jsonschema
        from dockyard.compose.cli import main as compose_main
        return compose_main(args[1:], select_host(host))
    if args[0] in GROUPS and (len(args) == 1 or args[1] in ("-h", "--help")):
        sys.stdout.write(group_help(args[0]))
        return 0
    words = tuple(args[:2]) if tuple(args[:2]) in COMMANDS else (args[0],)
    if words not in COMMANDS:
        if args[0] in GROUPS:  # docker's text names the group's usage ("volume COMMAND" is docker's own)
            usage = f"{args[0]} COMMAND" if args[0] == "volume" else args[0]
            sys.stderr.write(f"{PROG}: unknown command: {PROG} {' '.join(args[:2])}\n\nUsage:  {PROG} {usage}\n\n"
                             f"Run '{PROG} {args[0]} --help' for more information\n")
        else:
            sys.stderr.write(f"{PROG}: unknown command: {PROG} {args[0]}\n\nRun '{PROG} --help' for more information\n")
        return 1
    from dockyard.cli.runner import run_command
    return run_command(COMMANDS[words], " ".join(words), args[len(words):], select_host(host))


def main_and_exit() -> None:
    """The launcher's entry point: main(), then leave without finalizing the interpreter (freeing
    every imported module costs milliseconds, and a finished command has nothing left to clean
    up: its with-blocks are closed and the kernel closes its descriptors); only Python's own
    buffers need flushing."""
    code = main()  # an unexpected exception goes on to the normal exit, which prints it
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
