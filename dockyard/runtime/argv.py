"""A small command-line parser in the style runc's users expect (urfave/cli): flags before
positional arguments, `-flag`, `--flag`, `--flag=value`, repeatable flags. It exists because
argparse costs more start-up time than a whole container start may take."""

from __future__ import annotations

import sys


class UsageError(Exception):
    """Bad command line; the message says which flag or argument."""


class Flag:
    """One option. kind: 'bool', 'value' or 'list' (repeatable)."""

    def __init__(self, names: str, kind: str = "bool", default: object = None, help: str = "",
                 choices: tuple[str, ...] | None = None, dest: str | None = None) -> None:
        self.names = names.split(",")
        self.kind = kind
        self.default = [] if kind == "list" else (False if kind == "bool" and default is None else default)
        self.help = help
        self.choices = choices
        self.dest = dest or max(self.names, key=len).replace("-", "_")


class Command:
    """A verb: its flags, named positional arguments, and optionally a trailing argument list."""

    def __init__(self, name: str, help: str, flags: list[Flag] | None = None, args: tuple[str, ...] = (),
                 optional: tuple[str, ...] = (), rest: str | None = None, aliases: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help = help
        self.flags = flags or []
        self.args = args
        self.optional = optional
        self.rest = rest
        self.aliases = aliases

    def usage(self, prog: str) -> str:
        parts = [prog, self.name, "[options]" if self.flags else ""]
        parts += [f"<{a}>" for a in self.args] + [f"[{a}]" for a in self.optional]
        if self.rest:
            parts.append(f"[{self.rest} ...]")
        lines = [" ".join(p for p in parts if p), "", self.help]
        for f in self.flags:
            shown = ", ".join(("-" if len(n) == 1 else "--") + n for n in f.names)
            lines.append(f"  {shown}{' VALUE' if f.kind != 'bool' else ''}\t{f.help}")
        return "\n".join(lines)


class Namespace:
    """Parsed values as attributes."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def _index(flags: list[Flag]) -> dict[str, Flag]:
    return {n: f for f in flags for n in f.names}


def _take_flags(argv: list[str], flags: list[Flag], values: dict[str, object], stop_at_positional: bool,
                where: str) -> list[str]:
    """Consume flags from argv into values; return what is left (positionals and beyond)."""
    table = _index(flags)
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return rest + argv[i + 1:]
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                return rest + argv[i:]
            rest.append(arg)
            i += 1
            continue
        name, eq, inline = arg.lstrip("-").partition("=")
        flag = table.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: {arg} ({where})")
        if flag.kind == "bool":
            values[flag.dest] = inline.lower() not in ("false", "0") if eq else True
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: {arg}")
            value = argv[i + 1]
            i += 2
        if flag.choices and value not in flag.choices:
            raise UsageError(f"invalid value {value!r} for {arg}: choose from {', '.join(flag.choices)}")
        if flag.kind == "list":
            values[flag.dest].append(value)  # type: ignore[union-attr]
        else:
            values[flag.dest] = value
    return rest


def parse(argv: list[str], global_flags: list[Flag], commands: list[Command],
          prog: str) -> tuple[Command | None, Namespace]:
    """Parse `prog [global flags] command [flags] args...`."""
    values: dict[str, object] = {f.dest: f.default for f in global_flags}
    rest = _take_flags(argv, global_flags, values, True, prog)
    if not rest:
        return None, Namespace(**values)
    by_name = {n: c for c in commands for n in (c.name, *c.aliases)}
    cmd = by_name.get(rest[0])
    if cmd is None:
        raise UsageError(f"unknown command {rest[0]!r}: see `{prog} --help`")
    values["command"] = cmd.name
    values.update({f.dest: (list(f.default) if f.kind == "list" else f.default) for f in cmd.flags})
    args = rest[1:]
    if "--help" in args[:1] or "-h" in args[:1]:
        sys.stdout.write(cmd.usage(prog) + "\n")
        raise SystemExit(0)
    args = _take_flags(args, cmd.flags, values, cmd.rest is not None, f"{prog} {cmd.name}")
    if cmd.rest is not None:
        # Flags may still come before the first positional; after it, everything is the rest.
        for name in cmd.args:
            if not args:
                raise UsageError(f"{prog} {cmd.name}: missing <{name}>")
            values[name] = args.pop(0)
        values[cmd.rest] = args
        return cmd, Namespace(**values)
    for name in cmd.args:
        if not args:
            raise UsageError(f"{prog} {cmd.name}: missing <{name}>")
        values[name] = args.pop(0)
    for name in cmd.optional:
        values[name] = args.pop(0) if args else None
    if args:
        raise UsageError(f"{prog} {cmd.name}: unexpected arguments {' '.join(args)}")
    return cmd, Namespace(**values)


def global_usage(prog: str, description: str, global_flags: list[Flag], commands: list[Command]) -> str:
    lines = [f"usage: {prog} [global options] COMMAND [options] [arguments]", "", description, "",
             "commands:"]
    lines += [f"  {c.name:10} {c.help}" for c in commands]
    lines += ["", "global options:"]
    lines += [f"  {', '.join('--' + n for n in f.names):24} {f.help}" for f in global_flags]
    return "\n".join(lines)
