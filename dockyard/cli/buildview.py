"""`build --progress=tty`: the build's output with a live status line kept at the bottom
(elapsed time, steps done, the current step), redrawn as messages arrive and every 100 ms."""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import TextIO

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")


class LiveView:
    """Writes stream text above a status line on a terminal."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.start = time.monotonic()
        self.step, self.total, self.current = 0, 0, ""
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True)
        self.ticker.start()

    def _status(self) -> str:
        elapsed = time.monotonic() - self.start
        where = f" ({self.step}/{self.total}) {self.current}" if self.total else ""
        return f"[+] Building {elapsed:.1f}s{where}"[:200]

    def _tick(self) -> None:
        while not self.done.wait(0.1):
            with self.lock:
                self.out.write("\r\x1b[K" + self._status())
                self.out.flush()

    def write(self, text: str) -> None:
        """Stream text above the status line."""
        with self.lock:
            for line in text.splitlines():
                m = _STEP.match(line)
                if m:
                    self.step, self.total, self.current = int(m.group(1)), int(m.group(2)), m.group(3)
            self.out.write("\r\x1b[K" + text + ("" if text.endswith("\n") else "\n") + self._status())
            self.out.flush()

    def close(self, ok: bool) -> None:
        """Stop the ticker and leave the final status line."""
        self.done.set()
        self.ticker.join()
        with self.lock:
            self.out.write("\r\x1b[K" + self._status() + (" FINISHED\n" if ok else " ERROR\n"))
            self.out.flush()
