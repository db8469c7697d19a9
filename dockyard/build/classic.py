"""What dockerd's classic builder writes where BuildKit writes something else: its history texts
(`/bin/sh -c #(nop)  ENV a=b`, `|1 A=b /bin/sh -c ...`, `COPY file:<hash> in /dst `), its
EXPOSE and HEALTHCHECK texts, and the HEALTHCHECK fields a child inherits. The /build API follows
them for uploaded contexts (the classic builder's protocol); dockyard's own CLI gets BuildKit's."""

from __future__ import annotations

import hashlib
import json
from typing import Any

_HEALTH_FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def nop(shell: list[str], text: str) -> str:
    """A metadata step's history text: the shell, `#(nop) ` and the instruction (two spaces)."""
    return " ".join([*shell, "#(nop) ", text])


def nop_string(shell: list[str], text: str) -> str:
    """WORKDIR's and COPY/ADD's history text: `#(nop) ` glued to the instruction (one space)."""
    return " ".join([*shell, "#(nop) " + text])


def run_text(args: list[str], build_args: dict[str, str]) -> str:
    """A RUN's history text: `|N k=v ...` (the ARGs with a value not shadowed by ENV, sorted)
    before the command line."""
    prefix = [f"|{len(build_args)}", *(f"{k}={v}" for k, v in sorted(build_args.items()))] if build_args else []
    return " ".join([*prefix, *args])


def expose_text(words: list[str]) -> str:
    """EXPOSE's history text: the words as written, sorted (before expansion), then expanded."""
    return "EXPOSE " + " ".join(words)


def _go_rune(n: int) -> str:
    """An int formatted by Go's %q (strconv.QuoteRune)."""
    special = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 39: "\\'", 92: "\\\\"}
    if n in special:
        return f"'{special[n]}'"
    if 0 <= n < 0x80:
        return f"'{chr(n)}'" if chr(n).isprintable() else f"'\\x{n:02x}'"
    return f"'{chr(n)}'" if n <= 0x10FFFF and chr(n).isprintable() else f"'\\u{n:04x}'"


def healthcheck_text(check: dict[str, Any], duration: Any) -> str:
    """HEALTHCHECK's history text: Go's %q of the HealthConfig pointer, as dockerd 20.10 prints it."""
    test = "[" + " ".join(json.dumps(t, ensure_ascii=False) for t in check["Test"]) + "]"
    times = " ".join(f'"{duration(check.get(k, 0))}"' for k in ("Interval", "Timeout", "StartPeriod"))
    return f"HEALTHCHECK &{{{test} {times} {_go_rune(check.get('Retries', 0))}}}"


def inherit_healthcheck(check: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
    """The daemon's commit fills a HEALTHCHECK's unset (zero) fields from the parent image's."""
    merged = dict(check)
    for key in _HEALTH_FIELDS:
        if not merged.get(key) and parent and parent.get(key):
            merged[key] = parent[key]
    return merged


def source_hash(matches: list[tuple[str, bool, dict[str, str]]], downloaded: bool = False) -> str:
    """The `file:`/`dir:`/`multi:` name of COPY/ADD sources in the history: one file, one
    directory or several sources, with a sha256 of their contents (matches: (path, is a
    directory, the digests of its files by path)); a downloaded file's hash has no prefix. Not
    dockerd's tarsum, which hashes tar headers."""
    def one(path: str, is_dir: bool, digests: dict[str, str]) -> str:
        if not is_dir:
            return ("" if downloaded else "file:") + hashlib.sha256("".join(digests.values()).encode()).hexdigest()
        inside = sorted(f"{p.removeprefix(path)}={d}" for p, d in digests.items())
        return "dir:" + hashlib.sha256(",".join(inside).encode()).hexdigest()
    names = [one(*m) for m in matches]
    if len(names) == 1:
        return names[0]
    return "multi:" + hashlib.sha256(",".join(names).encode()).hexdigest()
