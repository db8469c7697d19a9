"""Docker-style (pflag) command lines: `-a -q`, `-aq`, `-n5`, `--name=x`, `--name x`, repeated
list flags, `--`, and optionally no interspersed flags after the first argument (run, exec)."""

from __future__ import annotations

from types import SimpleNamespace

TYPE_CHECKING = False  # collections.abc costs 2 ms to import: annotations only
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

BOOL, STR, LIST, INT = "bool", "str", "list", "int"


class UsageError(Exception):
    """A command line docker would refuse (exit 125 unless the command says otherwise)."""


class Flag:
    """One flag: short name ('' if none), long name, kind, help text, default, and check: a
    function that validates (and may convert) each value, raising ValueError with docker's text."""

    __slots__ = ("short", "long", "kind", "help", "default", "check")

    def __init__(self, short: str, long: str, kind: str, help: str = "", default: object = None,
                 check: Callable[[str], object] | None = None) -> None:
        self.short, self.long, self.kind, self.help, self.check = short, long, kind, help, check
        self.default = default if default is not None else {BOOL: False, LIST: []}.get(kind)

    @property
    def dest(self) -> str:
        return self.long.replace("-", "_")

    @property
    def names(self) -> str:
        """'-m, --memory' or '--cpus', as pflag names a flag in errors."""
        return (f"-{self.short}, " if self.short else "") + f"--{self.long}"


class Command:
    """A command: its usage line, one-line description, flags and the function that runs it."""

    def __init__(self, usage: str, short: str, flags: Sequence[Flag], run: Callable[..., int],
                 min_args: int = 0, max_args: int | None = None, interspersed: bool = True) -> None:
        self.usage, self.short, self.flags, self.run = usage, short, list(flags), run
        self.min_args, self.max_args, self.interspersed = min_args, max_args, interspersed

    def help(self, prog: str) -> str:
        """The --help text, docker's layout."""
        lines = [f"\nUsage:  {prog} {self.usage}\n", self.short, ""]
        if self.flags:
            lines.append("Options:")
            for flag in self.flags:
                names = (f"-{flag.short}, " if flag.short else "    ") + f"--{flag.long}"
                if flag.kind != BOOL:
                    names += " " + {INT: "int", LIST: "list"}.get(flag.kind, "string")
                lines.append(f"  {names:<26} {flag.help}")
        return "\n".join(lines) + "\n"

    def parse(self, argv: list[str]) -> tuple[SimpleNamespace, list[str]]:
        """(options, positional arguments); UsageError for unknown flags or missing values."""
        by_name = {f"--{f.long}": f for f in self.flags}
        by_name.update({f"-{f.short}": f for f in self.flags if f.short})
        opts = SimpleNamespace(**{f.dest: list(f.default) if f.kind == LIST else f.default for f in self.flags},
                               help=False)
        args: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                args.extend(argv[i:])
                break
            if arg == "--help" or (arg == "-h" and "-h" not in by_name):
                opts.help = True
                continue
            if not arg.startswith("-") or arg == "-":
                args.append(arg)
                if not self.interspersed:
                    args.extend(argv[i:])
                    break
                continue
            if arg.startswith("--"):
                name, eq, value = arg.partition("=")
                flag = by_name.get(name)
                if flag is None:
                    raise UsageError(f"unknown flag: {name}")
                if flag.kind == BOOL:
                    _set(opts, flag, value.lower() not in ("false", "0") if eq else True)
                    continue
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: {name}")
                    value = argv[i]
                    i += 1
                _set(opts, flag, value)
                continue
            j = 1
            while j < len(arg):
                flag = by_name.get("-" + arg[j])
                if flag is None:
                    if arg[j] == "h":
                        opts.help = True
                        j += 1
                        continue
                    raise UsageError(f"unknown shorthand flag: {arg[j]!r} in {arg}")
                j += 1
                if flag.kind == BOOL:
                    if arg[j:j + 1] == "=":  # -H=false
                        _set(opts, flag, arg[j + 1:].lower() not in ("false", "0"))
                        break
                    _set(opts, flag, True)
                    continue
                value = arg[j:].removeprefix("=")
                if not value:
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: {arg[j - 1]!r} in -{arg[j - 1]}")
                    value = argv[i]
                    i += 1
                _set(opts, flag, value)
                break
        return opts, args


def _set(opts: SimpleNamespace, flag: Flag, value: object) -> None:
    if flag.check is not None:
        try:
            value = flag.check(str(value))
        except ValueError as exc:
            raise UsageError(f'invalid argument "{value}" for "{flag.names}" flag: {exc}') from None
    if flag.kind == LIST:
        getattr(opts, flag.dest).append(value)
    elif flag.kind == INT:
        try:
            setattr(opts, flag.dest, int(str(value)))
        except ValueError:
            raise UsageError(f'invalid argument "{value}" for "{flag.names}" flag: '
                             f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    else:
        setattr(opts, flag.dest, value)


def check_filter(value: str) -> str:
    """A --filter value must be name=value."""
    if "=" not in value:
        raise ValueError("bad format of filter (expected name=value)")
    return value


def parse_filters(values: list[str]) -> dict[str, dict[str, bool]]:
    """--filter k=v ... (checked by check_filter as they were parsed) → the API's {"k": {"v": true}}."""
    filters: dict[str, dict[str, bool]] = {}
    for item in values:
        key, _, value = item.partition("=")
        filters.setdefault(key.strip().lower(), {})[value] = True
    return filters


def go_parse_int(value: str) -> int:
    """strconv.ParseInt's parse, with its error text."""
    try:
        return int(value, 10)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes ('512m', '1.5GiB', '100 kb') with its error texts."""
    sep = max(value.rfind(c) for c in "0123456789. ")
    if sep < 0:
        raise ValueError(f"invalid size: '{value}'")
    number, suffix = (value[:sep + 1], value[sep + 1:]) if value[sep] != " " else (value[:sep], value[sep + 1:])
    try:
        size = float(number)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax') from None
    if size < 0:
        raise ValueError(f"invalid size: '{value}'")
    if not suffix:
        return int(size)
    if len(suffix) > 3:
        raise ValueError(f"invalid suffix: '{suffix}'")
    suffix = suffix.lower()
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    if suffix[0] == "b" and len(suffix) == 1:
        return int(size)
    if suffix[0] not in units or (len(suffix) == 2 and suffix[1] not in "ib") or (len(suffix) == 3 and suffix[1:] != "ib"):
        raise ValueError(f"invalid suffix: '{suffix}'")
    return int(size * units[suffix[0]])
