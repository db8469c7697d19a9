"""Docker's output conventions: tabwriter tables, human sizes and durations, short IDs, and
`--format` (Go templates, `dockyard/cli/gotemplate.py`; `table ...` with `\\t` columns, `json`)."""

from __future__ import annotations

import time

from dockyard.cli.gotemplate import Context, ParseError, Struct, Template, TemplateError
from dockyard.humanize import human_duration, human_size  # noqa: F401 - re-exported

TYPE_CHECKING = False  # typing, collections.abc, json and re cost milliseconds to import: used lazily
if TYPE_CHECKING:
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


def natural_key(text: str) -> tuple[tuple[int, int, str, int], ...]:
    """A sort key ordering as docker's natural sort (sortorder.NaturalLess): runs of digits
    compare as numbers and before any other character."""
    key, i = [], 0
    while i < len(text):
        j = i
        if text[i].isdigit():
            while j < len(text) and text[j].isdigit():
                j += 1
            digits = text[i:j].lstrip("0")
            key.append((0, len(digits), digits, j - i))
        else:
            j = i + 1
            key.append((1, 0, text[i], 0))
        i = j
    return tuple(key)


def go_time_string(rfc3339: str) -> str:
    """Go's time.Time.String() in local time, from an RFC 3339 timestamp:
    '2026-11-28 07:12:20.178023237 +0000 UTC'."""
    stamp = parse_time(rfc3339)
    dot = rfc3339.find(".")
    fraction = ""
    if dot > 0:
        end = dot + 1
        while end < len(rfc3339) and rfc3339[end].isdigit():
            end += 1
        fraction = rfc3339[dot:end].rstrip("0").rstrip(".")
    local = time.localtime(stamp)
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + fraction + time.strftime(" %z %Z", local)


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


def render(template: str, obj: Any, name: str = "") -> str:
    """Execute a Go template on one object (TemplateError as Go words it)."""

    return Template(template, name).execute(obj)


def parse_template(fmt: str, name: str = "") -> Template:
    """A --format template of inspect, info or version: a parse error is docker's exit 64."""

    try:
        return Template(fmt, name)
    except ParseError as exc:
        raise TemplateError(f"template parsing error: {exc}", 64) from None


def print_template(fmt: str, obj: Any, write: Callable[[str], Any], name: str = "") -> None:
    """One object through a template and a newline (info, version): an execution error still
    writes the newline, as docker does."""

    template = parse_template(fmt, name)
    try:
        text = template.execute(obj)
    except TemplateError:
        write("\n")
        raise
    write(text + "\n")


class HeaderLabels(dict):  # type: ignore[type-arg]
    """`.Label "com.example.some-key"` in a table header: the key's last part, '-' and '_' as spaces."""

    def get(self, key: str, default: str = "") -> str:  # type: ignore[override]
        return key.rsplit(".", 1)[-1].replace("-", " ").replace("_", " ")


# docker's header functions: a header cell is the column's title whatever the function
HEADER_FUNCTIONS = {name: (lambda value, *_: value) for name in ("json", "split", "join", "title", "lower", "upper",
                                                                 "pad", "truncate")}


