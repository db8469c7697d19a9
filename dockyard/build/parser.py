"""Dockerfile parser: lines → instructions, as BuildKit's `frontend/dockerfile/parser`.

`parse()` returns a `Dockerfile` whose `commands` have the same shape (and values) as the
`dockerfile` PyPI package's `Command` tuples, which wrap BuildKit's own parser; the escape
token and parser directives come along for the later stages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from dockyard.build.shell import Lex, ShellError

# The reference parser (the `dockerfile` package's BuildKit) knows these two; a `check` line ends
# the directive block there, as any other comment does.
VALID_DIRECTIVES = ("syntax", "escape")
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z", re.ASCII)
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]*)\Z", re.ASCII)
_HEREDOC_COMMANDS = ("add", "copy", "run")
_BOM = "\ufeff"
MAX_LINE = 64 * 1024
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


class ParseError(ValueError):
    """A Dockerfile syntax error; `line` is 1-based (0 when not tied to a line)."""

    def __init__(self, message: str, line: int = 0, end_line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.end_line = end_line or line

    def __str__(self) -> str:
        if self.line:
            return f"dockerfile parse error on line {self.line}: {self.message}"
        return self.message


class Heredoc(NamedTuple):
    """One here-document: its terminator, the descriptor it feeds and its raw content."""

    name: str
    file_descriptor: int
    content: str


class Command(NamedTuple):
    """One instruction, shaped like the `dockerfile` package's `Command`."""

    cmd: str | None
    sub_cmd: str | None
    json: bool
    original: str | None
    start_line: int
    end_line: int
    flags: tuple[str, ...]
    value: tuple[str, ...]
    heredocs: tuple[Heredoc, ...]


@dataclass
class Dockerfile:
    """A parsed Dockerfile: its instructions, escape token, directives and warnings."""

    commands: list[Command]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Node:
    value: str
    flags: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    is_json: bool = False
    child: _Node | None = None


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.continuation = _continuation_regex("\\")
        self.done = False
        self.seen: dict[str, str] = {}

    def feed(self, line: str) -> bool:
        """Consume a line that may be a parser directive; True when it was one."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _DIRECTIVE.match(line[1:].lstrip())
        if not m or m.group(1).lower() not in VALID_DIRECTIVES:
            self.done = True
            return False
        key = m.group(1).lower()
        if key in self.seen:
            raise ValueError(f"only one {key} parser directive can be used")
        self.seen[key] = m.group(2)
        if key == "escape":
            token = m.group(2)
            if token not in ("`", "\\"):
                raise ValueError(f"invalid escape token '{token}' does not match ` or \\")
            self.escape = token
            self.continuation = _continuation_regex(token)
        return True


def _continuation_regex(token: str) -> re.Pattern[str]:
    e = re.escape(token)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z")


def _lines(text: str) -> list[str]:
    """Split at `\\n` only, keeping the line endings, as BuildKit's scanner does."""
    return _LINE.findall(text)


def _first_too_long(lines: list[str]) -> int | None:
    """The index of the first line longer than Go's bufio.Scanner accepts (64 KiB with its
    newline, one byte less without)."""
    for i, line in enumerate(lines):
        if len(line) * 4 < MAX_LINE:
            continue
        size = len(line.encode("utf-8", "surrogatepass"))
        if size > MAX_LINE or (size == MAX_LINE and not line.endswith("\n")):
            return i
    return None


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return s.lstrip().startswith("#")


