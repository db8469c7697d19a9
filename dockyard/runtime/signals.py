"""Signal names and numbers as the runtime command line accepts them (TERM, SIGTERM, 15)."""

from __future__ import annotations

import _signal  # the C module: `signal` imports enum, too slow for a command run this often

from dockyard.runtime.errors import RuntimeFailure


def parse_signal(value: str) -> int:
    """'KILL', 'SIGKILL', 'sigkill', '9', 'RTMIN+3' -> the signal number; others are refused."""
    text = value.strip()
    if text.isdigit():
        num = int(text)
        if 0 < num <= _signal.SIGRTMAX:
            return num
        raise RuntimeFailure(f"invalid signal: {value}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        if name.startswith(base) and name[len(base):].isdigit():
            num = (_signal.SIGRTMIN if sign > 0 else _signal.SIGRTMAX) + sign * int(name[len(base):])
            if _signal.SIGRTMIN <= num <= _signal.SIGRTMAX:
                return num
    num = getattr(_signal, name, None)
    if not isinstance(num, int) or name.startswith("SIG_"):
        raise RuntimeFailure(f"invalid signal: {value}")
    return num
