"""`dockyard`: the user-facing CLI. Until the engine daemon exists (issue 4), it knows only
`version`; every other docker command is reported as not available yet, with docker's exit code."""

from __future__ import annotations

import sys

VERSION = "0.1.0"
USAGE = """Usage:  dockyard [OPTIONS] COMMAND

A Docker-compatible container engine.

Commands:
  version     Show the dockyard version information

The engine commands (run, ps, images, build, ...) arrive with dockyardd.
For containers today, use the OCI runtime directly: dockyard-runtime --help
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if args[0] in ("version", "-v", "--version"):
        print(f"Client: dockyard\n Version:    {VERSION}\n API version: 1.45 (not served yet)")
        return 0
    sys.stderr.write(f"dockyard: '{args[0]}' needs the engine daemon, which is not part of this build yet.\n"
                     "See 'dockyard --help'.\n")
    return 125