def parse(text: str | bytes) -> Dockerfile:
    """Parse Dockerfile text; raises ParseError naming the line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    d = _Directives()
    commands: list[Command] = []
    warnings: list[str] = []
    lines = _lines(text)
    too_long = _first_too_long(lines)
    if too_long is not None:  # BuildKit's line scanner stops there, then reports it
        lines = lines[:too_long]
    n = len(lines)
    i = 0
    current = 0
    while i < n:
        raw = lines[i]
        i += 1
        if current == 0 and raw.startswith(_BOM):
            raw = raw[1:]
        token = _trim_newline(raw).lstrip()
        try:
            d.feed(token)
        except ValueError as e:
            raise ParseError(str(e), current) from None
        current += 1
        start = current
        body = "" if _is_comment(token) else token
        body, end_of_line = _trim_continuation(body, d)
        if end_of_line and not body:
            continue
        parts = [body]
        empty_continuation = False
        while not end_of_line and i < n:
            raw = lines[i]
            i += 1
            token = _trim_newline(raw)
            try:
                d.feed(token)
            except ValueError as e:
                raise ParseError(str(e), current) from None
            current += 1
            if _is_comment(raw):
                continue
            if not token.lstrip():
                empty_continuation = True
                continue
            token, end_of_line = _trim_continuation(token, d)
            parts.append(token)
        line = "".join(parts)
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {line}")
        try:
            node = _node_from_line(line, d)
        except (ValueError, ShellError) as e:
            raise ParseError(str(e), start, current) from None
        heredocs: list[Heredoc] = []
        target = node.child if node.child is not None else node
        if _can_contain_heredoc(node) and "<<" in line:
            try:
                specs = heredocs_from_line(line)
            except ShellError as e:
                raise ParseError(str(e), start, current) from None
            for name, fd, chomp in specs:
                content: list[str] = []
                terminated = False
                while i < n:
                    raw = lines[i]
                    i += 1
                    current += 1
                    possible = _trim_newline(raw)
                    if chomp:
                        possible = possible.lstrip("\t")
                    if possible == name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise ParseError("unterminated heredoc", start, current)
                heredocs.append(Heredoc(name, fd, "".join(content)))
        original = line
        shown_heredocs: tuple[Heredoc, ...] = ()
        if target is node and heredocs:
            shown_heredocs = tuple(heredocs)
            original = line + "\n" + "".join(h.content + h.name + "\n" for h in heredocs)
        commands.append(Command(
            cmd=node.value or None,  # the oracle's bridge turns empty strings into None
            sub_cmd=node.child.value if node.child is not None else None,
            json=target.is_json,
            original=original or None,
            start_line=start,
            end_line=current,
            flags=node.flags,
            value=target.args,
            heredocs=shown_heredocs,
        ))
    if not commands:
        raise ParseError("file with no instructions", current)
    if too_long is not None:
        raise ParseError(f"dockerfile line greater than max allowed size of {MAX_LINE - 1}", current)
    return Dockerfile(commands, d.escape, dict(d.seen), warnings)


def parse_string(text: str | bytes) -> tuple[Command, ...]:
    """The instructions of a Dockerfile, as the `dockerfile` package's parse_string returns them."""
    return tuple(parse(text).commands)


def parse_file(path: str) -> tuple[Command, ...]:
    """The instructions of the Dockerfile at path, as the `dockerfile` package's parse_file."""
    with open(path, "rb") as f:
        return parse_string(f.read())


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    if d.continuation.search(line):
        return d.continuation.sub(lambda m: m.group(1) or "", line), False
    return line, True


def _can_contain_heredoc(node: _Node) -> bool:
    if node.value.lower() == "onbuild" and node.child is not None:
        node = node.child
    return node.value.lower() in _HEREDOC_COMMANDS and not node.is_json


def parse_heredoc(word: str) -> tuple[str, int, bool, bool] | None:
    """A heredoc word (`<<EOF`, `<<-"EOF"`, `3<<EOF`) → (name, fd, chomp, expand), else None."""
    m = _HEREDOC.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    words = Lex("\\", skip_unset=True).process_words(rest, {})
    if len(words) != 1:
        return None
    raw = Lex("\\", skip_unset=True, raw_quotes=True).process_words(rest, {})
    if len(raw) != 1:
        raise ShellError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return words[0], int(m.group(1) or 0), m.group(2) == "-", quotes == raw_quotes


def heredocs_from_line(line: str) -> list[tuple[str, int, bool]]:
    """The heredocs an instruction line opens, in order: (name, fd, chomp)."""
    try:
        words = Lex("\\", raw_quotes=True, raw_escapes=True, skip_unset=True).process_words(line, {})
    except ShellError:
        words = []
    out = []
    for w in words:
        h = parse_heredoc(w)
        if h is not None:
            out.append((h[0], h[1], h[2]))
    return out


