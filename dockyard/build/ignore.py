"""`.dockerignore` files and Docker's path patterns (moby/patternmatcher semantics)."""

from __future__ import annotations

import posixpath

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable

_ESCAPED = set(".+()|{}$")


def read_ignore(text: str | bytes) -> list[str]:
    """The patterns of a .dockerignore: comments and blank lines dropped, paths cleaned, a
    leading `/` removed (patterns are relative to the context), `!` kept."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    out = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = posixpath.normpath(pattern)
            if pattern.startswith("//"):
                pattern = "/" + pattern.lstrip("/")
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


class PatternError(ValueError):
    """A pattern Docker refuses."""


def _clean(path: str) -> str:
    """Go's filepath.Clean."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


class _Pattern:
    def __init__(self, pattern: str, exclusion: bool) -> None:
        self.pattern = pattern
        self.exclusion = exclusion
        self.dirs = pattern.split("/")
        self.kind, self.regex = _compile(pattern)

    def match(self, path: str) -> bool:
        p = self.pattern
        if self.kind == "exact":
            return path == p
        if self.kind == "prefix":
            return path.startswith(p[:-2])
        if self.kind == "suffix":
            suffix = p[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    out = ["^"]
    kind = "exact"
    i = 0
    n = len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append("\\" + pattern[i])
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        first = False
    if kind != "regexp":
        return kind, None
    import re  # only for patterns that need it: the CLI's start-up stays light
    try:
        return kind, re.compile("".join(out) + r"\Z")
    except re.error as e:
        raise PatternError(f"syntax error in pattern {pattern!r}: {e}") from None


def _check_syntax(pattern: str) -> None:
    """filepath.Match's syntax errors: unclosed or malformed character classes."""
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            count = 0
            while True:
                if i >= n:
                    raise PatternError("syntax error in pattern")
                if pattern[i] == "]" and count > 0:
                    break
                if pattern[i] == "\\":
                    i += 1
                if pattern[i:i + 1] == "-" and count == 0:
                    raise PatternError("syntax error in pattern")
                i += 1
                count += 1
        elif ch == "]":
            raise PatternError("syntax error in pattern")
        i += 1


class PatternMatcher:
    """Ordered include/exclude patterns; a later match decides, `!` re-includes."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[_Pattern] = []
        for p in patterns:
            p = p.strip()
            if not p:
                continue
            p = _clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise PatternError('illegal exclusion pattern: "!"')
                p = p[1:]
            _check_syntax(p)
            self.patterns.append(_Pattern(p, exclusion))
        self.exclusions = any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """Whether path (slash-separated, relative) or one of its parents is excluded."""
        path = _clean(path)
        if path == ".":
            return False
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path)
            if not match and parent != ".":
                for i in range(len(parent_dirs)):
                    if pattern.match("/".join(parent_dirs[:i + 1])):
                        match = True
                        break
            if match:
                matched = not pattern.exclusion
        return matched

    def may_include_below(self, directory: str) -> bool:
        """Whether a walk must enter an excluded directory: an exclusion pattern starts with
        it (Docker's context tar skips the directory otherwise, even if a `!*.x` could match)."""
        prefix = directory + "/"
        return any(p.exclusion and (p.pattern + "/").startswith(prefix) for p in self.patterns)
