"""A parsed Dockerfile split into stages: global ARGs, FROM lines, each stage's instructions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from dockyard.build.parser import Command, Dockerfile, ParseError
from dockyard.build.shell import Lex, ShellError
from dockyard.image.bootstrap_busybox import host_platform

INSTRUCTIONS = {"from", "arg", "env", "workdir", "copy", "add", "run", "user", "expose", "volume", "entrypoint",
                "cmd", "healthcheck", "label", "shell", "stopsignal", "onbuild", "maintainer"}
# args every build knows without declaring them (Docker's predefined proxy args)
PREDEFINED_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                   "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_\.]*$")


@dataclass
class Stage:
    """One FROM ... [AS name] and the instructions up to the next FROM."""

    index: int
    name: str
    base: str
    platform: str
    line: int
    original: str
    commands: list[Command] = field(default_factory=list)


@dataclass
class Plan:
    """The Dockerfile's stages and the global ARGs (name → value after build args)."""

    stages: list[Stage]
    global_args: dict[str, str]
    declared: set[str]
    escape: str
    meta: list[Command] = field(default_factory=list)  # the ARGs before the first FROM


def platform_args() -> dict[str, str]:
    """BuildKit's automatic platform ARGs (the host's: builds run on it only)."""
    arch, variant = host_platform()
    platform = "/".join(p for p in ("linux", arch, variant) if p)
    out = {}
    for prefix in ("BUILD", "TARGET"):
        out.update({f"{prefix}PLATFORM": platform, f"{prefix}OS": "linux", f"{prefix}ARCH": arch,
                    f"{prefix}VARIANT": variant})
    return out


def parse_flags(cmd: Command, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """An instruction's `--name=value` flags (a name may repeat); unknown ones are errors."""
    out: dict[str, list[str]] = {}
    for flag in cmd.flags:
        body = flag[2:]
        name, eq, value = body.partition("=")
        if name not in allowed:
            raise ParseError(f"unknown flag: {name}", cmd.start_line, cmd.end_line)
        if not eq and name not in ("link", "parents", "keep-git-dir"):
            raise ParseError(f"missing a value on flag: {name}", cmd.start_line, cmd.end_line)
        out.setdefault(name, []).append(value if eq else "true")
    return out


def split_arg(word: str) -> tuple[str, str | None]:
    """An ARG word: (name, default or None)."""
    name, eq, value = word.partition("=")
    return name, (value if eq else None)


def plan(df: Dockerfile, build_args: dict[str, str | None], platform: bool = True) -> Plan:
    """Split df into stages; FROM lines are expanded with the global ARGs (with BuildKit's
    automatic platform ARGs unless not platform: the classic builder has none)."""
    lex = Lex(df.escape)
    global_args: dict[str, str] = platform_args() if platform else {}
    declared: set[str] = set()
    stages: list[Stage] = []
    meta: list[Command] = []
    for cmd in df.commands:
        kind = (cmd.cmd or "").lower()
        if kind not in INSTRUCTIONS:
            raise ParseError(f"unknown instruction: {(cmd.cmd or '').upper()}", cmd.start_line, cmd.end_line)
        if kind == "from":
            flags = parse_flags(cmd, ("platform",))
            words = list(cmd.value)
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                raise ParseError("FROM requires either one or three arguments", cmd.start_line, cmd.end_line)
            try:
                base = lex.process_word(words[0], global_args)
                platform = lex.process_word((flags.get("platform") or [""])[0], global_args)
            except ShellError as e:
                raise ParseError(str(e), cmd.start_line, cmd.end_line) from None
            name = words[2].lower() if len(words) == 3 else ""
            if name and not _STAGE_NAME.match(name):
                raise ParseError(f"invalid name for build stage: {json.dumps(words[2], ensure_ascii=False)}, name can't start with a number "
                                 "or contain symbols", cmd.start_line, cmd.end_line)
            if name and any(s.name == name for s in stages):
                raise ParseError(f"duplicate stage name {name!r}", cmd.start_line, cmd.end_line)
            stages.append(Stage(len(stages), name, base, platform, cmd.start_line, cmd.original or ""))
        elif not stages:
            if kind != "arg":
                raise ParseError("no build stage in current context", cmd.start_line, cmd.end_line)
            meta.append(cmd)
            for word in cmd.value:
                name, default = split_arg(word)
                declared.add(name)
                if name in build_args and build_args[name] is not None:
                    global_args[name] = build_args[name]  # type: ignore[assignment]
                elif default is not None:
                    try:
                        global_args[name] = lex.process_word(default, global_args)
                    except ShellError as e:
                        raise ParseError(str(e), cmd.start_line, cmd.end_line) from None
        else:
            _check(cmd)
            stages[-1].commands.append(cmd)
    if not stages:
        raise ParseError("the Dockerfile has no FROM instruction", df.commands[-1].start_line)
    return Plan(stages, global_args, declared, df.escape, meta)


def _check(cmd: Command) -> None:
    """What Docker refuses before building anything: chained or FROM/MAINTAINER ONBUILD
    triggers, HEALTHCHECK durations that do not parse."""
    kind = (cmd.cmd or "").lower()
    if kind == "onbuild":
        sub = (cmd.sub_cmd or "").upper()
        if sub == "ONBUILD":
            raise ParseError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", cmd.start_line, cmd.end_line)
        if sub in ("FROM", "MAINTAINER"):
            raise ParseError(f"{sub} isn't allowed as an ONBUILD trigger", cmd.start_line, cmd.end_line)
    elif kind == "healthcheck":
        for flag in cmd.flags:
            name, _, value = flag[2:].partition("=")
            if name in ("interval", "timeout", "start-period", "start-interval"):
                duration_ns(value, cmd)


def duration_ns(value: str, cmd: Command) -> int:
    """A Go duration (`1m30s`, `500ms`) in nanoseconds; Go's error otherwise."""
    parts = re.findall(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)", value)
    if not parts or "".join(a + b for a, b in parts) != value:
        raise ParseError(f"time: invalid duration {json.dumps(value, ensure_ascii=False)}", cmd.start_line,
                         cmd.end_line)
    units = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
    return int(sum(float(number) * units[unit] for number, unit in parts))


def find_stage(stages: list[Stage], ref: str, before: int) -> Stage | None:
    """The stage a FROM/--from reference names among the first `before` stages (name or index)."""
    ref_l = ref.lower()
    for s in stages[:before]:
        if s.name and s.name == ref_l:
            return s
    if ref.isdigit() and int(ref) < before:
        return stages[int(ref)]
    return None
