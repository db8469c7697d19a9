"""stats: a live table of containers' CPU, memory, network, block I/O and PIDs, computed from the
daemon's stats samples exactly as the docker CLI does."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

from dockyard.cli import format as fmt
from dockyard.cli.flags import BOOL, STR, Command, Flag
from dockyard.cli.runner import Cli, CommandError
from dockyard.client.api import APIError
from dockyard.humanize import bytes_size, human_size

TYPE_CHECKING = False  # typing costs 5 ms to import; annotations only
if TYPE_CHECKING:
    from typing import Any

DEFAULT_FORMAT = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
           "PIDs": "PIDS"}
CLEAR = "\033[2J\033[H"


def cpu_percent(doc: dict[str, Any]) -> float:
    """CPU usage between the sample and its precpu_stats, in % of one CPU (times online CPUs)."""
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    return cpu_delta / system_delta * cpus * 100 if system_delta > 0 and cpu_delta > 0 else 0.0


def memory_usage(mem: dict[str, Any]) -> int:
    """Usage without the page cache that could be reclaimed (v1: total_inactive_file, v2: inactive_file)."""
    usage, stats = mem.get("usage", 0), mem.get("stats") or {}
    inactive = stats["total_inactive_file"] if "total_inactive_file" in stats else stats.get("inactive_file", 0)
    return usage - inactive if inactive < usage else usage


def row(name: str, doc: dict[str, Any]) -> dict[str, str]:
    """The template fields of one container's sample (zeroes for a container that does not run),
    keys sorted as `{{json .}}` prints them."""
    out = {"Container": name, "ID": doc.get("id", "")[:12], "Name": (doc.get("name") or "").lstrip("/")}
    mem = doc.get("memory_stats") or {}
    used, limit = memory_usage(mem), mem.get("limit", 0)
    nets = (doc.get("networks") or {}).values()
    blkio = (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = sum(e.get("value", 0) for e in blkio if str(e.get("op", "")).lower() == "read")
    write = sum(e.get("value", 0) for e in blkio if str(e.get("op", "")).lower() == "write")
    fields = {**out, "CPUPerc": f"{cpu_percent(doc):.2f}%", "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
              "MemPerc": f"{used / limit * 100 if limit else 0:.2f}%",
              "NetIO": f"{human_size(sum(n.get('rx_bytes', 0) for n in nets))} / "
                       f"{human_size(sum(n.get('tx_bytes', 0) for n in nets))}",
              "BlockIO": f"{human_size(read)} / {human_size(write)}",
              "PIDs": str((doc.get("pids_stats") or {}).get("current", 0))}
    return dict(sorted(fields.items()))


def _samples(cli: Cli, names: list[str]) -> tuple[dict[str, dict[str, Any] | None], list[str]]:
    """One sample (stream=0: with CPU figures) per container, fetched in parallel; errors."""
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(names)
    errors: list[str] = []

    def fetch(name: str) -> None:
        try:
            resp = cli.client.call("GET", f"/containers/{name}/stats", {"stream": 0})
            found[name] = resp if isinstance(resp, dict) else json.loads(resp)
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")

    threads = [threading.Thread(target=fetch, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found, errors


def stats(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    while True:
        names = args or [c["Id"][:12] for c in cli.client.containers(all=opts.all)]
        found, errors = _samples(cli, names)
        if errors and (args or opts.no_stream):
            raise CommandError("\n".join(errors))
        rows = [row(n, d) for n, d in found.items() if d is not None]
        if opts.no_trunc:
            for r, d in zip(rows, [d for d in found.values() if d is not None], strict=True):
                r["ID"] = d.get("id", r["ID"])
        if not opts.no_stream:
            cli.write(CLEAR)
        fmt.print_objects(rows, opts.format or "", DEFAULT_FORMAT, HEADERS, cli.write)
        if opts.no_stream:
            return 0
        cli.out.flush()
        if not names:
            time.sleep(1)


COMMANDS = {
    "stats": Command("[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage statistics",
                     [Flag("a", "all", BOOL, "Show all containers (default shows just running)"),
                      Flag("", "format", STR, "Format output using a custom template"),
                      Flag("", "no-stream", BOOL, "Disable streaming stats and only pull the first result"),
                      Flag("", "no-trunc", BOOL, "Do not truncate output")], stats, 0),
}