def print_objects(objects: Iterable[Any], fmt: str, default_table: str, headers: Mapping[str, str],
                  write: Callable[[str], Any], go_type: str = "", probe: Any = None) -> None:
    """List output as docker's formatter: `table ...` (or the default) with a header through the
    tabwriter, `json` as one JSON object per line, else the template once per object; `\\t` and
    `\\n` in the format are a tab and a newline. Plain dict rows become Contexts of go_type
    (docker's formatter type, named in errors). probe: an empty row the template runs on first,
    so a bad field fails even with nothing to list (as docker ps)."""

    if fmt == "json":
        fmt = "{{json .}}"
    table = not fmt or fmt.startswith("table")
    text = (fmt[5:] if fmt.startswith("table") else fmt).strip(" ") or default_table
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    try:
        template = Template(text)
    except ParseError as exc:
        raise TemplateError(f"failed to parse template: {exc}") from None
    rows = [obj if isinstance(obj, Context) else Context(obj, go_type) for obj in objects]
    if probe is not None:
        rows.insert(0, probe)
    try:
        lines = [template.execute(row) for row in rows]
        if probe is not None:
            del lines[0], rows[0]
        if table:
            names = {key: key.upper() for key in (rows[0] if rows else ())}
            header = Template(text, functions=HEADER_FUNCTIONS)
            lines.insert(0, header.execute(Context({**names, **headers}, "formatter.SubHeaderContext",
                                                   HeaderLabels())))
    except TemplateError as exc:
        raise TemplateError(f"failed to execute template: {exc}") from None
    if not table:
        write("".join(line + "\n" for line in lines))
        return
    write(tabwrite(line.split("\t") for line in "\n".join(lines).split("\n")))


SLICE_FIELDS = {"Entrypoint", "Cmd", "Env", "OnBuild", "Shell", "Binds", "Links", "Dns", "DnsOptions", "DnsSearch",
                "ExtraHosts", "CapAdd", "CapDrop", "GroupAdd", "SecurityOpt", "Devices", "DeviceRequests",
                "DeviceCgroupRules", "Ulimits", "VolumesFrom", "Mounts", "Aliases", "DNSNames", "RepoDigests",
                "RepoTags", "Layers", "Args", "MaskedPaths", "ReadonlyPaths", "Warnings"}
MAP_FIELDS = {"Labels", "Options", "Data", "DriverOpts", "ExposedPorts", "Volumes", "Ports", "PortBindings",
              "Networks", "Sysctls", "Tmpfs", "StorageOpt", "Annotations", "Config"}


def typed(value: Any, name: str = "") -> Any:
    """Inspect JSON as docker's templates see its typed form: objects with capitalised keys are
    structs (printed {v1 v2}), the map-typed fields (Labels, Ports, ...) stay maps; a container's
    SizeRw/SizeRootFs and State.Health are nil when absent."""
    if value is None and name in MAP_FIELDS:
        return {}  # a nil map prints map[]
    if value is None and name in SLICE_FIELDS:
        return []  # a nil slice prints []
    if isinstance(value, list):
        return [typed(v) for v in value]
    if not isinstance(value, dict):
        return value
    items = {k: typed(v, k) for k, v in value.items()}
    is_map = (name in MAP_FIELDS and not (name == "Config" and "Cmd" in value)) or \
        not all(k[:1].isupper() for k in value)
    if is_map:
        return items
    zeros = {"Health": None} if name == "State" else {}
    if "State" in value and "Config" in value:
        zeros = {"SizeRw": None, "SizeRootFs": None}
    return Struct(items, zeros)


class Missing(str):
    """An inspect argument that was not found: its error text, in its place among the results."""


def print_inspect(results: list[Any], fmt: str, write: Callable[[str], Any]) -> list[str]:
    """inspect output as docker's inspector: a JSON array indented like docker, or the template
    once per object, typed (an object it fails on gives an error instead; nothing at all printed
    gives an empty line). The errors, in argument order (Missing entries among them)."""
    import json

    found = [r for r in results if not isinstance(r, Missing)]
    if not fmt or fmt == "json":  # json: the same array on one line
        text = json.dumps(found, indent=None if fmt else 4, separators=(",", ":") if fmt else None,
                          ensure_ascii=False)
        write(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n")
        return [str(r) for r in results if isinstance(r, Missing)]
    template = parse_template(fmt)
    out, errors = [], []
    for obj in results:
        if isinstance(obj, Missing):
            errors.append(str(obj))
            continue
        try:
            out.append(template.execute(typed(obj)) + "\n")
        except TemplateError as exc:
            errors.append(f"template parsing error: {exc}")
    write("".join(out) or "\n")
    return errors