def _split_command(line: str, d: _Directives) -> tuple[str, tuple[str, ...], str]:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], (), ""
    # BuildKit reads flags byte by byte, each byte taken as a character
    rest, flags = _extract_flags(parts[1].encode("utf-8", "surrogatepass").decode("latin-1"), d.escape)
    return parts[0], tuple(flags), rest.encode("latin-1").decode("utf-8", "surrogatepass").strip()


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    buf: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if pos == n:
            word = "".join(buf)
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == in_word:
            if ch.isspace():
                word = "".join(buf)
                phase = in_spaces
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            buf.append(ch)
            pos += 1
            continue
        # in quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    return "", words


def _parse_words(rest: str, escape: str) -> list[str]:
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    buf: list[str] = []
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == in_word:
            if ch.isspace():
                phase = in_spaces
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            buf.append(ch)
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


def _name_val(rest: str, key: str, escape: str) -> tuple[str, ...]:
    words = _parse_words(rest, escape)
    if not words:
        return ()
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return (parts[0], parts[1])
    out: list[str] = []
    for w in words:
        if "=" not in w:
            raise ValueError(f"Syntax error - can't find = in {_go_quote(w)}. Must be of the form: name=value")
        k, v = w.split("=", 1)
        out += [k, v]
    return tuple(out)


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


class _NotJSON(Exception):
    pass


def _reject_constant(name: str) -> None:
    raise _NotJSON(name)


_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_json(rest: str) -> tuple[str, ...]:
    rest = rest.lstrip()
    if not rest.startswith("["):
        raise _NotJSON("not a JSON array")
    try:  # the first JSON value only: what follows it is ignored, as by a Go json.Decoder
        doc, _ = _JSON.raw_decode(rest)
    except (ValueError, RecursionError) as e:
        raise _NotJSON(str(e)) from None
    if not isinstance(doc, list):
        raise _NotJSON("not a JSON array")
    if not all(isinstance(x, str) for x in doc):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return tuple(doc)


def _maybe_json(rest: str) -> tuple[tuple[str, ...], bool]:
    if not rest:
        return (), False
    try:
        return _parse_json(rest), True
    except _NotJSON:
        return (rest,), False


def _maybe_json_list(rest: str) -> tuple[tuple[str, ...], bool]:
    try:
        return _parse_json(rest), True
    except _NotJSON:
        return _whitespace_list(rest), False


def _whitespace_list(rest: str) -> tuple[str, ...]:
    return tuple(_WHITESPACE.split(rest)) if rest else ()


def _node_from_line(line: str, d: _Directives) -> _Node:
    cmd, flags, rest = _split_command(line, d)
    kind = cmd.lower()
    node = _Node(cmd, flags)
    if kind in ("add", "copy", "volume"):
        node.args, node.is_json = _maybe_json_list(rest)
    elif kind in ("cmd", "entrypoint", "run", "shell"):
        node.args, node.is_json = _maybe_json(rest)
    elif kind == "arg":
        node.args = tuple(_parse_words(rest, d.escape))
    elif kind in ("env", "label"):
        node.args = _name_val(rest, "ENV" if kind == "env" else "LABEL", d.escape)
    elif kind in ("expose", "from"):
        node.args = _whitespace_list(rest)
    elif kind in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = (rest,) if rest else ()
    elif kind == "healthcheck":
        node.args, node.is_json = _health(rest)
    elif kind == "onbuild":
        if rest:
            node.child = _node_from_line(rest, d)
    else:
        node.args = ("",)
    return node


def _health(rest: str) -> tuple[tuple[str, ...], bool]:
    sep = 0
    while sep < len(rest) and not rest[sep].isspace():
        sep += 1
    nxt = sep
    while nxt < len(rest) and rest[nxt].isspace():
        nxt += 1
    if sep == 0:
        return (), False
    args, is_json = _maybe_json(rest[nxt:])
    return (rest[:sep],) + args, is_json
