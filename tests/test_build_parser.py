"""The Dockerfile parser against the reference (the `dockerfile` package wraps BuildKit's parser)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dockyard.build.parser import ParseError, parse
from dockyard.build.shell import Lex, ShellError

dockerfile = pytest.importorskip("dockerfile")

CORPUS = sorted((Path(__file__).parent / "data" / "dockerfiles").glob("*.Dockerfile"))


def ours(text: str):
    try:
        return [tuple(c) for c in parse(text).commands]
    except ParseError as e:
        return ("error", e.message)


def oracle(text: str):
    try:
        return [tuple(c[:8]) + (tuple(tuple(h) for h in c.heredocs),) for c in dockerfile.parse_string(text)]
    except dockerfile.GoParseError as e:
        return ("error", str(e))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_matches_reference(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert ours(text) == oracle(text)


PIECES = [
    "FROM", "RUN", "COPY", "ADD", "ENV", "LABEL", "ARG", "ONBUILD", "CMD", "HEALTHCHECK", "EXPOSE", "USER",
    "VOLUME", "SHELL", "WORKDIR", "run", "foo", " ", "  ", "\t", "\\", "`", "\n", "\\\n", "`\n", "# c\n",
    "#escape=`\n", "# escape=\\\n", "# syntax=x\n", "#check=skip=all\n", "'", '"', "=", "a", "b=c", "$x",
    "${x:-y}", "<<EOF", "<<-EOF", "<<'E'", "EOF\n", "\tEOF\n", "E\n", "[", "]", '["a"]', "[1]", ",",
    "--from=x", "--mount=type=cache,target=/x", "--", "-", "\r\n", "\ufeff", "3<<EOF", "<< EOF", '"<<EOF"',
    "ONBUILD RUN <<EOF\n", "RUN <<A <<B\n", "A\n", "B\n", 'COPY <<"EOF" /x\n', 'RUN cat <<-"E" \\\n',
    "\t\tE\n", 'ENV a="b c" d\\ e=f\n', 'LABEL "k"="v v"\n', "é", "\u00a0", "{", "}", "\n\n",
    'HEALTHCHECK --interval=1s CMD ["a"]\n', "HEALTHCHECK NONE\n", "FROM a AS b\n", 'RUN ["a",\n', ' "b"]\n',
]


@pytest.mark.parametrize("seed", range(8))
def test_random_dockerfiles_match_reference(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(400):
        text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 25)))
        assert ours(text) == oracle(text), repr(text)


def test_errors_name_the_line() -> None:
    with pytest.raises(ParseError) as e:
        parse("FROM busybox\n\nENV\\\n  ONLYKEY\n")
    assert (e.value.line, e.value.end_line) == (3, 4)
    assert str(e.value) == "dockerfile parse error on line 3: ENV must have two arguments"
    with pytest.raises(ParseError) as e:
        parse("FROM a\nRUN <<EOF\nx\n")
    assert e.value.line == 2 and "unterminated heredoc" in str(e.value)


def test_directives_and_escape() -> None:
    df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN a `\n  b\n")
    assert df.escape == "`" and df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert df.commands[1].value == ("a   b",)


ENV = {"V": "value", "EMPTY": "", "P": "/usr/local/lib/file.tar.gz"}


@pytest.mark.parametrize(("word", "expected"), [
    ("$V", "value"), ("${V}", "value"), ("${V:-w}", "value"), ("${U:-w}", "w"), ("${EMPTY:-w}", "w"),
    ("${EMPTY-w}", ""), ("${U-w}", "w"), ("${V:+w}", "w"), ("${EMPTY:+w}", ""), ("${EMPTY+w}", "w"),
    ("${U+w}", ""), ("${P#*/}", "usr/local/lib/file.tar.gz"), ("${P##*/}", "file.tar.gz"),
    ("${P%.*}", "/usr/local/lib/file.tar"), ("${P%%.*}", "/usr/local/lib/file"),
    ("${P/l/L}", "/usr/Local/lib/file.tar.gz"), ("${P//l/L}", "/usr/LocaL/Lib/fiLe.tar.gz"),
    ("'$V'", "$V"), ('"$V x"', "value x"), ("\\$V", "$V"), ("a$", "a$"), ("${U:-$V}", "value"),
    ("pre${V}post", "prevaluepost"),
])
def test_substitution(word: str, expected: str) -> None:
    assert Lex().process_word(word, ENV) == expected


def test_substitution_errors_and_words() -> None:
    with pytest.raises(ShellError, match="U: must be set"):
        Lex().process_word("${U:?must be set}", ENV)
    with pytest.raises(ShellError, match="missing '}'"):
        Lex().process_word("${V:-x", ENV)
    assert Lex().process_words('a "b c" $V', ENV) == ["a", "b c", "value"]
    assert Lex("`").process_word("a`$V", ENV) == "a$V"


def test_package_style_api_equals_reference() -> None:
    from dockyard.build.parser import parse_file, parse_string
    path = CORPUS[0]
    assert parse_file(str(path)) == dockerfile.parse_file(str(path))
    assert parse_string("FROM a\nRUN b\n") == dockerfile.parse_string("FROM a\nRUN b\n")


@pytest.mark.parametrize("text", [
    "FROM a\nRUN " + "x" * 65531 + "\n", "FROM a\nRUN " + "x" * 65532 + "\nRUN b\n", "FROM a\nRUN " + "x" * 65532,
    "FROM a\nRUN " + "x" * 65531, "FROM a\nRUN <<EOF\n" + "x" * 70000, "RUN " + "é" * 40000 + "\n",
], ids=["fits", "too-long", "too-long-at-eof", "fits-at-eof", "in-heredoc", "multibyte"])
def test_line_length_limit(text: str) -> None:
    assert ours(text) == oracle(text)
