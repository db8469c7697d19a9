"""Container output with Docker Compose's per-container prefixes (`web-1  | `), coloured on a
terminal: `logs` (-f) and the attached `up`."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from dockyard.client import http
from dockyard.client.api import Client

# Docker Compose's rotation of ANSI colours
_COLOURS = ["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"]


class Printer:
    """Writes whole lines with a padded, optionally coloured prefix; thread-safe."""

    def __init__(self, names: list[str], colour: bool, prefix: bool = True, out: BinaryIO | None = None) -> None:
        self.width = max((len(n) for n in names), default=0)
        self.colours = {n: _COLOURS[i % len(_COLOURS)] for i, n in enumerate(names)}
        self.colour = colour
        self.prefix = prefix
        self.out = out or sys.stdout.buffer
        self.lock = threading.Lock()

    def head(self, name: str) -> bytes:
        if not self.prefix:
            return b""
        text = f"{name.ljust(self.width)}  | "
        if self.colour:
            text = f"\x1b[{self.colours.get(name, '0')}m{text}\x1b[0m"
        return text.encode()

    def write(self, name: str, line: bytes) -> None:
        with self.lock:
            self.out.write(self.head(name) + line + (b"" if line.endswith(b"\n") else b"\n"))
            self.out.flush()

    def message(self, text: str) -> None:
        with self.lock:
            self.out.write(text.encode() + b"\n")
            self.out.flush()


def short_name(project: str, container: dict[str, Any]) -> str:
    """`proj-web-1` → `web-1` (Compose's log prefix); a custom container_name stays."""
    name = (container.get("Names") or ["/?"])[0].lstrip("/")
    return name[len(project) + 1:] if name.startswith(project + "-") else name


def stream(client: Client, container: dict[str, Any], label: str, printer: Printer, query: dict[str, Any]) -> None:
    """Copy one container's log (query: the logs endpoint's follow, tail, timestamps, since,
    until) to the printer line by line, until it ends."""
    tty = (client.inspect_container(container["Id"]).get("Config") or {}).get("Tty")
    resp = client.logs(container["Id"], {"stdout": 1, "stderr": 1, **query})
    pending: dict[int, bytes] = {}
    frames = http.raw_stream(resp) if tty else http.demux(resp)
    try:
        for kind, data in frames:
            data = pending.pop(kind, b"") + data
            *lines, rest = data.split(b"\n")
            for line in lines:
                printer.write(label, line.rstrip(b"\r"))
            if rest:
                pending[kind] = rest
    except OSError:
        pass
    finally:
        resp.close()
    for rest in pending.values():
        printer.write(label, rest)


def follow_all(client: Client, project: str, containers: list[dict[str, Any]], printer: Printer,
               query: dict[str, Any], on_exit: Callable[[dict[str, Any], str], None] | None = None) -> None:
    """Stream several containers' logs at once; on_exit runs as each stream ends."""
    def one(c: dict[str, Any]) -> None:
        label = short_name(project, c)
        stream(client, c, label, printer, query)
        if on_exit:
            on_exit(c, label)
    threads = [threading.Thread(target=one, args=(c,), daemon=True) for c in containers]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
