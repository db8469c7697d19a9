"""Docker's output conventions: tabwriter tables, human sizes and durations, short IDs, and the
Go-template subset of `--format` (`{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .X}}`,
`{{join .X ","}}`, `{{upper/lower/title .X}}`, `table ...` with `\\t` columns)."""

from __future__ import annotations

import time

from dockyard.humanize import human_duration, human_size  # noqa: F401 - re-exported

TYPE_CHECKING = False  # typing, collections.abc, json and re cost milliseconds to import: used lazily
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any


def since(timestamp: float) -> str:
    """'6 months ago' for a Unix time."""
    return human_duration(time.time() - timestamp) + " ago"


def parse_time(value: str) -> float:
    """RFC 3339 (nanoseconds allowed) → Unix time; 0 for Go's zero time or garbage."""
    import re

    match = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value or "")
    if not match or match.group(1) == "0001":
        return 0.0
    import calendar
    fields = [int(match.group(n)) for n in range(1, 7)]
    stamp = calendar.timegm((*fields, 0, 0, 0)) + float(match.group(7) or 0)
    zone = match.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        stamp -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return stamp


def short_id(value: str) -> str:
    """'sha256:7439d131056d…' → '7439d131056d'."""
    return value.split(":", 1)[-1][:12]


def ellipsis(text: str, width: int) -> str:
    """Cut text to width characters, the last one '…'."""
    return text if len(text) <= width else text[:width - 1] + "…"


def tabwrite(rows: Iterable[list[str]], minwidth: int = 10) -> str:
    """Go's tabwriter as docker sets it up (minwidth 10, 20 for top; padding 3, spaces); last cell
    unpadded."""
    rows = list(rows)
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), max(len(cell) + 3, minwidth))
    return "".join("".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1]))
                   + (row[-1] if row else "") + "\n" for row in rows)


def go_string(value: Any) -> str:
    """A value printed the way Go's text/template prints it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_string(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def go_json(value: Any, indent: int | None = None) -> str:
    """JSON as Go's encoder writes it: '<', '>' and '&' escaped."""
    import json

    text = json.dumps(value, indent=indent, separators=None if indent else (",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: go_json(v),
    "upper": lambda v: go_string(v).upper(),
    "lower": lambda v: go_string(v).lower(),
    "title": lambda v: go_string(v).title(),
    "join": lambda v, sep: sep.join(go_string(x) for x in v or []),
    "len": lambda v: len(v or ()),
    "println": lambda *v: " ".join(go_string(x) for x in v) + "\n",
}


class TemplateError(Exception):
    """A template that cannot be parsed or executed."""


def _actions() -> re.Pattern[str]:
    """The pattern of a template's {{actions}}."""
    import re

    return re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)  # re caches compiled patterns


def _value(token: str, obj: Any) -> Any:
    if token.startswith('"') and token.endswith('"'):
        import json

        return json.loads(token)
    if token == ".":
        return obj
    if not token.startswith("."):
        raise TemplateError(f'function "{token}" not defined')
    for part in token[1:].split("."):
        if isinstance(obj, dict):
            if part not in obj:  # a Go field name whose JSON key differs in case (APIVersion/ApiVersion)
                part = next((key for key in obj if key.lower() == part.lower()), part)
            if part not in obj:
                raise TemplateError(f"can't evaluate field {part}")
            obj = obj[part]
        else:
            attr = getattr(obj, part, None)
            if attr is None:
                raise TemplateError(f"can't evaluate field {part}")
            obj = attr() if callable(attr) else attr
    return obj


def _evaluate(action: str, obj: Any) -> str:
    import re

    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', action)
    if tokens and tokens[0] in _FUNCS:
        result = _FUNCS[tokens[0]](*(_value(t, obj) for t in tokens[1:]))
        return result if isinstance(result, str) else go_string(result)
    if len(tokens) != 1:
        raise TemplateError(f"unsupported template action {{{{{action}}}}}")
    return go_string(_value(tokens[0], obj))


def render(template: str, obj: Any) -> str:
    """Execute a template on one object (a dict, or an object with properties)."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    return _actions().sub(lambda m: _evaluate(m.group(1), obj), template)


def header_row(template: str, headers: Mapping[str, str]) -> str:
    """The header line of a `table` template: each {{.Field}} replaced by its column title."""
    import re

    def title(match: re.Match[str]) -> str:
        fields = re.findall(r"\.(\w+)", match.group(1))
        return headers.get(fields[-1], fields[-1].upper()) if fields else ""
    return _actions().sub(title, template.replace("\\t", "\t"))


def print_objects(objects: Iterable[Any], fmt: str, default_table: str, headers: Mapping[str, str],
                  write: Callable[[str], Any]) -> None:
    """List output: `table ...` (or the default) with a header through the tabwriter, `json`
    as one JSON object per line, else the template once per object."""
    if fmt == "json":
        fmt = "{{json .}}"
    table = not fmt or fmt.startswith("table")
    template = (fmt[5:].strip() if fmt.startswith("table") else fmt) or default_table
    if not table:
        write("".join(render(template, obj) + "\n" for obj in objects))
        return
    lines = [header_row(template, headers)] + [render(template, obj) for obj in objects]
    write(tabwrite(line.split("\t") for line in lines))


def print_inspect(objects: list[Any], fmt: str, write: Callable[[str], Any]) -> None:
    """inspect output: a JSON array indented like docker, or the template per object."""
    if fmt:
        write("".join(render("{{json .}}" if fmt == "json" else fmt, obj) + "\n" for obj in objects))
    else:
        write(go_json(objects, indent=4) + "\n")
