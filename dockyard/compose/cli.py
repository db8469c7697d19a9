"""`dockyard compose [OPTIONS] COMMAND`: Docker Compose v2's command line over the model
(loader) and the orchestrator (engine); errors and exit codes as Docker Compose gives them."""

from __future__ import annotations

import sys

from dockyard.cli.flags import BOOL, INT, LIST, STR, Command, Flag, UsageError
from dockyard.client import http
from dockyard.client.api import APIError
from dockyard.compose.errors import ComposeError

GLOBAL = Command("[OPTIONS] COMMAND", "Define and run multi-container applications", [
    Flag("f", "file", LIST, "Compose configuration files"),
    Flag("p", "project-name", STR, "Project name"),
    Flag("", "project-directory", STR, "Specify an alternate working directory"),
    Flag("", "env-file", LIST, "Specify an alternate environment file"),
    Flag("", "profile", LIST, "Specify a profile to enable"),
    Flag("", "ansi", STR, "Control when to print ANSI control characters", "auto"),
    Flag("", "progress", STR, "Set type of progress output"),
    Flag("", "parallel", INT, "Control max parallelism, -1 for unlimited", -1),
    Flag("", "dry-run", BOOL, "Execute command in dry run mode"),
    Flag("", "compatibility", BOOL, "Run compose in backward compatibility mode"),
    Flag("v", "version", BOOL, "Show the Docker Compose version information"),
], lambda *a: 0, interspersed=False)

TIMEOUT = Flag("t", "timeout", INT, "Specify a shutdown timeout in seconds")
NO_COLOR = Flag("", "no-color", BOOL, "Produce monochrome output")
NO_PREFIX = Flag("", "no-log-prefix", BOOL, "Don't print prefix in logs")
ENV = Flag("e", "env", LIST, "Set environment variables")
USER = Flag("u", "user", STR, "Run the command as this user")
WORKDIR = Flag("w", "workdir", STR, "Working directory inside the container")
NO_TTY = Flag("T", "no-TTY", BOOL, "Disable pseudo-TTY allocation")
INDEX = Flag("", "index", INT, "Index of the container if service has multiple replicas", 0)

