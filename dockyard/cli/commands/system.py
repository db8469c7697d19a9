"""version, info, system df, events."""

from __future__ import annotations

import time
from types import SimpleNamespace

from dockyard.cli import format as fmt
from dockyard.cli.flags import BOOL, LIST, STR, Command, Flag, check_filter, parse_filters
from dockyard.cli.main import VERSION
from dockyard.cli.runner import Cli, CommandError, may_autostart
from dockyard.client import http
from dockyard.client.api import MAX_API_VERSION

TYPE_CHECKING = False  # typing costs 5 ms to import; annotations only
if TYPE_CHECKING:
    from typing import Any

FORMAT = Flag("f", "format", STR, "Format output using a custom template")


def version(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    import platform
    try:
        api = cli.client.version
    except http.ConnectError:
        if not opts.format and not may_autostart(cli.host):  # as docker: the client's part, then the error
            cli.write(_client_lines(MAX_API_VERSION, platform.python_version()) + "\n")
        raise
    client = {"Platform": {"Name": ""}, "Version": VERSION, "ApiVersion": api, "DefaultAPIVersion": MAX_API_VERSION,
              "GoVersion": "python" + platform.python_version(), "Os": "linux", "Arch": _arch(),
              "Context": "default"}
    server = cli.client.server_info_version()
    if opts.format:
        data = {"Client": fmt.Context(fmt.typed(client), "system.clientVersion", formatter=False),
                "Server": fmt.Context(fmt.typed(server), "types.Version", formatter=False)}
        fmt.print_template(opts.format, fmt.Context(data, "system.versionInfo", formatter=False), cli.write, "version")
        return 0
    lines = [_client_lines(api, platform.python_version()), "", f"Server: {server.get('Platform', {}).get('Name', '')}"]
    for component in server.get("Components") or []:
        details = component.get("Details") or {}
        lines.append(f" {component['Name']}:")
        lines.append(f"  {'Version:':<17} {component.get('Version', '')}")
        if component["Name"] == "Engine":
            lines += [f"  API version:      {details.get('ApiVersion')} (minimum version {details.get('MinAPIVersion')})",
                      f"  Go version:       {details.get('GoVersion', '')}",
                      f"  Git commit:       {details.get('GitCommit', '')}",
                      f"  Built:            {details.get('BuildTime', '')}",
                      f"  OS/Arch:          {details.get('Os')}/{details.get('Arch')}",
                      f"  Experimental:     {details.get('Experimental')}"]
        else:
            lines.append(f"  GitCommit:        {details.get('GitCommit', '')}")
    cli.write("\n".join(lines) + "\n")
    return 0


def _client_lines(api: str, python: str) -> str:
    """The Client section of `version`."""
    downgraded = f" (downgraded from {MAX_API_VERSION})" if api != MAX_API_VERSION else ""
    return "\n".join(["Client: dockyard", f" Version:           {VERSION}", f" API version:       {api}{downgraded}",
                      f" Python version:    {python}", f" OS/Arch:           linux/{_arch()}",
                      " Context:           default"])


def _arch() -> str:
    import platform
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def info(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    data = cli.client.info()
    if opts.format:
        fmt.print_template(opts.format, fmt.Context(fmt.typed(data), "system.dockerInfo", formatter=False), cli.write)
        return 0
    plugins = data.get("Plugins") or {}
    security = [dict(p.split("=", 1) for p in opt.split(",")) for opt in data.get("SecurityOptions") or []]
    lines = ["Client:", f" Version:    {VERSION}", " Context:    default", " Debug Mode: false", "",
             "Server:", f" Containers: {data.get('Containers')}", f"  Running: {data.get('ContainersRunning')}",
             f"  Paused: {data.get('ContainersPaused')}", f"  Stopped: {data.get('ContainersStopped')}",
             f" Images: {data.get('Images')}", f" Server Version: {data.get('ServerVersion')}",
             f" Storage Driver: {data.get('Driver')}",
             *(f"  {k}: {v}" for k, v in data.get("DriverStatus") or []),
             f" Logging Driver: {data.get('LoggingDriver')}", f" Cgroup Driver: {data.get('CgroupDriver')}",
             f" Cgroup Version: {data.get('CgroupVersion')}", " Plugins:",
             f"  Volume: {' '.join(plugins.get('Volume') or [])}",
             f"  Network: {' '.join(plugins.get('Network') or [])}",
             f"  Log: {' '.join(plugins.get('Log') or [])}",
             f" Swarm: {(data.get('Swarm') or {}).get('LocalNodeState', 'inactive')}",
             f" Runtimes: {' '.join(sorted(data.get('Runtimes') or {}))}",
             f" Default Runtime: {data.get('DefaultRuntime')}", f" Init Binary: {data.get('InitBinary')}",
             f" containerd version: {(data.get('ContainerdCommit') or {}).get('ID', '')}",
             f" runc version: {(data.get('RuncCommit') or {}).get('ID', '')}",
             f" init version: {(data.get('InitCommit') or {}).get('ID', '')}"]
    if security:
        lines.append(" Security Options:")
        for option in security:
            lines.append(f"  {option.get('name')}")
            lines += [f"   {k.capitalize()}: {v}" for k, v in option.items() if k != "name"]
    lines += [f" Kernel Version: {data.get('KernelVersion')}", f" Operating System: {data.get('OperatingSystem')}",
              f" OSType: {data.get('OSType')}", f" Architecture: {data.get('Architecture')}",
              f" CPUs: {data.get('NCPU')}", f" Total Memory: {_binary_size(data.get('MemTotal') or 0)}",
              f" Name: {data.get('Name')}", f" ID: {data.get('ID')}",
              f" Docker Root Dir: {data.get('DockerRootDir')}",
              f" Debug Mode: {str(bool(data.get('Debug'))).lower()}",
              f" Experimental: {str(bool(data.get('ExperimentalBuild'))).lower()}"]
    insecure = (data.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs") or []
    if insecure:
        lines += [" Insecure Registries:", *(f"  {cidr}" for cidr in insecure)]
    lines.append(f" Live Restore Enabled: {str(bool(data.get('LiveRestoreEnabled'))).lower()}")
    cli.write("\n".join(lines) + "\n\n")
    for warning in data.get("Warnings") or []:
        cli.error(warning)
    return 0


def _binary_size(size: float) -> str:
    """go-units BytesSize: 25325268992 → '23.59GiB'."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"


def df(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    data = cli.client.df()
    if opts.verbose and not opts.format:
        _df_verbose(cli, data)
        return 0
    images = data.get("Images") or []
    containers = data.get("Containers") or []
    volumes = data.get("Volumes") or []
    cache = data.get("BuildCache") or []
    total = data.get("LayersSize") or 0
    used = sum(i["Size"] - i.get("SharedSize", 0) for i in images if i.get("Containers"))
    volume_sizes = [((v.get("UsageData") or {}).get("Size", -1), (v.get("UsageData") or {}).get("RefCount", 0))
                    for v in volumes]
    rows = [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(sum(1 for i in images if i.get("Containers"))),
         "Size": fmt.human_size(total, 4), "Reclaimable": _reclaimable(total, total - used)},
        {"Type": "Containers", "TotalCount": str(len(containers)),
         "Active": str(sum(1 for c in containers if c.get("State") == "running")),
         "Size": fmt.human_size(sum(c.get("SizeRw") or 0 for c in containers), 4),
         "Reclaimable": _reclaimable(sum(c.get("SizeRw") or 0 for c in containers),
                                     sum(c.get("SizeRw") or 0 for c in containers if c.get("State") != "running"))},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)), "Active": str(sum(1 for _, r in volume_sizes if r)),
         "Size": fmt.human_size(sum(s for s, _ in volume_sizes if s > 0), 4),
         "Reclaimable": _reclaimable(sum(s for s, _ in volume_sizes if s > 0),
                                     sum(s for s, r in volume_sizes if s > 0 and not r))},
        {"Type": "Build Cache", "TotalCount": str(len(cache)), "Active": str(sum(1 for c in cache if c.get("InUse"))),
         "Size": fmt.human_size(sum(c.get("Size") or 0 for c in cache if not c.get("Shared")), 4),
         "Reclaimable": _reclaimable(sum(c.get("Size") or 0 for c in cache if not c.get("Shared")),
                                     sum(c.get("Size") or 0 for c in cache if not c.get("InUse") and not c.get("Shared")))},
    ]
    fmt.print_objects(rows, opts.format or "", "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                      {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                       "Reclaimable": "RECLAIMABLE"}, cli.write)
    return 0


def _df_verbose(cli: Cli, data: dict[str, Any]) -> None:
    """`system df -v`: a table per kind (the first tag of each image, no virtual sizes)."""
    from dockyard.cli.commands.containers import PS_HEADERS, container_row
    from dockyard.cli.commands.images import LS_HEADERS, image_rows

    images = [{**next(image_rows(i, False)), "UniqueSize": _size_or_na(i["Size"] - i["SharedSize"])
               if i.get("SharedSize", -1) >= 0 else "N/A"} for i in data.get("Images") or []]
    containers = [container_row({**c, "SizeRootFs": 0}, True) for c in data.get("Containers") or []]
    volumes = [{"Name": v["Name"], "Links": str((v.get("UsageData") or {}).get("RefCount", "N/A")),
                "Size": _size_or_na((v.get("UsageData") or {}).get("Size", -1))} for v in data.get("Volumes") or []]
    cache = sum(c.get("Size") or 0 for c in data.get("BuildCache") or [] if not c.get("Shared"))
    sections = (
        ("Images space usage:", images, "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
         "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", LS_HEADERS),
        ("\nContainers space usage:", containers, "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
         "{{.RunningFor}}\t{{.Status}}\t{{.Names}}", PS_HEADERS),
        ("\nLocal Volumes space usage:", volumes, "{{.Name}}\t{{.Links}}\t{{.Size}}",
         {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}),
        (f"\nBuild cache usage: {fmt.human_size(cache, 4)}", [],
         "{{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
         {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
          "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}),
    )
    for title, rows, template, headers in sections:
        cli.write(title + "\n\n")
        fmt.print_objects(rows, "", template, headers, cli.write)


def _size_or_na(size: int) -> str:
    return "N/A" if size < 0 else fmt.human_size(size, 4)


def _reclaimable(total: int, reclaimable: int) -> str:
    if total > 0:
        return f"{fmt.human_size(reclaimable, 4)} ({reclaimable * 100 // total}%)"
    return fmt.human_size(reclaimable, 4)


_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def timestamp(value: str, flag: str = "") -> str:
    """docker's --since/--until values: Unix seconds, a Go duration before now, or RFC 3339
    (flag: named in the error, as logs does)."""
    import re

    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    if parts and "".join(n + u for n, u in parts) == value:
        return f"{time.time() - sum(float(n) * _UNIT_SECONDS[u] for n, u in parts):.9f}"
    stamp = fmt.parse_time(value if "T" in value else value + "T00:00:00Z")
    if not stamp:
        prefix = f'invalid value for "{flag}": ' if flag else ""
        raise CommandError(f'{prefix}failed to parse value as time or duration: "{value}"')
    return f"{stamp:.9f}"


def events(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    resp = cli.client.events(timestamp(opts.since) if opts.since else None,
                             timestamp(opts.until) if opts.until else None, parse_filters(opts.filter))
    try:
        for event in resp.iter_json():
            for key in ("status", "id", "from"):  # omitempty in docker's events.Message
                if not event.get(key, True):
                    del event[key]
            if opts.format:
                line = fmt.render("{{json .}}" if opts.format == "json" else opts.format,
                                  fmt.Struct({k: fmt.typed(v, k) for k, v in event.items()}))
            else:
                line = _event_line(event)
            cli.write(line + "\n")
            cli.out.flush()
    finally:
        resp.close()
    return 0


def _event_line(event: dict[str, Any]) -> str:
    nanos = event.get("timeNano") or event.get("time", 0) * 1_000_000_000
    seconds, frac = divmod(nanos, 1_000_000_000)
    local = time.localtime(seconds)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    stamp += f".{frac:09d}"  # docker's RFC3339NanoFixed
    offset = local.tm_gmtoff
    stamp += "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    line = f"{stamp} {event.get('Type')} {event.get('Action')} {actor.get('ID', '')}"
    if attrs:
        line += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) + ")"
    return line


def prune(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    """system prune: stopped containers, unused networks, (--volumes) anonymous volumes, dangling
    (-a: unused) images and build cache, each section as its own prune prints it."""
    from dockyard.cli.commands.images import confirm

    items = ["all stopped containers", "all networks not used by at least one container"]
    if opts.volumes:
        items.append("all anonymous volumes not used by at least one container")
    items += ["all images without at least one container associated to them" if opts.all else "all dangling images",
              "all build cache" if opts.all else "unused build cache"]
    warning = "WARNING! This will remove:\n" + "".join(f"  - {item}\n" for item in items)
    if not opts.force and not confirm(cli, warning):
        return 0
    filters = parse_filters(opts.filter)
    reclaimed = 0

    def section(title: str, path: str, key: str, query: dict[str, Any]) -> dict[str, Any]:
        nonlocal reclaimed
        report = cli.client.call("POST", path, query)
        reclaimed += report.get("SpaceReclaimed") or 0
        lines = report.get(key) or []
        if lines:
            cli.write(f"{title}\n" + "".join(f"{line}\n" for line in lines) + "\n")
        return report

    section("Deleted Containers:", "/containers/prune", "ContainersDeleted", {"filters": filters or None})
    section("Deleted Networks:", "/networks/prune", "NetworksDeleted", {"filters": filters or None})
    if opts.volumes:
        section("Deleted Volumes:", "/volumes/prune", "VolumesDeleted", {"filters": filters or None})
    images = cli.client.prune_images({**filters, "dangling": {"false" if opts.all else "true": True}})
    reclaimed += images.get("SpaceReclaimed") or 0
    deleted = [f"{k.lower()}: {v}" for item in images.get("ImagesDeleted") or [] for k, v in item.items()]
    if deleted:
        cli.write("Deleted Images:\n" + "".join(f"{line}\n" for line in deleted) + "\n")
    section("Deleted build cache objects:", "/build/prune", "CachesDeleted", {"all": 1 if opts.all else None})
    cli.write(f"Total reclaimed space: {fmt.human_size(reclaimed, 4)}\n")
    return 0


COMMANDS = {
    "prune": Command("[OPTIONS]", "Remove unused data",
                     [Flag("a", "all", BOOL, "Remove all unused images not just dangling ones"),
                      Flag("", "filter", LIST, "Provide filter values (e.g. \"label=<key>=<value>\")", check=check_filter),
                      Flag("f", "force", BOOL, "Do not prompt for confirmation"),
                      Flag("", "volumes", BOOL, "Prune anonymous volumes")], prune, 0, 0),
    "version": Command("[OPTIONS]", "Show the dockyard version information", [FORMAT], version, 0, 0),
    "info": Command("[OPTIONS]", "Display system-wide information", [FORMAT], info, 0, 0),
    "df": Command("[OPTIONS]", "Show dockyard disk usage",
                  [FORMAT, Flag("v", "verbose", BOOL, "Show detailed information on space usage")], df, 0, 0),
    "events": Command("[OPTIONS]", "Get real time events from the server",
                      [Flag("f", "filter", LIST, "Filter output based on conditions provided", check=check_filter), FORMAT,
                       Flag("", "since", STR, "Show all events created since timestamp"),
                       Flag("", "until", STR, "Stream events until this timestamp")], events, 0, 0),
}
