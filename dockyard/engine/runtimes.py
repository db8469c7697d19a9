"""The OCI runtimes a daemon offers (`docker run --runtime NAME`, daemon.json `runtimes` and
`default-runtime`): dockyard-runtime built in, runc and crun when installed, plus configured ones.
Each runtime keeps its containers' state in its own root under the exec root."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field

from dockyard.engine.config import ConfigError, DaemonConfig

DEFAULT = "dockyard-runtime"


@dataclass(frozen=True)
class Runtime:
    """One runtime: its name, command and global options (`runtimeArgs`)."""

    name: str
    path: str
    args: tuple[str, ...] = field(default_factory=tuple)

    def root(self, exec_root: str) -> str:
        """Its state root: <exec-root>/runtime for dockyard-runtime, runtime-<name> for the others."""
        return os.path.join(exec_root, "runtime" if self.name == DEFAULT else f"runtime-{self.name}")

    def info(self) -> dict[str, object]:
        """Its entry in GET /info "Runtimes"."""
        return {"path": self.path, **({"runtimeArgs": list(self.args)} if self.args else {})}


def own_runtime() -> str:
    """dockyard-runtime beside this interpreter (the project's venv), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "dockyard-runtime")
    return beside if os.access(beside, os.X_OK) else "dockyard-runtime"


def registry(config: DaemonConfig) -> dict[str, Runtime]:
    """The runtimes by name; ConfigError for a configured runtime without a path or an unknown
    default runtime, as dockerd refuses to start then."""
    found = {DEFAULT: Runtime(DEFAULT, own_runtime())}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            found[name] = Runtime(name, path)
    for name, entry in config.runtimes.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise ConfigError(f"runtime {name!r} in the daemon configuration needs a \"path\"")
        args = entry.get("runtimeArgs") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConfigError(f"runtime {name!r}: runtimeArgs must be a list of strings")
        found[name] = Runtime(name, entry["path"], tuple(args))
    if config.default_runtime not in found:
        raise ConfigError(f"specified default runtime '{config.default_runtime}' does not exist")
    return found
