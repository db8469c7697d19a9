"""network create, ls, inspect, rm, prune, connect, disconnect; and port."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

from dockyard.cli import format as fmt
from dockyard.cli.commands.images import confirm
from dockyard.cli.flags import BOOL, LIST, STR, Command, Flag, UsageError, parse_filters
from dockyard.cli.runner import Cli, CommandError
from dockyard.client.api import APIError

LS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
              "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not key:
            raise UsageError(f'invalid argument "{value}" for "{flag}" flag: invalid key/value')
        out[key] = val
    return out


def _network(text: str, flag: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: invalid CIDR address: {text}') from None


def _address(text: str, flag: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: invalid string being converted to IP '
                         f'address: {text}') from None


def ipam_configs(subnets: list[str], gateways: list[str], ranges: list[str]) -> list[dict[str, str]]:
    """--subnet/--gateway/--ip-range as IPAM config entries (one per subnet, IPv4 and IPv6 alike):
    each gateway and range goes to the subnet holding it, as the docker CLI matches them."""
    configs = [{"Subnet": s} for s in subnets]
    nets = [_network(s, "--subnet") for s in subnets]
    for i, a in enumerate(nets):
        if any(a.version == b.version and a.overlaps(b) for b in nets[:i]):  # type: ignore[arg-type]
            raise CommandError("multiple overlapping subnet configuration is not supported")
    for values, key, parse, word in ((ranges, "IPRange", lambda t: _network(t, "--ip-range"), "range"),
                                     (gateways, "Gateway", lambda t: _address(t, "--gateway"), "gateway")):
        for text in values:
            value = parse(text)
            match = [i for i, n in enumerate(nets) if n.version == value.version and (
                value.subnet_of(n) if key == "IPRange" else value in n)]
            if not match:
                raise CommandError(f"no matching subnet for {word} {text}")
            if key in configs[match[0]]:
                raise CommandError(f"cannot configure multiple {'ranges' if word == 'range' else 'gateways'} "
                                   f"({text}, {configs[match[0]][key]}) on the same subnet ({subnets[match[0]]})")
            configs[match[0]][key] = text
    return configs


def create(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    configs = ipam_configs(opts.subnet, opts.gateway, opts.ip_range)
    body = {"Name": args[0], "Driver": opts.driver or "bridge", "Internal": opts.internal,
            "Attachable": opts.attachable, "EnableIPv4": None if opts.ipv4 else False, "EnableIPv6": opts.ipv6 or None,
            "IPAM": {"Driver": opts.ipam_driver or "default", "Config": configs, "Options": {}},
            "Options": _pairs(opts.opt, "--opt"), "Labels": _pairs(opts.label, "--label")}
    result = cli.client.call("POST", "/networks/create", None, body)
    cli.write(result["Id"] + "\n")
    return 0


def ls(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    networks = cli.client.call("GET", "/networks", {"filters": parse_filters(opts.filter) or None})
    networks.sort(key=lambda n: n["Name"])
    if opts.quiet:
        cli.write("".join(f"{n['Id'] if opts.no_trunc else n['Id'][:12]}\n" for n in networks))
        return 0
    rows = [{"ID": n["Id"] if opts.no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
             "Scope": n["Scope"], "IPv6": fmt.go_string(n.get("EnableIPv6", False)),
             "Internal": fmt.go_string(n.get("Internal", False)),
             "Labels": ",".join(f"{k}={v}" for k, v in (n.get("Labels") or {}).items()),
             "CreatedAt": n.get("Created", "")} for n in networks]
    fmt.print_objects(rows, opts.format or "", "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", LS_HEADERS, cli.write)
    return 0


def inspect(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    found, errors = [], []
    for name in args:
        try:
            found.append(cli.client.call("GET", f"/networks/{name}"))
        except APIError as exc:
            if exc.status != 404:
                raise
            errors.append(f"Error response from daemon: {exc.message}")
    fmt.print_inspect(found, opts.format or "", cli.write)
    if errors:
        raise CommandError("\n".join(errors))
    return 0


def rm(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    errors = []
    for name in args:
        try:
            cli.client.call("DELETE", f"/networks/{name}")
            cli.write(name + "\n")
        except APIError as exc:
            if not (opts.force and exc.status == 404):
                errors.append(f"Error response from daemon: {exc.message}")
    if errors:
        raise CommandError("\n".join(errors))
    return 0


def prune(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    warning = "WARNING! This will remove all custom networks not used by at least one container."
    if not opts.force and not confirm(cli, warning):
        return 0
    result = cli.client.call("POST", "/networks/prune", {"filters": parse_filters(opts.filter) or None})
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        cli.write("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted) + "\n")
    return 0


def connect(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    config = {"Aliases": opts.alias or None, "DriverOpts": _pairs(opts.driver_opt, "--driver-opt") or None}
    if opts.ip or opts.ip6:
        config["IPAMConfig"] = {"IPv4Address": opts.ip or "", "IPv6Address": opts.ip6 or ""}
    cli.client.call("POST", f"/networks/{args[0]}/connect", None, {"Container": args[1], "EndpointConfig": config})
    return 0


def disconnect(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    cli.client.call("POST", f"/networks/{args[0]}/disconnect", None, {"Container": args[1], "Force": opts.force})
    return 0


def port(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    """`port CONTAINER [PRIVATE_PORT[/PROTO]]`, from inspect's NetworkSettings.Ports as docker does."""
    ports = (cli.client.inspect_container(args[0]).get("NetworkSettings") or {}).get("Ports") or {}
    if len(args) > 1:
        number, _, proto = args[1].partition("/")
        key = f"{number}/{proto or 'tcp'}"
        bindings = ports.get(key) or []
        if not bindings:
            raise CommandError(f"Error: No public port '{key}' published for {args[0]}")
        cli.write("".join(f"{_host(b)}\n" for b in bindings))
        return 0
    lines = [f"{key} -> {_host(b)}" for key, bindings in ports.items() for b in bindings or []]
    cli.write("".join(line + "\n" for line in lines))
    return 0