FLAGS: dict[str, tuple[str, str, list[Flag]]] = {
    "config": ("[OPTIONS] [SERVICE...]", "Parse, resolve and render compose file in canonical format", [
        Flag("", "services", BOOL, "Print the service names, one per line."),
        Flag("", "volumes", BOOL, "Print the volume names, one per line."),
        Flag("", "networks", BOOL, "Print the network names, one per line."),
        Flag("", "images", BOOL, "Print the image names, one per line."),
        Flag("", "profiles", BOOL, "Print the profile names, one per line."),
        Flag("", "hash", STR, "Print the service config hash, one per line."),
        Flag("", "format", STR, "Format the output. Values: [yaml | json]", "yaml"),
        Flag("q", "quiet", BOOL, "Only validate the configuration, don't print anything"),
        Flag("o", "output", STR, "Save to file (default to stdout)"),
        Flag("", "no-interpolate", BOOL, "Don't interpolate environment variables"),
        Flag("", "no-path-resolution", BOOL, "Don't resolve file paths"),
        Flag("", "no-normalize", BOOL, "Don't normalize compose model"),
        Flag("", "resolve-image-digests", BOOL, "Pin image tags to digests"),
    ]),
    "up": ("[OPTIONS] [SERVICE...]", "Create and start containers", [
        Flag("d", "detach", BOOL, "Detached mode: Run containers in the background"),
        Flag("", "build", BOOL, "Build images before starting containers"),
        Flag("", "no-build", BOOL, "Don't build an image, even if it's policy"),
        Flag("", "wait", BOOL, "Wait for services to be running|healthy. Implies detached mode."),
        Flag("", "wait-timeout", INT, "Maximum duration in seconds to wait for the project to be running|healthy"),
        Flag("", "force-recreate", BOOL, "Recreate containers even if their configuration and image haven't changed"),
        Flag("", "no-recreate", BOOL, "If containers already exist, don't recreate them"),
        Flag("", "no-deps", BOOL, "Don't start linked services"),
        Flag("", "remove-orphans", BOOL, "Remove containers for services not defined in the Compose file"),
        Flag("", "scale", LIST, "Scale SERVICE to NUM instances"),
        Flag("", "no-start", BOOL, "Don't start the services after creating them"),
        Flag("", "abort-on-container-exit", BOOL, "Stops all containers if any container was stopped"),
        Flag("", "exit-code-from", STR, "Return the exit code of the selected service container"),
        Flag("", "pull", STR, "Pull image before running (\"always\"|\"missing\"|\"never\")"),
        Flag("", "quiet-pull", BOOL, "Pull without printing progress information"),
        Flag("", "attach", LIST, "Restrict attaching to the specified services"),
        Flag("", "no-attach", LIST, "Do not attach (stream logs) to the specified services"),
        Flag("V", "renew-anon-volumes", BOOL, "Recreate anonymous volumes"),
        Flag("y", "yes", BOOL, "Assume \"yes\" as answer to all prompts"),
        Flag("", "timestamps", BOOL, "Show timestamps"),
        TIMEOUT, NO_COLOR, NO_PREFIX,
    ]),
    "create": ("[OPTIONS] [SERVICE...]", "Creates containers for a service", [
        Flag("", "build", BOOL, "Build images before starting containers"),
        Flag("", "no-build", BOOL, "Don't build an image, even if it's policy"),
        Flag("", "force-recreate", BOOL, "Recreate containers even if their configuration and image haven't changed"),
        Flag("", "no-recreate", BOOL, "If containers already exist, don't recreate them"),
        Flag("", "remove-orphans", BOOL, "Remove containers for services not defined in the Compose file"),
        Flag("", "scale", LIST, "Scale SERVICE to NUM instances"),
        Flag("", "pull", STR, "Pull image before running (\"always\"|\"missing\"|\"never\"|\"build\")"),
    ]),
    "scale": ("[SERVICE=REPLICAS...]", "Scale services", [
        Flag("", "no-deps", BOOL, "Don't start linked services")]),
    "down": ("[OPTIONS] [SERVICES]", "Stop and remove containers, networks", [
        Flag("v", "volumes", BOOL, "Remove named volumes declared in the \"volumes\" section"),
        Flag("", "rmi", STR, "Remove images used by services. \"local\" remove only images that don't have a custom tag"),
        Flag("", "remove-orphans", BOOL, "Remove containers for services not defined in the Compose file"),
        TIMEOUT,
    ]),
    "ps": ("[OPTIONS] [SERVICE...]", "List containers", [
        Flag("a", "all", BOOL, "Show all stopped containers"), Flag("q", "quiet", BOOL, "Only display IDs"),
        Flag("", "services", BOOL, "Display services"), Flag("", "format", STR, "Format output (table|json)"),
        Flag("", "status", LIST, "Filter services by status"), Flag("", "filter", LIST, "Filter services by a property"),
        Flag("", "no-trunc", BOOL, "Don't truncate output"), Flag("", "orphans", BOOL, "Include orphaned services"),
    ]),
    "logs": ("[OPTIONS] [SERVICE...]", "View output from containers", [
        Flag("f", "follow", BOOL, "Follow log output"), Flag("", "tail", STR, "Number of lines to show from the end"),
        Flag("t", "timestamps", BOOL, "Show timestamps"), Flag("", "since", STR, "Show logs since timestamp"),
        Flag("", "until", STR, "Show logs before a timestamp"), INDEX, NO_COLOR, NO_PREFIX,
    ]),
    "exec": ("[OPTIONS] SERVICE COMMAND [ARGS...]", "Execute a command in a running container", [
        Flag("d", "detach", BOOL, "Detached mode: Run command in the background"), NO_TTY, ENV, USER, WORKDIR,
        INDEX, Flag("", "privileged", BOOL, "Give extended privileges to the process"),
        Flag("i", "interactive", BOOL, "Keep STDIN open even if not attached", True),
        Flag("t", "tty", BOOL, "Allocate a pseudo-TTY", True),
    ]),
    "run": ("[OPTIONS] SERVICE [COMMAND] [ARGS...]", "Run a one-off command on a service", [
        Flag("d", "detach", BOOL, "Run container in background and print container ID"),
        Flag("", "rm", BOOL, "Automatically remove the container when it exits"),
        Flag("", "name", STR, "Assign a name to the container"), Flag("", "entrypoint", STR, "Override the entrypoint"),
        Flag("", "no-deps", BOOL, "Don't start linked services"), Flag("", "build", BOOL, "Build image before starting"),
        Flag("", "service-ports", BOOL, "Run command with all service's ports enabled and mapped to the host"),
        Flag("p", "publish", LIST, "Publish a container's port(s) to the host"),
        Flag("l", "label", LIST, "Add or override a label"), Flag("v", "volume", LIST, "Bind mount a volume"),
        Flag("i", "interactive", BOOL, "Keep STDIN open even if not attached", True),
        Flag("t", "tty", BOOL, "Allocate a pseudo-TTY", True),
        Flag("", "quiet-pull", BOOL, "Pull without printing progress information"),
        Flag("", "remove-orphans", BOOL, "Remove containers for services not defined in the Compose file"),
        NO_TTY, ENV, USER, WORKDIR,
    ]),
    "build": ("[OPTIONS] [SERVICE...]", "Build or rebuild services", [
        Flag("", "no-cache", BOOL, "Do not use cache when building the image"),
        Flag("", "pull", BOOL, "Always attempt to pull a newer version of the image"),
        Flag("q", "quiet", BOOL, "Don't print anything to STDOUT"),
        Flag("", "build-arg", LIST, "Set build-time variables for services"),
        Flag("", "with-dependencies", BOOL, "Also build dependencies (transitively)"),
        Flag("", "ssh", STR, "Set SSH authentications used when building service images. (use 'default' for "
                             "using your default SSH Agent)"),
    ]),
    "pull": ("[OPTIONS] [SERVICE...]", "Pull service images", [
        Flag("q", "quiet", BOOL, "Pull without printing progress information"),
        Flag("", "ignore-pull-failures", BOOL, "Pull what it can and ignores images with pull failures"),
        Flag("", "include-deps", BOOL, "Also pull services declared as dependencies"),
        Flag("", "ignore-buildable", BOOL, "Ignore images that can be built"),
    ]),
    "push": ("[OPTIONS] [SERVICE...]", "Push service images", [
        Flag("", "ignore-push-failures", BOOL, "Push what it can and ignores images with push failures"),
        Flag("q", "quiet", BOOL, "Push without printing progress information"),
    ]),
    "start": ("[SERVICE...]", "Start services", []),
    "stop": ("[OPTIONS] [SERVICE...]", "Stop services", [TIMEOUT]),
    "restart": ("[OPTIONS] [SERVICE...]", "Restart service containers", [
        TIMEOUT, Flag("", "no-deps", BOOL, "Don't restart dependent services")]),
    "rm": ("[OPTIONS] [SERVICE...]", "Removes stopped service containers", [
        Flag("f", "force", BOOL, "Don't ask to confirm removal"),
        Flag("s", "stop", BOOL, "Stop the containers, if required, before removing"),
        Flag("v", "volumes", BOOL, "Remove any anonymous volumes attached to containers"),
    ]),
    "kill": ("[OPTIONS] [SERVICE...]", "Force stop service containers", [
        Flag("s", "signal", STR, "SIGNAL to send to the container", "SIGKILL"),
        Flag("", "remove-orphans", BOOL, "Remove containers for services not defined in the Compose file")]),
    "pause": ("[SERVICE...]", "Pause services", []),
    "unpause": ("[SERVICE...]", "Unpause services", []),
    "images": ("[OPTIONS] [SERVICE...]", "List images used by the created containers", [
        Flag("q", "quiet", BOOL, "Only display IDs"), Flag("", "format", STR, "Format the output (table|json)")]),
    "top": ("[SERVICES...]", "Display the running processes", []),
    "port": ("[OPTIONS] SERVICE PRIVATE_PORT", "Print the public port for a port binding", [
        Flag("", "protocol", STR, "tcp or udp", "tcp"), INDEX]),
    "events": ("[OPTIONS] [SERVICE...]", "Receive real time events from containers", [
        Flag("", "json", BOOL, "Output events as a stream of json objects")]),
    "watch": ("[SERVICE...]", "Watch build context for service and rebuild/refresh containers when files are updated", [
        Flag("", "no-up", BOOL, "Do not build & start services before watching"),
        Flag("", "prune", BOOL, "Prune dangling images on rebuild"),
        Flag("", "quiet", BOOL, "hide build output")]),
    "attach": ("[OPTIONS] SERVICE", "Attach local standard input, output, and error streams to a service's running container", [
        Flag("", "detach-keys", STR, "Override the key sequence for detaching from a container."), INDEX,
        Flag("", "no-stdin", BOOL, "Do not attach STDIN"),
        Flag("", "sig-proxy", BOOL, "Proxy all received signals to the process", True)]),
    "cp": ("[OPTIONS] SERVICE:SRC_PATH DEST_PATH|-\n\tdockyard compose cp [OPTIONS] SRC_PATH|- SERVICE:DEST_PATH",
           "Copy files/folders between a service container and the local filesystem", [
               Flag("", "all", BOOL, "Include containers created by the run command"),
               Flag("a", "archive", BOOL, "Archive mode (copy all uid/gid information)"),
               Flag("L", "follow-link", BOOL, "Always follow symbol link in SRC_PATH"), INDEX]),
    "stats": ("[OPTIONS] [SERVICE]", "Display a live stream of container(s) resource usage statistics", [
        Flag("a", "all", BOOL, "Show all containers (default shows just running)"),
        Flag("", "format", STR, "Format output using a custom template"),
        Flag("", "no-stream", BOOL, "Disable streaming stats and only pull the first result"),
        Flag("", "no-trunc", BOOL, "Do not truncate output")]),
    "wait": ("SERVICE [SERVICE...] [OPTIONS]", "Block until containers of all (or specified) services stop.", [
        Flag("", "down-project", BOOL, "Drops project when the first container stops")]),
    "ls": ("[OPTIONS]", "List running compose projects", [
        Flag("a", "all", BOOL, "Show all stopped Compose projects"), Flag("q", "quiet", BOOL, "Only display IDs"),
        Flag("", "filter", LIST, "Filter output based on conditions provided"),
        Flag("", "format", STR, "Format the output. Values: [table | json]", "table")]),
    "version": ("[OPTIONS]", "Show the Docker Compose version information", [
        Flag("", "short", BOOL, "Shows only Compose's version number"), Flag("f", "format", STR, "Format the output")]),
}
NO_INTERSPERSE = {"exec", "run"}
NEEDS_ARGS = {"exec": 2, "run": 1, "port": 2, "scale": 1, "attach": 1, "cp": 2, "wait": 1}

