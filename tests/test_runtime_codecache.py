"""The runtime's code cache (dockyard/runtime/codecache.py): modules come from the one cache file
while their sources are unchanged, and from the normal import system as soon as they are not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from dockyard.runtime import codecache
from tests.conftest import Runtime, unique_id

PROJECT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def run_python(code: str, *paths: Path) -> str:
    """Run code in a fresh `python -IS` with paths first on sys.path; return its stdout."""
    prelude = "import sys\n" + "".join(f"sys.path.insert(0, {str(p)!r})\n" for p in (PROJECT, *paths))
    proc = subprocess.run([sys.executable, "-IS", "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def make_package(root: Path) -> Path:
    """A package `cachedpkg` with a submodule importing the standard library's __future__."""
    pkg = root / "cachedpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 'package'\n")
    (pkg / "mod.py").write_text("from __future__ import annotations\n\n\ndef f() -> str:\n"
                                "    '''doc'''\n    return 'cached'\n")
    return pkg


def build_cache(src: Path, cache: Path) -> None:
    run_python(f"""
        from dockyard.runtime import codecache
        print(codecache.build({str(cache)!r}, ["cachedpkg.mod"]))
    """, src)


IMPORT_AND_REPORT = """
    from dockyard.runtime import codecache
    print(codecache.install({cache!r}))
    import cachedpkg.mod
    print(cachedpkg.VALUE, cachedpkg.mod.f(), cachedpkg.mod.f.__doc__)
    print(type(cachedpkg.mod.__spec__.loader).__name__, type(cachedpkg.__spec__.loader).__name__)
    print(cachedpkg.mod.__file__, cachedpkg.mod.__cached__)
"""


def test_modules_load_from_the_cache_without_their_pyc(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    pkg = make_package(src)
    cache = tmp_path / "pkg.code"
    build_cache(src, cache)
    for pycache in pkg.rglob("__pycache__"):
        for f in pycache.iterdir():
            f.unlink()
    out = run_python(IMPORT_AND_REPORT.format(cache=str(cache)), src).splitlines()
    # Compiled as with -OO: no docstrings.
    assert out == ["True", "package cached None", "CodeCache CodeCache", f"{pkg / 'mod.py'} {cache}"]
    assert not list(pkg.rglob("*.pyc")), "the normal import system was used"


def test_a_changed_or_removed_source_is_not_served_from_the_cache(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    pkg = make_package(src)
    cache = tmp_path / "pkg.code"
    build_cache(src, cache)
    (pkg / "mod.py").write_text("def f():\n    'new doc'\n    return 'edited'\n")
    out = run_python(IMPORT_AND_REPORT.format(cache=str(cache)), src).splitlines()
    assert out[1:3] == ["package edited new doc", "SourceFileLoader CodeCache"]
    (pkg / "mod.py").unlink()
    proc = subprocess.run([sys.executable, "-IS", "-c", f"import sys; sys.path[:0] = [{str(PROJECT)!r}, "
                           f"{str(src)!r}]\nfrom dockyard.runtime import codecache\n"
                           f"codecache.install({str(cache)!r})\nimport cachedpkg.mod"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "No module named 'cachedpkg.mod'" in proc.stderr


def test_a_missing_or_foreign_file_is_not_installed(tmp_path: Path) -> None:
    before = list(sys.meta_path)
    assert not codecache.install(str(tmp_path / "absent"))
    bad = tmp_path / "bad.code"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not marshal at all")
    assert not codecache.install(str(bad))
    other = tmp_path / "other.code"
    head = __import__("marshal").dumps(((codecache.FORMAT, "cpython-0"), {}))
    other.write_bytes(len(head).to_bytes(8, "little") + head)
    assert not codecache.install(str(other))
    assert sys.meta_path == before


def test_the_launcher_serves_the_run_path_from_the_cache() -> None:
    """The runtime's launcher installs the cache that `make setup` built, and every module a
    `run` imports (the runtime's own and the standard library's from source) comes from it."""
    launcher = (VENV_BIN / "dockyard-runtime").read_text()
    assert "codecache import install" in launcher
    lines = launcher.splitlines()[1:-2]  # without the shebang and the call of main
    startup = "import sys\nstartup = set(sys.modules)"  # encodings: loaded before any launcher code
    out = subprocess.run([sys.executable, "-IS", "-c", "\n".join([startup, *lines, textwrap.dedent("""
        import dockyard.runtime.cli, dockyard.runtime.commands, dockyard.runtime.create
        import dockyard.runtime.foreground, dockyard.runtime.cgroups.v1, dockyard.runtime.cgroups.devices
        for name, module in sorted(sys.modules.items()):
            origin = getattr(getattr(module, "__spec__", None), "origin", None) or ""
            if origin.endswith(".py") and name not in startup:
                print(name, type(module.__spec__.loader).__name__)
    """)])], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaders = dict(line.split() for line in out.stdout.splitlines())
    assert len(loaders) > 25 and "dockyard.runtime.create" in loaders and "__future__" in loaders
    served_elsewhere = {n: kind for n, kind in loaders.items() if kind != "CodeCache"}
    # The cache module itself is imported before it is installed, with its packages.
    assert set(served_elsewhere) == {"dockyard", "dockyard.runtime", "dockyard.runtime.codecache"}


def test_a_container_runs_through_the_cached_launcher(dockyard_runtime: Runtime, bundle_factory) -> None:
    """The whole `run` path executes from cached code (compiled without asserts/docstrings)."""
    bundle = bundle_factory(["/bin/sh", "-c", "echo cached-run"])
    proc = dockyard_runtime("run", "--bundle", str(bundle.path), unique_id("cc"))
    assert proc.stdout == "cached-run\n"
