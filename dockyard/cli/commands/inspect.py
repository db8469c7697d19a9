"""inspect: containers first, then images, networks and volumes (docker's lookup order), or only
the --type given."""

from __future__ import annotations

from types import SimpleNamespace

from dockyard.cli import format as fmt
from dockyard.cli.flags import BOOL, STR, Command, Flag
from dockyard.cli.runner import Cli, CommandError
from dockyard.client.api import APIError

TYPE_CHECKING = False  # typing costs milliseconds to import; annotations only
if TYPE_CHECKING:
    from typing import Any

TYPES = ("container", "image", "network", "volume")
DOCKER_TYPES = ("config", "container", "image", "network", "node", "plugin", "secret", "service", "task", "volume")


def inspect(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if opts.type and opts.type not in TYPES:
        known = ", ".join(f'"{t}"' for t in DOCKER_TYPES)
        raise CommandError(f'unknown type: "{opts.type}": must be one of {known}')
    kinds = (opts.type,) if opts.type else TYPES
    results: list[Any] = []
    for name in args:
        for kind in kinds:
            try:
                results.append(cli.client.inspect_container(name, opts.size) if kind == "container"
                             else cli.client.inspect_image(name) if kind == "image"
                             else cli.client.call("GET", f"/{kind}s/{name}"))
                break
            except APIError as exc:
                if exc.status != 404:
                    raise
                last = exc.message
        else:
            results.append(fmt.Missing(f"Error response from daemon: {last}" if opts.type
                                       else f"Error: No such object: {name}"))
    errors = fmt.print_inspect(results, opts.format or "", cli.write)
    if errors:
        raise CommandError("\n".join(errors))
    return 0


COMMANDS = {
    "inspect": Command("[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Docker objects",
                       [Flag("f", "format", STR, "Format output using a custom template"),
                        Flag("s", "size", BOOL, "Display total file sizes if the type is container"),
                        Flag("", "type", STR, "Only inspect objects of the given type")], inspect, 1),
}