USAGE = """
Usage:  dockyard compose [OPTIONS] COMMAND

Define and run multi-container applications with dockyard

Commands:
""" + "".join(f"  {name:<10} {spec[1]}\n" for name, spec in sorted(FLAGS.items())) + """
Run 'dockyard compose COMMAND --help' for more information on a command.
"""


def main(argv: list[str], host: str) -> int:
    """Run `dockyard compose ARGV` against host; Docker Compose's exit code."""
    try:
        gopts, rest = GLOBAL.parse(argv)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if gopts.version:
        from dockyard.compose.convert import COMPOSE_VERSION
        print(f"Dockyard Compose version v{COMPOSE_VERSION}")
        return 0
    if not rest or rest[0] in ("-h", "--help", "help") or gopts.help:
        sys.stdout.write(USAGE)
        return 0
    name, args = rest[0], rest[1:]
    if name not in FLAGS:
        sys.stderr.write(f"unknown dockyard command: \"compose {name}\"\n")
        return 1
    usage, short, flags = FLAGS[name]
    command = Command(usage, short, flags, lambda *a: 0, interspersed=name not in NO_INTERSPERSE)
    try:
        opts, args = command.parse(args)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if opts.help:
        sys.stdout.write(command.help(f"dockyard compose {name}"))
        return 0
    if len(args) < NEEDS_ARGS.get(name, 0):
        sys.stderr.write(f"'dockyard compose {name}' requires at least {NEEDS_ARGS[name]} argument(s)\n")
        return 1
    from dockyard.cli.runner import CommandError, autostart
    from dockyard.compose import commands
    ctx = commands.Context(gopts, host)
    for attempt in (0, 1):
        try:
            return getattr(commands, "cmd_" + name)(ctx, opts, args)
        except ComposeError as exc:
            sys.stdout.flush()
            sys.stderr.write(f"{exc}\n")
            return exc.code
        except http.ConnectError:
            if attempt == 0 and autostart(host):  # the default socket, as root: like the dockyard CLI
                continue
            sys.stderr.write(f"Cannot connect to the dockyard daemon at {host}. Is the dockyard daemon running?\n")
            return 1
        except APIError as exc:
            sys.stderr.write(f"Error response from daemon: {exc.message}\n")
            return 1
        except CommandError as exc:  # from the dockyard CLI commands that attach, cp and stats reuse
            sys.stdout.flush()
            sys.stderr.write(f"{exc}\n")
            return exc.code
        except KeyboardInterrupt:
            return 130
    return 1

