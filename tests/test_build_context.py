""".dockerignore matching (moby/patternmatcher semantics), context packing and safe unpacking,
COPY path rules: no daemon needed."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.build import fsops
from dockyard.build.context import ContextError, extract, looks_like_tar, pack, single_file_context
from dockyard.build.ignore import PatternError, PatternMatcher, read_ignore


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),           # * does not cross directories
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),
    (["**"], "anything/at/all", True),
    (["dir/**"], "dir/x/y", True),
    (["dir/**"], "dir", False),                # "dir/" is a prefix of its contents only
    (["dir"], "dir/x/y", True),                # a parent directory matching excludes its contents
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["!README.md", "*.md"], "README.md", True),   # the last matching pattern wins
    (["docs", "!docs/keep.txt"], "docs/keep.txt", False),
    (["docs", "!docs/keep.txt"], "docs/other.txt", True),
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[a-c].txt"], "b.txt", True),
    (["[a-c].txt"], "d.txt", False),
    (["a\\*b"], "a*b", True),
    (["a\\*b"], "axb", False),
    (["file.txt"], "fileXtxt", False),         # . is literal
    (["(x)+"], "(x)+", True),
    (["dir/"], "dir/file", True),              # trailing slash cleaned
    (["./x"], "x", True),
    (["x/../y"], "y", True),
])
def test_pattern_matching(patterns: list[str], path: str, excluded: bool) -> None:
    assert PatternMatcher(patterns).matches(path) is excluded


def test_read_ignore_file() -> None:
    text = "\ufeff# comment\n  *.log  \n\n/abs/path\n! keep.log\n#!not-a-negation\n/\r\nsub//dir/\n"
    assert read_ignore(text) == ["*.log", "abs/path", "!keep.log", "/", "sub/dir"]


def test_bad_patterns() -> None:
    with pytest.raises(PatternError):
        PatternMatcher(["!"])
    with pytest.raises(PatternError):
        PatternMatcher(["[a-"])


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted(m.name for m in tar.getmembers())


def test_pack_applies_dockerignore(tmp_path: Path) -> None:
    _tree(tmp_path, {"Dockerfile": "FROM scratch\n", "app.py": "x", "a.log": "", "keep.log": "",
                     "node_modules/m/index.js": "", "docs/a.md": "", "docs/keep/b.md": "",
                     "sub/x.log": "", ".dockerignore": "*.log\n!keep.log\nnode_modules\ndocs\n!docs/keep\n"
                     "Dockerfile\n.dockerignore\n"})
    out = io.BytesIO()
    pack(str(tmp_path), out)
    assert _names(out.getvalue()) == [".dockerignore", "Dockerfile", "app.py", "docs/keep", "docs/keep/b.md",
                                      "keep.log", "sub", "sub/x.log"]


def test_dockerfile_specific_ignore_wins(tmp_path: Path) -> None:
    _tree(tmp_path, {"build/app.Dockerfile": "FROM scratch\n", "build/app.Dockerfile.dockerignore": "b.txt\n",
                     ".dockerignore": "a.txt\n", "a.txt": "", "b.txt": ""})
    out = io.BytesIO()
    pack(str(tmp_path), out, dockerfile="build/app.Dockerfile")
    names = _names(out.getvalue())
    assert "a.txt" in names and "b.txt" not in names


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_extract_refuses_escaping_paths(tmp_path: Path) -> None:
    dest = tmp_path / "ctx"
    dest.mkdir()
    with pytest.raises(ContextError):
        extract(_tar([_file("../evil")]), str(dest))
    assert not (tmp_path / "evil").exists()


def test_extract_never_writes_through_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "ctx"
    dest.mkdir()
    with pytest.raises(ContextError):
        extract(_tar([_link("d", str(outside)), _file("d/pwned")]), str(dest))
    assert not (outside / "pwned").exists()
    dest2 = tmp_path / "ctx2"
    dest2.mkdir()
    extract(_tar([_link("l", str(outside / "target")), _file("l", b"replaced")]), str(dest2))
    assert not (outside / "target").exists() and (dest2 / "l").read_bytes() == b"replaced"


def test_extract_keeps_modes_and_links(tmp_path: Path) -> None:
    dest = tmp_path / "ctx"
    dest.mkdir()
    extract(_tar([_file("bin/tool", b"#!/bin/sh\n", 0o755), _link("abs", "/etc/passwd"),
                  _link("hard", "bin/tool", tarfile.LNKTYPE)]), str(dest))
    assert os.stat(dest / "bin/tool").st_mode & 0o777 == 0o755
    assert os.readlink(dest / "abs") == "/etc/passwd"
    assert os.stat(dest / "hard").st_ino == os.stat(dest / "bin/tool").st_ino


def test_extract_unfinished_tar(tmp_path: Path) -> None:
    """A plain tar ending right after its last file's data (no padding, no end blocks: the
    docker CLI's context with `-f -`) unpacks, as Go's reader takes it; cut inside a file's
    data or a header it is refused; a compressed one is left alone."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("a.txt", b"a" * 600), ("b.txt", b"bb")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    full = buf.getvalue()
    unfinished = full[:512 * 4 + 512 + 2]  # a's header and 2 data blocks, b's header, b's 2 bytes
    for n, (body, ok) in enumerate([(unfinished, True), (full[:512 * 4 + 512], True), (full[:1000], False),
                                    (full[:512 * 3 + 100], False), (gzip.compress(full), True)]):
        dest = tmp_path / str(n)
        dest.mkdir()
        if ok:
            extract(io.BytesIO(body), str(dest))
            assert (dest / "a.txt").read_bytes() == b"a" * 600
        else:
            with pytest.raises(ContextError, match="unexpected end of data"):
                extract(io.BytesIO(body), str(dest))
    assert (tmp_path / "0" / "b.txt").read_bytes() == b"bb"


def test_plain_dockerfile_body() -> None:
    assert not looks_like_tar(b"FROM busybox\n")
    ctx = single_file_context(b"FROM busybox\n")
    assert looks_like_tar(ctx.getvalue()[:512])


def test_resolve_stays_in_root(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.symlink("/etc", tmp_path / "etc-link")
    os.symlink("../../..", tmp_path / "d" / "up")
    assert fsops.resolve(str(tmp_path), "etc-link/passwd") == str(tmp_path / "etc" / "passwd")
    assert fsops.resolve(str(tmp_path), "d/up/x") == str(tmp_path / "x")


def test_copy_plan_rules(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.txt": "", "b.txt": "", "dir/c.txt": ""})

    def missing(src: str) -> fsops.CopyError:
        return fsops.CopyError(f"missing {src}")

    def plan(srcs: list[str], dest: str) -> list[tuple[str, str, bool]]:
        return list(fsops.plan_copy(str(tmp_path), srcs, dest, "/work", missing=missing))

    assert plan(["a.txt"], "x") == [("a.txt", "/work/x", False)]
    assert plan(["a.txt"], "/x/") == [("a.txt", "/x/a.txt", False)]
    assert plan(["dir"], "/d") == [("dir", "/d", True)]
    assert plan(["*.txt"], "/t/") == [("a.txt", "/t/a.txt", False), ("b.txt", "/t/b.txt", False)]
    with pytest.raises(fsops.CopyError, match="must be a directory"):
        plan(["*.txt"], "/t")
    with pytest.raises(fsops.CopyError, match="missing nope"):
        plan(["nope"], "/t")
    assert list(fsops.plan_copy(str(tmp_path), ["dir/c.txt"], "/p/", "/", parents=True, missing=missing)) == \
        [("dir/c.txt", "/p/dir/c.txt", False)]
