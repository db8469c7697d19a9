"""`.env` / `--env-file` / service `env_file` parsing (compose-go's dotenv rules): comments,
`export`, single quotes literal, double quotes with escapes, `${VAR}` interpolation outside
single quotes."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from dockyard.compose.errors import ComposeError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-\[\]]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$"}


def parse(text: str, filename: str, lookup: Callable[[str], str | None] | None = None) -> dict[str, str]:
    """KEY=VALUE lines → a dict; lookup resolves ${VAR} (earlier keys of the file come first)."""
    from dockyard.compose.interpolation import substitute
    result: dict[str, str] = {}

    def resolve(name: str) -> str | None:
        if name in result:
            return result[name]
        return lookup(name) if lookup else None

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise ComposeError(f"failed to read {filename}: line {i}: unexpected character "
                               f"{(key[:1] or '=')!r} in variable name {key!r}")
        if not sep:
            found = resolve(key)
            if found is not None:
                result[key] = found
            continue
        value = value.lstrip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            body = value[1:]
            while quote not in body.replace("\\" + quote, "") and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            end = _closing(body, quote)
            if end < 0:
                raise ComposeError(f"failed to read {filename}: line {i}: unterminated quoted value")
            body = body[:end]
            if quote == "'":
                result[key] = body
                continue
            body = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)
            result[key] = substitute(body, resolve, f"{filename}: {key}")
            continue
        value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        result[key] = substitute(value, resolve, f"{filename}: {key}")
    return result


def _closing(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if body[i] == "\\" and quote == '"':
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def read(filename: str, lookup: Callable[[str], str | None] | None = None,
         required: bool = True) -> dict[str, str]:
    """Parse an env file; a missing optional one is empty."""
    try:
        with open(filename, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if not required:
            return {}
        raise ComposeError(f"env file {filename} not found: stat {filename}: no such file or directory") from None
    except OSError as exc:
        raise ComposeError(f"failed to read {filename}: {exc.strerror}") from None
    return parse(text, filename, lookup)


def chain(*maps: Mapping[str, str]) -> Callable[[str], str | None]:
    """A lookup trying each mapping in turn."""
    def lookup(name: str) -> str | None:
        for m in maps:
            if name in m:
                return m[name]
        return None
    return lookup
