"""oslite and pathlite: the runtime's stand-ins for os and os.path give the standard library's
results, and a runtime command no longer imports os at all."""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.runtime import oslite, pathlite

PROJECT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = PROJECT / "dockyard" / "runtime"
VENV_BIN = Path(sys.executable).parent

PATHS = ["", ".", "..", "/", "//", "///", "a", "a/", "/a", "/a/", "a/b", "/a/b/c", "//a/b", "///a//b/",
         "a/./b", "a/../b", "../a/b", "/../a", "a/b/../../..", "/a/b/../../..", "./a/.", "a//b//c/"]


@pytest.mark.parametrize("name", ["split", "dirname", "basename", "normpath", "abspath"])
def test_one_path_functions(name: str) -> None:
    for p in PATHS:
        assert getattr(pathlite, name)(p) == getattr(posixpath, name)(p), (name, p)


def test_join_and_relpath() -> None:
    for a in PATHS:
        for b in PATHS:
            assert pathlite.join(a, b) == posixpath.join(a, b), (a, b)
            assert pathlite.join(a, b, "c") == posixpath.join(a, b, "c"), (a, b)
            if a and b:
                assert pathlite.relpath(a, b) == posixpath.relpath(a, b), (a, b)
        if a:
            assert pathlite.relpath(a) == posixpath.relpath(a), a
    with pytest.raises(ValueError):
        pathlite.relpath("")


def test_path_like_arguments(tmp_path: Path) -> None:
    """Path objects are accepted where posixpath accepts them (the engine passes some)."""
    for name in ("split", "dirname", "basename", "normpath", "abspath", "realpath", "exists", "isdir"):
        assert getattr(pathlite, name)(tmp_path / "x") == getattr(posixpath, name)(tmp_path / "x"), name
    assert pathlite.join(tmp_path, Path("a"), "b") == posixpath.join(tmp_path, Path("a"), "b")
    assert pathlite.relpath(tmp_path / "a", tmp_path) == posixpath.relpath(tmp_path / "a", tmp_path)


def test_realpath_and_predicates(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "d" / "e")
    (tmp_path / "rel").symlink_to("d")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    for p in ["d", "d/e", "link", "link/..", "link/../e", "rel/e/../..", "f", "missing", "missing/x/../y",
              "link/missing", "d/missing/../e", "."]:
        full = str(tmp_path / p) if p != "." else str(tmp_path) + "/."
        assert pathlite.realpath(full) == posixpath.realpath(full), p
        for name in ("exists", "lexists", "isdir", "isfile", "islink"):
            assert getattr(pathlite, name)(full) == getattr(posixpath, name)(full), (name, p)
    for name in ("exists", "lexists", "isdir", "isfile", "islink"):
        assert getattr(pathlite, name)(str(tmp_path / "dangling")) == getattr(posixpath, name)(
            str(tmp_path / "dangling")), name
        assert getattr(pathlite, name)("bad\0path") is False


def test_makedirs(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    oslite.makedirs(str(target) + "/")
    assert target.is_dir()
    oslite.makedirs(str(target), exist_ok=True)
    with pytest.raises(FileExistsError):
        oslite.makedirs(str(target))
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        oslite.makedirs(str(tmp_path / "file"), exist_ok=True)
    with pytest.raises(NotADirectoryError):
        oslite.makedirs(str(tmp_path / "file" / "sub"), exist_ok=True)


def test_walk(tmp_path: Path) -> None:
    for d in ("a/b/c", "a/x", "d"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "a" / "f").write_text("x")
    (tmp_path / "a" / "to-d").symlink_to(tmp_path / "d")
    (tmp_path / "unreadable").mkdir(mode=0)  # root lists it anyway; what matters is equality

    def listing(walker) -> list:
        return [(root, sorted(dirs), sorted(files)) for root, dirs, files in walker]

    for topdown in (True, False):
        assert listing(oslite.walk(str(tmp_path), topdown)) == listing(os.walk(str(tmp_path), topdown))
    pruned = []
    for root, dirs, _files in oslite.walk(str(tmp_path)):
        dirs[:] = [d for d in dirs if d != "a"]
        pruned.append(root)
    assert str(tmp_path / "a") not in pruned and str(tmp_path / "d") in pruned
    assert list(oslite.walk(str(tmp_path / "absent"))) == []


def test_environ_and_encoding() -> None:
    """environ: the process's environment when oslite was imported (os.environ may change later)."""
    out = subprocess.run([sys.executable, "-IS", "-c", f"import sys; sys.path.insert(0, {str(PROJECT)!r})\n"
                          "import os\nfrom dockyard.runtime import oslite\nprint(oslite.environ == dict(os.environ))"],
                         env={"A": "1", "B": "caf\udce9".encode("utf-8", "surrogateescape").decode("latin-1")},
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == "True\n", out.stderr
    name = "caf\udce9"  # an undecodable byte, as os.fsdecode gives it
    assert oslite.fsencode(name) == os.fsencode(name) and oslite.fsdecode(oslite.fsencode(name)) == name
    assert oslite.fsencode(b"x") == b"x" and oslite.fsdecode("x") == "x"


def test_every_os_name_the_runtime_uses_exists() -> None:
    """Each module that imports oslite as os finds there every os.NAME (and os.path.NAME) it uses."""
    missing = []
    for f in RUNTIME_DIR.rglob("*.py"):
        text = f.read_text()
        if "import oslite as os" not in text:
            continue
        for name, sub in set(re.findall(r"\bos\.([A-Za-z_]+)(?:\.([A-Za-z_]+))?", text)):
            if not hasattr(oslite, name) or (name == "path" and sub and not hasattr(pathlite, sub)):
                missing.append(f"{f.name}: os.{name}{'.' + sub if name == 'path' and sub else ''}")
    assert not missing


def test_a_runtime_command_imports_no_os() -> None:
    """The launcher and every module of `run`, `create`, `start`, `delete` and `exec` load
    without os (nor the collections ABCs it pulls in)."""
    launcher = (VENV_BIN / "dockyard-runtime").read_text().splitlines()[1:-2]
    code = "\n".join([*launcher, "import dockyard.runtime.cli, dockyard.runtime.commands, dockyard.runtime.create",
                      "import dockyard.runtime.execute, dockyard.runtime.foreground, dockyard.runtime.lifecycle",
                      "import dockyard.runtime.cgroups.v1, dockyard.runtime.cgroups.devices",
                      "import dockyard.runtime.seccomp, dockyard.runtime.seccomp_bpf",
                      "print(sorted({'os', 'posixpath', '_collections_abc', 'resource'} & set(sys.modules)))"])
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
