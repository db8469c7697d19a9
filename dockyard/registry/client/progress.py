"""Docker's JSON progress messages for pull and push: one status line per layer ID, with
"progressDetail" and the text bar docker prints."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Sink = Callable[[dict[str, Any]], None]
INTERVAL = 0.1


def _human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.3g}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    return f"{size:.3g}GB"


def bar(current: int, total: int) -> str:
    """Docker's progress text: "[=====>      ]  1.2MB/3.4MB"."""
    if total <= 0:
        return f"{_human(current)}"
    width = 50
    filled = min(width, int(width * current / total))
    arrow = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled)
    return f"[{arrow}] {_human(current):>8}/{_human(total)}"


class Progress:
    """Thread-safe emitter of progress messages to sink (None: discard)."""

    def __init__(self, sink: Sink | None = None) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def status(self, text: str, id: str = "", **extra: Any) -> None:
        """A plain status line (with the layer ID, when given)."""
        message: dict[str, Any] = {"status": text}
        if id:
            message["progressDetail"] = {}
            message["id"] = id
        message.update(extra)
        self._emit(message)

    def aux(self, data: dict[str, Any]) -> None:
        """An aux message (push's Tag/Digest/Size)."""
        self._emit({"progressDetail": {}, "aux": data})

    def update(self, action: str, id: str, current: int, total: int, force: bool = False) -> None:
        """A byte count for a layer, rate-limited to one message per INTERVAL per layer."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last.get(id, 0) < INTERVAL:
                return
            self._last[id] = now
        self._emit({"status": action, "progressDetail": {"current": current, "total": total},
                    "progress": bar(current, total), "id": id})

    def _emit(self, message: dict[str, Any]) -> None:
        if self._sink is not None:
            with self._lock:
                self._sink(message)