def _host(binding: dict[str, str]) -> str:
    ip = binding.get("HostIp") or "0.0.0.0"
    return f"[{ip}]:{binding['HostPort']}" if ":" in ip else f"{ip}:{binding['HostPort']}"


FILTER = Flag("f", "filter", LIST, "Provide filter values")
COMMANDS = {
    "create": Command("[OPTIONS] NETWORK", "Create a network", [
        Flag("", "attachable", BOOL, "Enable manual container attachment"),
        Flag("d", "driver", STR, "Driver to manage the Network", "bridge"),
        Flag("", "gateway", LIST, "IPv4 or IPv6 Gateway for the master subnet"),
        Flag("", "internal", BOOL, "Restrict external access to the network"),
        Flag("", "ip-range", LIST, "Allocate container ip from a sub-range"),
        Flag("", "ipam-driver", STR, "IP Address Management Driver", "default"),
        Flag("", "ipv4", BOOL, "Enable or disable IPv4 address assignment", True),
        Flag("", "ipv6", BOOL, "Enable or disable IPv6 address assignment"),
        Flag("", "label", LIST, "Set metadata on a network"),
        Flag("o", "opt", LIST, "Set driver specific options"),
        Flag("", "subnet", LIST, "Subnet in CIDR format that represents a network segment")], create, 1, 1),
    "ls": Command("[OPTIONS]", "List networks", [
        FILTER, Flag("", "format", STR, "Format output using a custom template"),
        Flag("", "no-trunc", BOOL, "Do not truncate the output"),
        Flag("q", "quiet", BOOL, "Only display network IDs")], ls, 0, 0),
    "inspect": Command("[OPTIONS] NETWORK [NETWORK...]", "Display detailed information on one or more networks",
                       [Flag("f", "format", STR, "Format output using a custom template"),
                        Flag("v", "verbose", BOOL, "Verbose output for diagnostics")], inspect, 1),
    "rm": Command("NETWORK [NETWORK...]", "Remove one or more networks",
                  [Flag("f", "force", BOOL, "Do not error if the network does not exist")], rm, 1),
    "prune": Command("[OPTIONS]", "Remove all unused networks", [
        Flag("", "filter", LIST, "Provide filter values (e.g. \"until=<timestamp>\")"), Flag("f", "force", BOOL, "Do not prompt for confirmation")], prune, 0, 0),
    "connect": Command("[OPTIONS] NETWORK CONTAINER", "Connect a container to a network", [
        Flag("", "alias", LIST, "Add network-scoped alias for the container"),
        Flag("", "driver-opt", LIST, "driver options for the network"),
        Flag("", "ip", STR, "IPv4 address (e.g., \"172.30.100.104\")"),
        Flag("", "ip6", STR, "IPv6 address (e.g., \"2001:db8::33\")")], connect, 2, 2),
    "disconnect": Command("[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network",
                          [Flag("f", "force", BOOL, "Force the container to disconnect from a network")],
                          disconnect, 2, 2),
    "port": Command("CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container",
                    [], port, 1, 2),
}
