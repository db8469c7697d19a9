"""Detach keys: the byte sequence (ctrl-p,ctrl-q unless the client names another) that ends an
attached tty session from the client's side while the container or exec keeps running."""

from __future__ import annotations

DEFAULT_KEYS = "ctrl-p,ctrl-q"
_CTRL_SYMBOLS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_keys(spec: str) -> bytes:
    """"ctrl-p,ctrl-q" -> b"\\x10\\x11"; each key is one character or ctrl-<a-z @ [ \\ ] ^ _>."""
    out = bytearray()
    for key in spec.split(","):
        name = key.strip().lower()
        if len(key) == 1:
            out.append(ord(key))
        elif name.startswith("ctrl-") and len(name) == 6 and "a" <= name[5] <= "z":
            out.append(ord(name[5]) - ord("a") + 1)
        elif name.startswith("ctrl-") and len(name) == 6 and name[5] in _CTRL_SYMBOLS:
            out.append(_CTRL_SYMBOLS[name[5]])
        else:
            raise ValueError(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class DetachWatcher:
    """Scans the client's input for the sequence: bytes that may start it are held back until it
    completes (detach; they are dropped) or breaks (they are passed on)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the sequence completed)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
            if self.keys.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False
