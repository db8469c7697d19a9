"""Reading a compose file: YAML 1.2 (ruamel, like compose-go's yaml.v3: `22:22` and `yes` stay
strings), anchors and merge keys resolved, into plain dicts/lists plus the line of every key."""

from __future__ import annotations

from typing import Any

from dockyard.compose.errors import ComposeError
from dockyard.compose.merge import RESET, Override

Path = tuple[Any, ...]


class Source:
    """One parsed file: its data and where each key path sits (1-based line numbers)."""

    def __init__(self, filename: str, data: Any, lines: dict[Path, int]) -> None:
        self.filename = filename
        self.data = data
        self.lines = lines

    def line(self, path: Path) -> int | None:
        """The line of path, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def _plain(node: Any, path: Path, lines: dict[Path, int]) -> Any:
    """ruamel's node → plain data; compose's `!reset` / `!override` tags → merge markers."""
    tag = getattr(getattr(node, "tag", None), "value", None)
    if tag == "!reset":
        return RESET
    if tag == "!override":
        return Override(_untagged(node, path, lines))
    return _untagged(node, path, lines)


def _untagged(node: Any, path: Path, lines: dict[Path, int]) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
    if isinstance(node, TaggedScalar):
        return node.value
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():  # merge keys (<<) are already folded in
            try:
                pos = node.lc.key(key)
            except (KeyError, TypeError):
                pos = None
            if pos is not None:
                lines[(*path, key)] = pos[0] + 1
            out[key] = _plain(value, (*path, key), lines)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, value in enumerate(node):
            try:
                lines[(*path, i)] = node.lc.item(i)[0] + 1
            except (KeyError, TypeError, IndexError):
                pass
            out_list.append(_plain(value, (*path, i), lines))
        return out_list
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return _leading_zero_octal(node)
    if isinstance(node, float):
        return float(node)
    return str(node) if not isinstance(node, (dict, list)) else node


def _leading_zero_octal(node: int) -> int:
    """`0440` is octal for Docker Compose (yaml.v3 reads a leading zero as base 8), decimal in
    YAML 1.2: ruamel keeps the literal's width, which tells them apart."""
    digits = str(int(node))
    width = getattr(node, "_width", None) if type(node).__name__ == "ScalarInt" else None  # not hex/octal/binary
    if width and width > len(digits) and int(node) >= 0 and not set(digits) - set("01234567"):
        return int(digits, 8)
    return int(node)


def parse(filename: str, text: str) -> Source:
    """Parse YAML text; a syntax error names the file and line, as Docker Compose does."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        node = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ComposeError(f"failed to parse {filename}: yaml: {where}{problem}") from None
    except YAMLError as exc:
        raise ComposeError(f"failed to parse {filename}: yaml: {exc}") from None
    lines: dict[Path, int] = {}
    data = _plain(node, (), lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ComposeError(f"failed to parse {filename}: top-level object must be a mapping")
    return Source(filename, data, lines)


def read(filename: str) -> Source:
    """Read and parse a compose file."""
    try:
        with open(filename, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ComposeError(f"open {filename}: {(exc.strerror or str(exc)).lower()}") from None
    return parse(filename, text)
