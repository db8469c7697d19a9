"""Go's text/template, the part docker's `--format` uses: text and actions with `{{-`/`-}}` trims,
fields and chains (`.A.B`, `$x.A`, `(pipe).A`), variables (`$`, `$x := ...`, `range $k, $v :=`),
pipelines (`a | b`), if/else if/else, range/else, with/else, literals, Go's builtins (and, or, not,
len, index, slice, print, printf, println, eq, ne, lt, le, gt, ge) and docker's own functions
(json, split, join, title, lower, upper, pad, truncate). Errors read as Go's
(`template: :1:2: executing "" at <.X>: ...`)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import: annotations only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class TemplateError(Exception):
    """A template that cannot be parsed or executed (the message is Go's); code: the command's exit
    code for it."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class ParseError(TemplateError):
    """A template Go would refuse to parse."""


class Context(dict):  # type: ignore[type-arg]
    """A Go struct seen by a template: fields are its keys; a missing field is Go's "can't
    evaluate field X in type T"; `.Label "k"` looks in `labels`. A formatter context (ps, ls rows)
    marshals as docker's MarshalJSON methods do: a map, sorted and HTML-escaped; others (info,
    version) as a struct, in field order."""

    def __init__(self, fields: dict[str, Any], go_type: str, labels: dict[str, str] | None = None,
                 formatter: bool = True) -> None:
        super().__init__(fields)
        self.go_type = go_type
        self.labels = labels if labels is not None else {}
        self.formatter = formatter


class Struct(dict):  # type: ignore[type-arg]
    """A Go struct from the API's JSON (docker's inspector runs templates on typed values): fields
    the JSON omitted (omitempty) read as their zero value, and it prints as Go prints a struct,
    `{v1 v2 ...}` (the omitted fields last, where docker's types declare them)."""

    def __init__(self, fields: dict[str, Any], zeros: dict[str, Any] | None = None) -> None:
        super().__init__(fields)
        self.zeros = {k: v for k, v in (zeros or {}).items() if k not in fields}


_KEYWORDS = {"if", "else", "end", "range", "with", "nil", "true", "false", "break", "continue",
             "define", "template", "block"}
_ALNUM = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _lex_action(src: str, start: int, end: int, name: str) -> list[tuple[str, Any, int]]:
    """The tokens of one action's text src[start:end]: (kind, value, position)."""
    tokens: list[tuple[str, Any, int]] = []
    i = start
    while i < end:
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()|,":
            tokens.append((c, c, i))
            i += 1
        elif c == ":" and src.startswith(":=", i):
            tokens.append((":=", ":=", i))
            i += 2
        elif c == "=":
            tokens.append((":=", "=", i))
            i += 1
        elif c == '"':
            j = i + 1
            while j < end and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            if j >= end:
                raise ParseError(f"template: {name}:1: unterminated quoted string")
            import json
            tokens.append(("lit", json.loads(src[i:j + 1]), i))
            i = j + 1
        elif c == "`":
            j = src.find("`", i + 1, end)
            if j < 0:
                raise ParseError(f"template: {name}:1: unterminated raw quoted string")
            tokens.append(("lit", src[i + 1:j], i))
            i = j + 1
        elif c.isdigit() or (c in "+-" and i + 1 < end and src[i + 1].isdigit()):
            j = i + 1
            while j < end and (src[j].isalnum() or src[j] in "._"):
                j += 1
            text = src[i:j]
            try:
                value: Any = int(text, 0)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise ParseError(f"template: {name}:1: bad number syntax: {text!r}") from None
            tokens.append(("lit", value, i))
            i = j
        elif c in ".$":
            j = i + 1
            while j < end and src[j] in _ALNUM:
                j += 1
            word = src[i:j]
            if c == "$":
                tokens.append(("var", word, i))
            elif word == ".":
                tokens.append(("dot", ".", i))
            else:
                tokens.append(("field", word[1:], i))
            i = j
        elif c in _ALNUM:
            j = i
            while j < end and src[j] in _ALNUM:
                j += 1
            word = src[i:j]
            tokens.append(("lit", {"true": True, "false": False}[word], i) if word in ("true", "false")
                          else ("nil", None, i) if word == "nil"
                          else ("kw" if word in _KEYWORDS else "ident", word, i))
            i = j
        else:
            raise ParseError(f"template: {name}:1: unexpected {c!r} in command")
    return tokens


class _Parser:
    """Template text → a node tree (tuples, first item the node's kind)."""

    def __init__(self, src: str, name: str) -> None:
        self.src, self.name = src, name
        self.items = self._split()
        self.pos = 0

    def _split(self) -> list[tuple[str, Any, int]]:
        """Text pieces and actions (each a token list), with Go's whitespace trims."""
        items: list[tuple[str, Any, int]] = []
        src, i = self.src, 0
        while True:
            j = src.find("{{", i)
            if j < 0:
                items.append(("text", src[i:], i))
                return items
            text = src[i:j]
            start = j + 2
            if src.startswith("- ", start) or src.startswith("-\t", start) or src.startswith("-\n", start):
                text = text.rstrip(" \t\r\n")
                start += 1
            items.append(("text", text, i))
            close = src.find("}}", start)
            if close < 0:
                line = src.count("\n", 0, j) + 1
                raise ParseError(f"template: {self.name}:{line}: unclosed action")
            end, after = close, close + 2
            trim_right = close - 2 >= start and src[close - 1] == "-" and src[close - 2] in " \t\r\n"
            if trim_right:
                end = close - 1
            items.append(("action", _lex_action(src, start, end, self.name), j))
            i = after
            if trim_right:
                while i < len(src) and src[i] in " \t\r\n":
                    i += 1

    def parse(self) -> list[Any]:
        nodes, stop = self._list()
        if stop is not None:
            raise ParseError(f"template: {self.name}:1: unexpected {{{{{stop[0]}}}}}")
        return nodes

    def _list(self) -> tuple[list[Any], tuple[str, list[Any]] | None]:
        """Nodes up to an {{end}} or {{else}} (returned as the stop) or the end of the text."""
        nodes: list[Any] = []
        while self.pos < len(self.items):
            kind, value, where = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                if value:
                    nodes.append(("text", value))
                continue
            if not value:
                raise ParseError(f"template: {self.name}:1: missing value for command")
            head = value[0]
            if head[0] == "kw":
                word = head[1]
                if word in ("end", "else"):
                    return nodes, (word, value[1:])
                if word in ("if", "range", "with"):
                    nodes.append(self._block(word, value[1:]))
                    continue
                if word in ("break", "continue"):
                    nodes.append((word,))
                    continue
                raise ParseError(f"template: {self.name}:1: {{{{{word}}}}} is not supported")
            nodes.append(("action", self._pipeline(value, where)))
        return nodes, None

    def _block(self, word: str, tokens: list[Any]) -> tuple[Any, ...]:
        if not tokens:
            raise ParseError(f"template: {self.name}:1: missing value for {word}")
        pipe = self._pipeline(tokens, tokens[0][2])
        body, stop = self._list()
        other: list[Any] = []
        if stop is not None and stop[0] == "else":
            if stop[1] and stop[1][0][:2] == ("kw", word) and word != "range":
                other = [self._block(word, stop[1][1:])]  # else if / else with: ends with the same {{end}}
                return (word, pipe, body, other)
            other, stop = self._list()
        if stop is None or stop[0] != "end":
            raise ParseError(f"template: {self.name}:1: unexpected EOF")
        return (word, pipe, body, other)

    def _pipeline(self, tokens: list[Any], where: int) -> tuple[list[str], list[list[Any]]]:
        """([declared variables], [commands]); each command a list of operands."""
        declared: list[str] = []
        for n in (1, 3):
            if len(tokens) > n and tokens[n][0] == ":=" and all(t[0] in ("var", ",") for t in tokens[:n]):
                declared = [t[1] for t in tokens[:n] if t[0] == "var"]
                tokens = tokens[n + 1:]
                break
        commands: list[list[Any]] = [[]]
        i = 0
        while i < len(tokens):
            kind = tokens[i][0]
            if kind == "|":
                commands.append([])
                i += 1
                continue
            operand, i = self._operand(tokens, i)
            commands[-1].append(operand)
        if any(not cmd for cmd in commands):
            raise ParseError(f"template: {self.name}:1: missing command")
        return declared, commands

    def _operand(self, tokens: list[Any], i: int) -> tuple[Any, int]:
        kind, value, where = tokens[i]
        i += 1
        if kind == "(":
            depth, j = 1, i
            while j < len(tokens) and depth:
                depth += {"(": 1, ")": -1}.get(tokens[j][0], 0)
                j += 1
            if depth:
                raise ParseError(f"template: {self.name}:1: unclosed left paren")
            node: Any = ("pipe", self._pipeline(tokens[i:j - 1], where), where)
            i = j
        elif kind in ("field", "dot", "var", "ident", "lit", "nil"):
            node = (kind, value, where)
        else:
            raise ParseError(f"template: {self.name}:1: unexpected {value!r} in operand")
        fields = []
        chain_at = where
        while (i < len(tokens) and tokens[i][0] == "field" and kind != "ident"
               and self.src[tokens[i][2] - 1] not in " \t\r\n"):  # `(x).A`, `$v.A`: no space between
            if not fields:
                chain_at = tokens[i][2]
            fields.append(tokens[i][1])
            i += 1
        if fields:
            if kind == "field":  # .A.B: one field node at the second field's position, as Go's parser
                node = ("field", value + "." + ".".join(fields), chain_at)
            else:
                node = ("chain", node, fields, chain_at)
        return node, i


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Template:
    """A parsed template; execute() runs it on one value."""

    def __init__(self, text: str, name: str = "", functions: dict[str, Callable[..., Any]] | None = None) -> None:
        self.text, self.name = text, name
        self.funcs = {**FUNCS, **(functions or {})}
        self.tree = _Parser(text, name).parse()
        self._check(self.tree)

    def _check(self, nodes: list[Any]) -> None:
        """Go refuses unknown functions at parse time."""
        for node in nodes:
            if node[0] == "action":
                self._check_pipe(node[1])
            elif node[0] in ("if", "range", "with"):
                self._check_pipe(node[1])
                self._check(node[2])
                self._check(node[3])

    def _check_pipe(self, pipe: tuple[list[str], list[list[Any]]]) -> None:
        for cmd in pipe[1]:
            for operand in cmd:
                if operand[0] == "ident" and operand[1] not in self.funcs:
                    raise ParseError(f'template: {self.name}:1: function "{operand[1]}" not defined')
                if operand[0] == "pipe":
                    self._check_pipe(operand[1])

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.tree, data, {"$": data}, out)
        return "".join(out)

    def _error(self, where: int, node: str, message: str) -> TemplateError:
        line = self.text.count("\n", 0, where) + 1
        col = where - (self.text.rfind("\n", 0, where) + 1)
        return TemplateError(f'template: {self.name}:{line}:{col}: executing "{self.name}" at <{node}>: {message}')

    def _run(self, nodes: list[Any], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                value = self._pipe(node[1], dot, scope)
                if not node[1][0]:
                    out.append(go_string(value))
            elif kind == "if":
                self._run(node[2] if truth(self._pipe(node[1], dot, scope)) else node[3], dot, scope, out)
            elif kind == "with":
                value = self._pipe(node[1], dot, scope)
                if truth(value):
                    self._run(node[2], value, scope, out)
                else:
                    self._run(node[3], dot, scope, out)
            elif kind == "range":
                self._range(node, dot, scope, out)
            elif kind == "break":
                raise _Break
            else:
                raise _Continue

    def _range(self, node: tuple[Any, ...], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        declared, commands = node[1]
        value = self._pipe(([], commands), dot, scope)
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)) or value is None:
            pairs = list(enumerate(value or []))
        elif isinstance(value, int):
            pairs = [(n, n) for n in range(value)]
        else:
            raise self._error(_pos(commands[0][0]), _show(commands[0][0]),
                              f"range can't iterate over {go_string(value)}")
        if not pairs:
            self._run(node[3], dot, scope, out)
            return
        for key, item in pairs:
            inner = dict(scope)
            if len(declared) == 1:
                inner[declared[0]] = item
            elif len(declared) == 2:
                inner[declared[0]], inner[declared[1]] = key, item
            try:
                self._run(node[2], item, inner, out)
            except _Break:
                break
            except _Continue:
                continue

    def _pipe(self, pipe: tuple[list[str], list[list[Any]]], dot: Any, scope: dict[str, Any]) -> Any:
        declared, commands = pipe
        value: Any = _MISSING
        for cmd in commands:
            value = self._command(cmd, dot, scope, value)
        for name in declared:
            scope[name] = value
        return value

    def _command(self, cmd: list[Any], dot: Any, scope: dict[str, Any], final: Any) -> Any:
        head = cmd[0]
        extra = [] if final is _MISSING else [final]
        if head[0] == "ident":
            args = [self._arg(a, dot, scope) for a in cmd[1:]] + extra
            try:
                return self.funcs[head[1]](*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
                raise self._error(head[2], head[1], f"error calling {head[1]}: {exc}") from None
        if head[0] == "field":
            args = [self._arg(a, dot, scope) for a in cmd[1:]] + extra
            return self._fields(dot, head[1].split("."), args, head)
        if head[0] == "chain" and (len(cmd) > 1 or extra):
            base = self._arg(head[1], dot, scope)
            return self._fields(base, head[2], [self._arg(a, dot, scope) for a in cmd[1:]] + extra, head)
        if len(cmd) > 1 or extra:
            raise self._error(_pos(head), _show(head), f"can't give argument to non-function {_show(head)}")
        return self._arg(head, dot, scope)

    def _arg(self, node: Any, dot: Any, scope: dict[str, Any]) -> Any:
        kind = node[0]
        if kind in ("lit", "nil"):
            return node[1]
        if kind == "dot":
            return dot
        if kind == "var":
            if node[1] not in scope:
                raise ParseError(f'template: {self.name}:1: undefined variable "{node[1]}"')
            return scope[node[1]]
        if kind == "field":
            return self._fields(dot, node[1].split("."), [], node)
        if kind == "pipe":
            return self._pipe(node[1], dot, scope)
        if kind == "chain":
            return self._fields(self._arg(node[1], dot, scope), node[2], [], node)
        if kind == "ident":
            return self._command([node], dot, scope, _MISSING)
        raise TemplateError(f"template: {self.name}: unexpected {kind}")

    def _fields(self, value: Any, names: list[str], args: list[Any], node: Any) -> Any:
        for n, name in enumerate(names):
            last = n == len(names) - 1
            value = self._field(value, name, args if last else [], node)
        return value

    def _field(self, value: Any, name: str, args: list[Any], node: Any) -> Any:
        if isinstance(value, Context):
            if name == "Label":
                if len(args) != 1:
                    raise self._error(_pos(node), _show(node), f"wrong number of args for Label: want 1 got {len(args)}")
                return value.labels.get(str(args[0]), "")
            if name in value:
                found = value[name]
            else:
                key = next((k for k in value if k.lower() == name.lower()), None)  # APIVersion / ApiVersion
                if key is None:
                    raise self._error(_pos(node), _show(node), f"can't evaluate field {name} in type {value.go_type}")
                found = value[key]
        elif isinstance(value, dict):
            if name in value:
                found = value[name]
            elif not isinstance(value, Struct):
                found = _MISSING  # a map's missing key: Go's "<no value>"
            elif name in value.zeros:
                found = value.zeros[name]
            else:  # docker's inspector then retries on the raw JSON, where the error is a map's
                raise self._error(_pos(node), _show(node), f'map has no entry for key "{name}"')
        elif value is None or value is _MISSING:
            raise self._error(_pos(node), _show(node), f"nil pointer evaluating interface {{}}.{name}")
        else:
            raise self._error(_pos(node), _show(node), f"can't evaluate field {name} in type {_go_type(value)}")
        if args:
            raise self._error(_pos(node), _show(node), f"{name} has arguments but cannot be invoked as function")
        return found


_MISSING = object()


def _pos(node: Any) -> int:
    """Where a node starts in the template text (a chain: where its fields start)."""
    return node[3] if node[0] == "chain" else node[2]


def _show(node: Any) -> str:
    kind = node[0]
    if kind == "field":
        return "." + node[1]
    if kind == "chain":
        return _show(node[1]) + "." + ".".join(node[2])
    if kind == "pipe":
        return "(...)"
    if kind == "lit":
        return repr(node[1]) if not isinstance(node[1], str) else f'"{node[1]}"'
    return str(node[1])


def _go_type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}"}.get(type(value),
                                                                                             "interface {}")


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, slices and maps are false."""
    return bool(value) if value is not _MISSING else False


def go_string(value: Any) -> str:
    """A value printed as Go's fmt prints it (%v)."""
    if value is None:
        return "<nil>"
    if value is _MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    if isinstance(value, Struct):
        return "{" + " ".join(go_string(v) for v in [*value.values(), *value.zeros.values()]) + "}"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_string(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return str(value)


def go_json(value: Any, escape_html: bool = False) -> str:
    """JSON as Go's encoder writes it; escape_html as json.Marshal (<, >, &). Structs keep their
    fields' order, maps are sorted by key; a Context marshals as docker's formatter does (a map,
    HTML escaped)."""
    import json

    if isinstance(value, Context) and value.formatter:
        escape_html = True
    text = json.dumps(_json_order(value), separators=(",", ":"), ensure_ascii=False)
    if escape_html:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def _json_order(value: Any) -> Any:
    """value with every map's keys sorted (Go marshals maps so) and structs left in field order."""
    if isinstance(value, dict):
        struct = isinstance(value, Struct) or (isinstance(value, Context) and not value.formatter)
        items = value.items() if struct else sorted(value.items())
        return {k: _json_order(v) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_json_order(v) for v in value]
    return value


def _title(value: str) -> str:
    """strings.Title: each letter after a separator (not a letter, digit or '_') upper-cased."""
    out, prev = [], " "
    for ch in value:
        out.append(ch.upper() if not (prev.isalnum() or prev == "_") else ch)
        prev = ch
    return "".join(out)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, "")
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise IndexError(f"index out of range: {key}")
            value = value[key]
        else:
            raise TypeError(f"can't index item of type {_go_type(value)}")
    return value


