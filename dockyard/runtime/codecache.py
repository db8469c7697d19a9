"""One file holding the compiled code of every module the runtime imports from source.

A runtime command imports ~30 modules; the normal import system looks for each along the
package path (a stat per candidate file name, then the .py and the .pyc) before reading and
unmarshalling it. The launcher of `dockyard-runtime` installs this finder first instead: a
module it knows is a dictionary lookup, one stat of its source (the cache entry is used only
while that file's size and mtime are the ones recorded), one pread and one unmarshal. A module it does not know, or whose source changed, is left to the normal import
system, so a stale cache costs time, never correctness. `make setup` builds the file
(`python -m dockyard.runtime.codecache build FILE`).
"""

import marshal
import posix  # not os: importing it costs ~1.7 ms (see oslite)
import sys
from _frozen_importlib import ModuleSpec  # importlib's own, always loaded: no file access
from _frozen_importlib_external import MAGIC_NUMBER

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

# No `from __future__ import annotations` here: this module is imported before the cache is
# installed, and __future__ is one of the modules the cache serves (annotations naming
# typing-only names are quoted instead).
FORMAT = 1  # bumped when the layout of the file changes


class CodeCache:
    """A meta path finder and loader over one cache file: its index maps a module name to
    (source path, mtime_ns, size, is_package, offset, length) of its marshalled code (offset
    from base, where the code follows the index), read (pread) only when it is imported."""

    def __init__(self, path: str, fd: int, base: int,
                 index: dict[str, tuple[str, int, int, bool, int, int]]) -> None:
        self.path = path
        self.fd = fd
        self.base = base
        self.index = index

    def find_spec(self, name: str, path: "Any" = None, target: "Any" = None) -> "Any":
        entry = self.index.get(name)
        if entry is None:
            return None
        origin, mtime_ns, size, is_package = entry[:4]
        try:
            st = posix.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None
        spec = ModuleSpec(name, self, origin=origin, is_package=is_package)
        spec.has_location = True  # sets __file__ as a file-based import would
        spec.cached = self.path  # __cached__: where the compiled code is (else derived: ~30 us a module)
        if is_package:
            spec.submodule_search_locations = [origin.rpartition("/")[0]]
        return spec

    def create_module(self, spec: "Any") -> None:
        return None  # the default module object

    def exec_module(self, module: "Any") -> None:
        offset, length = self.index[module.__name__][4:]
        exec(marshal.loads(posix.pread(self.fd, length, self.base + offset)), module.__dict__)  # noqa: S102


_HEAD = 8  # the file starts with the length of the marshalled header and index


def install(path: str) -> bool:
    """Put the cache file at path first in sys.meta_path; False (and nothing changed) when the
    file is missing, unreadable or written by another format or bytecode version. The file stays
    open (close-on-exec) for the life of the process."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return False
    try:
        size = int.from_bytes(posix.pread(fd, _HEAD, 0), "little")
        header, index = marshal.loads(posix.pread(fd, size, _HEAD))
        if header != (FORMAT, MAGIC_NUMBER):
            raise ValueError("another format")
    except (OSError, ValueError, EOFError, TypeError):
        posix.close(fd)
        return False
    sys.meta_path.insert(0, CodeCache(path, fd, _HEAD + size, index))
    return True


def source_modules(names: list[str]) -> "dict[str, Any]":
    """Import names; return the modules loaded from .py files by those imports, and those of
    names themselves (their packages may be loaded already), by name."""
    import importlib
    import os

    before = set(sys.modules)
    for name in names:
        importlib.import_module(name)
    found = {}
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None) or ""
        if (name not in before or name in names) and origin.endswith(".py") and os.path.isfile(origin):
            found[name] = module
    return found


def runtime_module_names(package_dir: str) -> list[str]:
    """dockyard, every module of the dockyard.runtime package (package_dir is its directory),
    and the source modules of the standard library its modules import at the start of a
    function (__future__ is imported by every module, json by `state`)."""
    import os

    names = ["__future__", "json", "dockyard"]
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = os.path.relpath(dirpath, os.path.dirname(os.path.dirname(package_dir)))
        package = rel.replace(os.sep, ".")
        for fname in sorted(filenames):
            if fname.endswith(".py"):
                stem = fname[:-3]
                names.append(package if stem == "__init__" else f"{package}.{stem}")
    return names


def build(path: str, names: list[str]) -> int:
    """Write the cache file of the modules names import from source (see source_modules);
    returns how many. Code is compiled without docstrings and asserts (-OO; the runtime reads
    neither), the smaller the faster to load. Written to a temporary file, then renamed: a
    launcher never reads half a file."""
    import os

    modules = source_modules(names)
    index = {}
    blobs = []
    offset = 0
    for name, module in sorted(modules.items()):
        spec = module.__spec__
        st = os.stat(spec.origin)  # before reading: a later change makes the entry stale, not wrong
        with open(spec.origin, "rb") as f:
            source = f.read()
        blob = marshal.dumps(compile(source, spec.origin, "exec", dont_inherit=True, optimize=2))
        index[name] = (spec.origin, st.st_mtime_ns, st.st_size, spec.submodule_search_locations is not None,
                       offset, len(blob))
        blobs.append(blob)
        offset += len(blob)
    head = marshal.dumps(((FORMAT, MAGIC_NUMBER), index))
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(len(head).to_bytes(_HEAD, "little") + head)
        f.write(b"".join(blobs))
    os.rename(tmp, path)
    return len(index)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "build":
        sys.exit("usage: python -m dockyard.runtime.codecache build FILE")
    count = build(sys.argv[2], runtime_module_names(__file__.rpartition("/")[0]))
    print(f"codecache: {count} modules in {sys.argv[2]}")
