"""volume create, ls, inspect, rm, prune."""

from __future__ import annotations

from types import SimpleNamespace

from dockyard.cli import format as fmt
from dockyard.cli.commands.images import confirm, print_pruned
from dockyard.cli.flags import BOOL, LIST, STR, Command, Flag, UsageError, check_filter, parse_filters
from dockyard.cli.runner import Cli, CommandError
from dockyard.client.api import APIError

TYPE_CHECKING = False  # typing costs milliseconds to import; annotations only
if TYPE_CHECKING:
    from typing import Any

LS_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
              "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED AT"}


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, eq, val = value.partition("=")
        if flag == "opt" and not eq:
            raise UsageError(f'invalid argument "{value}" for "-o, --opt" flag: bad format for opt: {value}')
        out[key] = val
    return out


def create(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if args and opts.name and args[0] != opts.name:
        raise UsageError("conflicting options: either specify --name or provide positional arg, not both")
    body = {"Name": args[0] if args else opts.name or "", "Driver": opts.driver or "local",
            "DriverOpts": _pairs(opts.opt, "opt"), "Labels": _pairs(opts.label, "label")}
    volume = cli.client.call("POST", "/volumes/create", body=body)
    cli.write(volume["Name"] + "\n")
    return 0


def ls(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    volumes = cli.client.call("GET", "/volumes", {"filters": parse_filters(opts.filter) or None})["Volumes"] or []
    volumes.sort(key=lambda v: fmt.natural_key(v["Name"]))
    if opts.quiet:
        cli.write("".join(v["Name"] + "\n" for v in volumes))
        return 0
    rows = [fmt.Context({"Availability": "N/A", "Driver": v["Driver"], "Group": "N/A",
                         "Labels": ",".join(f"{k}={val}" for k, val in (v.get("Labels") or {}).items()),
                         "Links": "N/A", "Mountpoint": v.get("Mountpoint", ""), "Name": v["Name"],
                         "Scope": v.get("Scope", "local"), "Size": "N/A", "Status": "N/A"},
                        "*formatter.volumeContext", v.get("Labels")) for v in volumes]
    fmt.print_objects(rows, opts.format or "", "{{.Driver}}\t{{.Name}}", LS_HEADERS, cli.write)
    return 0


def inspect(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    results: list[Any] = []
    for name in args:
        try:
            results.append(cli.client.call("GET", f"/volumes/{name}"))
        except APIError as exc:
            results.append(fmt.Missing(f"Error response from daemon: {exc.message}"))
    errors = fmt.print_inspect(results, opts.format or "", cli.write)
    if errors:
        raise CommandError("\n".join(errors))
    return 0


def rm(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    errors = []
    for name in args:
        try:
            cli.client.call("DELETE", f"/volumes/{name}", {"force": 1 if opts.force else None})
            cli.write(name + "\n")
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
    if errors:
        raise CommandError("\n".join(errors))
    return 0


def prune(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    filters = parse_filters(opts.filter)
    if opts.all:
        filters["all"] = {"true": True}
    warning = ("WARNING! This will remove all local volumes not used by at least one container." if opts.all else
               "WARNING! This will remove anonymous local volumes not used by at least one container.")
    if not opts.force and not confirm(cli, warning):
        return 0
    report = cli.client.call("POST", "/volumes/prune", {"filters": filters or None})
    print_pruned(cli, "Deleted Volumes:", report.get("VolumesDeleted") or [], report.get("SpaceReclaimed") or 0)
    return 0


FORMAT = Flag("", "format", STR, "Format output using a custom template")
COMMANDS = {
    "create": Command("[OPTIONS] [VOLUME]", "Create a volume",
                      [Flag("d", "driver", STR, "Specify volume driver name", "local"),
                       Flag("", "label", LIST, "Set metadata for a volume"),
                       Flag("", "name", STR, "Specify volume name"),
                       Flag("o", "opt", LIST, "Set driver specific options")], create, 0, 1),
    "ls": Command("[OPTIONS]", "List volumes",
                  [Flag("f", "filter", LIST, "Provide filter values (e.g. \"dangling=true\")", check=check_filter), FORMAT,
                   Flag("q", "quiet", BOOL, "Only display volume names")], ls, 0, 0),
    "inspect": Command("[OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more volumes",
                       [Flag("f", "format", STR, "Format output using a custom template")], inspect, 1),
    "rm": Command("[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes",
                  [Flag("f", "force", BOOL, "Force the removal of one or more volumes")], rm, 1),
    "prune": Command("[OPTIONS]", "Remove unused local volumes",
                     [Flag("a", "all", BOOL, "Remove all unused volumes, not just anonymous ones"),
                      Flag("", "filter", LIST, "Provide filter values (e.g. \"label=<label>\")", check=check_filter),
                      Flag("f", "force", BOOL, "Do not prompt for confirmation")], prune, 0, 0),
}