def _printf(spec: str, *args: Any) -> str:
    """fmt.Sprintf for the common verbs (%s %v %d %q %%, widths)."""
    out, i, n = [], 0, 0
    while i < len(spec):
        c = spec[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(spec) and spec[j] in "-+# 0123456789.":
            j += 1
        if j >= len(spec):
            out.append("%!(NOVERB)")
            break
        verb, flags = spec[j], spec[i + 1:j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[n]
        n += 1
        text = go_json(str(arg)) if verb == "q" else go_string(arg)
        if verb in "dxXo" and isinstance(arg, int):
            text = format(arg, {"d": "d", "x": "x", "X": "X", "o": "o"}[verb])
        width = flags.lstrip("-+# 0").split(".")[0]
        if width:
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width))
        out.append(text)
    return "".join(out)


def _compare(op: str) -> Callable[..., bool]:
    def compare(a: Any, *others: Any) -> bool:
        if op == "eq":
            return any(a == b for b in others)
        b = others[0]
        return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
    return compare


def _and(*args: Any) -> Any:
    for arg in args:
        if not truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if truth(arg):
            return arg
    return args[-1]


FUNCS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "split": lambda s, sep: str(s).split(sep) if sep else list(str(s)),
    "join": lambda items, sep: sep.join(go_string(x) for x in items or []),
    "title": lambda s: _title(go_string(s)),
    "lower": lambda s: go_string(s).lower(),
    "upper": lambda s: go_string(s).upper(),
    "pad": lambda s, before, after: " " * before + go_string(s) + " " * after,
    "truncate": lambda s, n: go_string(s)[:n],
    "len": lambda v: len(v if v is not None else ()),
    "index": _index,
    "slice": lambda v, *ix: v[slice(*ix)],
    "print": lambda *v: "".join(go_string(x) if isinstance(x, str) or i == 0 or isinstance(v[i - 1], str)
                                else " " + go_string(x) for i, x in enumerate(v)),
    "println": lambda *v: " ".join(go_string(x) for x in v) + "\n",
    "printf": _printf,
    "not": lambda v: not truth(v),
    "and": _and, "or": _or,
    **{op: _compare(op) for op in ("eq", "ne", "lt", "le", "gt", "ge")},
}
