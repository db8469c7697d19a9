"""`dockyardd`: the engine daemon (Docker Engine API over a unix socket). Not built yet: it is
the subject of the engine issue; this entry point says so instead of pretending to serve."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    sys.stderr.write("dockyardd: the engine daemon is not part of this build yet "
                     "(the OCI runtime and the shim are: dockyard-runtime, dockyard-shim)\n")
    return 1
