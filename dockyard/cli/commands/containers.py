"""ps, container inspect, stop, restart, kill, rm, pause, unpause, rename, wait, top, logs,
container prune."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

from dockyard.cli import format as fmt
from dockyard.cli.commands.images import confirm, go_time, print_pruned
from dockyard.cli.commands.system import timestamp
from dockyard.cli.flags import BOOL, INT, LIST, STR, Command, Flag, check_filter, parse_filters
from dockyard.cli.runner import Cli, CommandError
from dockyard.client import http
from dockyard.client.api import APIError

TYPE_CHECKING = False  # typing costs 5 ms to import; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
              "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM"}


def ports_text(ports: list[dict[str, Any]]) -> str:
    """'0.0.0.0:8080->80/tcp, 443/tcp' as docker ps shows them."""
    items = []
    for port in sorted(ports or [], key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""))):
        private = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
        if port.get("PublicPort"):
            host = port.get("IP", "")
            host = f"[{host}]" if ":" in host else host
            items.append(f"{host}:{port['PublicPort']}->{private}")
        else:
            items.append(private)
    return ", ".join(dict.fromkeys(items))


def container_row(c: dict[str, Any], trunc: bool) -> fmt.Context:
    """The template fields of one /containers/json entry (docker's ContainerContext)."""
    import json

    names = [n[1:] for n in c.get("Names") or [] if n.count("/") == 1]
    command = c.get("Command", "")
    image = c.get("Image", "")
    if trunc and image.startswith("sha256:"):
        image = fmt.short_id(image)
    size = fmt.human_size(c.get("SizeRw") or 0)
    if c.get("SizeRootFs"):
        size += f" (virtual {fmt.human_size(c['SizeRootFs'])})"
    labels = c.get("Labels") or {}
    mounts = [m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []]
    return fmt.Context({"ID": fmt.short_id(c["Id"]) if trunc else c["Id"], "Image": image,
            "Command": json.dumps(fmt.ellipsis(command, 20) if trunc else command, ensure_ascii=False),
            "CreatedAt": go_time(c.get("Created") or 0), "RunningFor": fmt.since(c.get("Created") or 0),
            "Status": c.get("Status", ""), "State": c.get("State", ""), "Ports": ports_text(c.get("Ports") or []),
            "Names": ",".join(names), "Size": size, "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Mounts": ",".join(fmt.ellipsis(m, 15) if trunc else m for m in mounts),
            "Networks": ",".join(sorted((c.get("NetworkSettings") or {}).get("Networks") or {})),
            "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
            "Platform": None}, "*formatter.ContainerContext", labels)


def ls(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    limit = 1 if opts.latest else (opts.last if opts.last and opts.last > 0 else None)
    template = opts.format or ""
    size = opts.size or (not opts.quiet and (".Size" in template or "json ." in template.replace("{{", "")))
    containers = cli.client.containers(opts.all or bool(limit), limit, size, parse_filters(opts.filter))
    if opts.quiet:
        cli.write("".join(f"{c['Id'] if opts.no_trunc else fmt.short_id(c['Id'])}\n" for c in containers))
        return 0
    default = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    if opts.size:
        default += "\t{{.Size}}"
    rows = [container_row(c, not opts.no_trunc) for c in containers]
    fmt.print_objects(rows, opts.format or "", default, PS_HEADERS, cli.write,
                      probe=container_row({"Id": "", "Created": time.time()}, True))
    return 0


def inspect(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    """`container inspect`: the generic inspect restricted to containers."""
    from dockyard.cli.commands.inspect import inspect as inspect_objects

    return inspect_objects(cli, SimpleNamespace(type="container", size=opts.size, format=opts.format), args)


def for_each(cli: Cli, names: list[str], action: Callable[[str], Any], missing_ok: bool = False) -> int:
    """Run action on every name, printing the name on success; errors collected, exit 1
    (missing_ok: a missing object's error is printed but does not fail the command, as rm -f)."""
    errors = []
    for name in names:
        try:
            result = action(name)
        except APIError as exc:
            if missing_ok and exc.status == 404:
                cli.error(f"Error response from daemon: {exc.message}")
            else:
                errors.append(f"Error response from daemon: {exc.message}")
            continue
        cli.write(f"{name if result is None else result}\n")
    if errors:
        raise CommandError("\n".join(errors))
    return 0


def stop(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    query = {"t": opts.timeout if opts.timeout is not None else opts.time, "signal": opts.signal}
    return for_each(cli, args, lambda n: cli.client.container_action(n, "stop", query))


def restart(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    query = {"t": opts.timeout if opts.timeout is not None else opts.time, "signal": opts.signal}
    return for_each(cli, args, lambda n: cli.client.container_action(n, "restart", query))


def kill(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    return for_each(cli, args, lambda n: cli.client.container_action(n, "kill", {"signal": opts.signal}))


def pause(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    return for_each(cli, args, lambda n: cli.client.container_action(n, "pause"))


def unpause(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    return for_each(cli, args, lambda n: cli.client.container_action(n, "unpause"))


def rm(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    return for_each(cli, args, lambda n: cli.client.remove_container(n.strip("/"), opts.force, opts.volumes,
                                                                      opts.link), missing_ok=opts.force)


def rename(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if not args[1].strip():
        raise CommandError("Error: Neither old nor new names may be empty")
    try:
        cli.client.container_action(args[0], "rename", {"name": args[1]})
    except APIError as exc:
        raise CommandError(f"Error response from daemon: {exc.message}\n"
                           f"Error: failed to rename container named {args[0]}") from None
    return 0


def wait_status(cli: Cli, name: str, condition: str | None = None) -> int:
    """Block until the container stops; its exit code (raises CommandError for a wait error)."""
    return wait_result(cli.client.wait(name, condition))


def wait_result(resp: http.Response) -> int:
    """The exit code from an open wait response (read to its end)."""
    try:
        result = next(resp.iter_json(), None) or {}
    finally:
        resp.close()
    if (result.get("Error") or {}).get("Message"):
        raise CommandError(f"Error response from daemon: {result['Error']['Message']}", 125)
    return int(result.get("StatusCode", 0))


def wait(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    return for_each(cli, args, lambda n: wait_status(cli, n))


def top(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    result = cli.client.top(args[0], " ".join(args[1:]) or None)
    titles = result.get("Titles") or []
    cli.write(fmt.tabwrite([titles, *(row for row in result.get("Processes") or [])], minwidth=20))
    return 0


def prune(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if not opts.force and not confirm(cli, "WARNING! This will remove all stopped containers."):
        return 0
    report = cli.client.prune_containers(parse_filters(opts.filter))
    print_pruned(cli, "Deleted Containers:", report.get("ContainersDeleted") or [],
                 report.get("SpaceReclaimed") or 0)
    return 0


def logs(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    info = cli.client.inspect_container(args[0])
    query = {"stdout": 1, "stderr": 1, "follow": 1 if opts.follow else None,
             "since": timestamp(opts.since, "since") if opts.since else None,
             "until": timestamp(opts.until, "until") if opts.until else None,
             "timestamps": 1 if opts.timestamps else None, "details": 1 if opts.details else None,
             "tail": opts.tail or "all"}
    resp = cli.client.logs(info["Id"], query)
    tty = bool((info.get("Config") or {}).get("Tty"))
    outputs = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    try:
        for stream, data in (http.raw_stream(resp) if tty else http.demux(resp)):
            out = outputs.get(stream, sys.stdout.buffer)
            out.write(data)
            out.flush()
    finally:
        resp.close()
    return 0


TIME = [Flag("t", "timeout", INT, "Seconds to wait before killing the container"),
        Flag("", "time", INT, "Deprecated: use --timeout")]
SIGNAL = Flag("s", "signal", STR, "Signal to send to the container")
FILTER = Flag("f", "filter", LIST, "Filter output based on conditions provided", check=check_filter)
COMMANDS = {
    "ls": Command("[OPTIONS]", "List containers",
                  [Flag("a", "all", BOOL, "Show all containers (default shows just running)"), FILTER,
                   Flag("", "format", STR, "Format output using a custom template"),
                   Flag("n", "last", INT, "Show n last created containers (includes all states)", -1),
                   Flag("l", "latest", BOOL, "Show the latest created container (includes all states)"),
                   Flag("", "no-trunc", BOOL, "Don't truncate output"),
                   Flag("q", "quiet", BOOL, "Only display container IDs"),
                   Flag("s", "size", BOOL, "Display total file sizes")], ls, 0, 0),
    "inspect": Command("[OPTIONS] CONTAINER [CONTAINER...]", "Display detailed information on one or more containers",
                       [Flag("f", "format", STR, "Format output using a custom template"),
                        Flag("s", "size", BOOL, "Display total file sizes")], inspect, 1),
    "stop": Command("[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
                    [SIGNAL, *TIME], stop, 1),
    "restart": Command("[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers",
                       [SIGNAL, *TIME], restart, 1),
    "kill": Command("[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
                    [SIGNAL], kill, 1),
    "rm": Command("[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
                  [Flag("f", "force", BOOL, "Force the removal of a running container (uses SIGKILL)"),
                   Flag("l", "link", BOOL, "Remove the specified link"),
                   Flag("v", "volumes", BOOL, "Remove anonymous volumes associated with the container")], rm, 1),
    "pause": Command("CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", [], pause, 1),
    "unpause": Command("CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers", [],
                       unpause, 1),
    "rename": Command("CONTAINER NEW_NAME", "Rename a container", [], rename, 2, 2),
    "wait": Command("CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their exit codes",
                    [], wait, 1),
    "top": Command("CONTAINER [ps OPTIONS]", "Display the running processes of a container", [], top, 1,
                   interspersed=False),
    "prune": Command("[OPTIONS]", "Remove all stopped containers",
                     [Flag("", "filter", LIST, "Provide filter values (e.g. \"until=<timestamp>\")", check=check_filter),
                      Flag("f", "force", BOOL, "Do not prompt for confirmation")], prune, 0, 0),
    "logs": Command("[OPTIONS] CONTAINER", "Fetch the logs of a container",
                    [Flag("", "details", BOOL, "Show extra details provided to logs"),
                     Flag("f", "follow", BOOL, "Follow log output"),
                     Flag("", "since", STR, "Show logs since timestamp or relative (e.g. 42m for 42 minutes)"),
                     Flag("n", "tail", STR, "Number of lines to show from the end of the logs", "all"),
                     Flag("t", "timestamps", BOOL, "Show timestamps"),
                     Flag("", "until", STR, "Show logs before a timestamp or relative")], logs, 1, 1),
}
