"""Sending a build context to dockyardd incrementally (POST /build/context, contextsync.py):
the manifest of its trees, then a tar of only the files the daemon asks for. Shared by
`dockyard build` and `dockyard compose` (an API client: it imports this pure helper)."""

from __future__ import annotations

import io
import os
import zlib

from dockyard.client.api import APIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

    from dockyard.client.api import Client

Trees = list[tuple[str, str, list[str]]]  # (prefix in the tar, directory, its paths)


def sync(client: Client, trees: Trees, extra: tuple[str, bytes] | None) -> tuple[str, Trees] | None:
    """Send the manifest of the context's trees (prefix, directory, paths) to a dockyardd that
    keeps contexts: (session, the trees' paths to send), or None (another daemon: send
    everything). Other API errors are raised."""
    from dockyard.build.context import manifest
    entries: list[list] = []
    dirs: set[str] = set()
    for prefix, top, paths in trees:
        parts = prefix.rstrip("/").split("/") if prefix else []
        for i in range(len(parts)):
            if "/".join(parts[:i + 1]) not in dirs:
                dirs.add("/".join(parts[:i + 1]))
                entries.append(["/".join(parts[:i + 1]), "d", 0, 0, 0o755, ""])
        entries += [[prefix + e[0], *e[1:]] for e in manifest(top, paths)]
    if extra:
        entries.append([extra[0], "f", len(extra[1]), -1, 0o600, ""])  # always sent
    roots = "|".join(f"{prefix}{top}" for prefix, top, _paths in trees)
    key = f"{os.uname().nodename}:{roots}".encode()
    session = f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}"  # names the daemon's mirror of these directories
    try:  # unversioned: its answer settles the API version (no ping)
        reply = client.call("POST", "/build/context", {"session": session}, entries, versioned=False)
    except APIError as e:
        if e.status in (404, 405):
            return None
        raise
    need = set(reply.get("Need") or [])
    return reply.get("Context") or "", [(prefix, top, [p for p in paths if prefix + p in need])
                                         for prefix, top, paths in trees]


def write_tar(spool: IO[bytes], send: Trees, extra: tuple[str, bytes] | None) -> None:
    """The tar of the trees' paths (each under its prefix) and the extra file; an empty tar when
    there is nothing to send (every file is already on the daemon)."""
    if not any(paths for _prefix, _top, paths in send) and not extra:
        spool.write(b"\0" * 1024)
        return
    import tarfile

    from dockyard.build.context import add_paths
    with tarfile.open(fileobj=spool, mode="w|", format=tarfile.PAX_FORMAT) as out:
        for prefix, top, paths in send:
            add_paths(out, top, paths, prefix)
        if extra:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            info.mode = 0o600
            out.addfile(info, io.BytesIO(extra[1]))
