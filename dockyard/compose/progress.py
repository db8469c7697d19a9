"""Docker Compose's plain progress lines on stderr: ` Container proj-web-1  Started`."""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class Progress:
    """Thread-safe progress writer (quiet drops everything)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, prefix: str = "") -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.prefix = prefix  # before each event (--dry-run's " DRY-RUN MODE - ")
        self.lock = threading.Lock()

    def event(self, kind: str, name: str, status: str) -> None:
        self.line(f"{self.prefix} {kind} {name}  {status}")

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()
