"""Signal names and numbers as the runtime command line accepts them (TERM, SIGTERM, 15)."""

from __future__ import annotations

import signal

from dockyard.runtime.errors import RuntimeFailure


def parse_signal(value: str) -> int:
    """'KILL', 'SIGKILL', 'sigkill' or '9' -> 9; unknown signals are refused."""
    text = value.strip()
    if text.isdigit():
        num = int(text)
        if 0 < num <= signal.SIGRTMAX:
            return num
        raise RuntimeFailure(f"invalid signal: {value}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        base, _, off = name[3:].partition("+" if "+" in name else "-")
        if off.isdigit():
            num = signal.SIGRTMIN + int(off) if base == "RTMIN" else signal.SIGRTMAX - int(off)
            if signal.SIGRTMIN <= num <= signal.SIGRTMAX:
                return num
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    if sig is None:
        raise RuntimeFailure(f"invalid signal: {value}")
    return int(sig)
