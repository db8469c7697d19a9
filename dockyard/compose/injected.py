"""Secrets and configs with no host file (a secret's or config's `environment:`, a config's
`content:`): written into a created container before it starts, as Docker Compose does, by
`PUT /containers/{id}/archive` of a one-file-each tar; file-based ones are bind mounts (convert)."""

from __future__ import annotations

import io
import time
from typing import Any, NamedTuple

from dockyard.client.api import APIError, Client
from dockyard.compose.convert import file_target
from dockyard.compose.errors import ComposeError

DEFAULT_MODE = 0o444


class File(NamedTuple):
    path: str
    data: bytes
    mode: int
    uid: int | None
    gid: int | None


def _id(ref: dict[str, Any], key: str, where: str) -> int | None:
    if ref.get(key) in (None, ""):
        return None
    try:
        return int(ref[key])
    except ValueError:
        raise ComposeError(f"{where}: invalid {key} {ref[key]!r}: must be a number") from None


def files(project: Any, svc: dict[str, Any]) -> list[File]:
    """The service's secrets and configs whose content is not a file; ComposeError when a
    variable they name is not set."""
    out = []
    for kind in ("secrets", "configs"):
        for ref in svc.get(kind) or []:
            conf = (project.model.get(kind) or {}).get(ref["source"]) or {}
            if conf.get("file"):
                continue
            if conf.get("environment"):
                var = conf["environment"]
                if var not in project.environment:
                    raise ComposeError(f'environment variable "{var}" required by file "{conf["name"]}" is not set')
                content = project.environment[var]
            elif kind == "configs":
                content = conf.get("content") or ""
            else:
                continue
            if content or kind == "secrets":  # an empty config is skipped, an empty secret written
                where = f"{kind} {ref['source']}"
                out.append(File(file_target(kind, ref), content.encode(),
                                int(ref["mode"], 8) if "mode" in ref else DEFAULT_MODE,
                                _id(ref, "uid", where), _id(ref, "gid", where)))
    return out


def archive(entries: list[File]) -> bytes:
    """A tar of the files (no directory entries: the daemon creates missing parents)."""
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in entries:
            info = tarfile.TarInfo(f.path.lstrip("/"))
            info.size, info.mode, info.mtime = len(f.data), f.mode, int(time.time())
            info.uid, info.gid = f.uid or 0, f.gid or 0
            tar.addfile(info, io.BytesIO(f.data))
    return buf.getvalue()


def inject(client: Client, cid: str, entries: list[File]) -> None:
    """Write the files into the (created, not yet started) container."""
    if not entries:
        return
    owned = any(f.uid is not None or f.gid is not None for f in entries)
    try:
        client.call("PUT", f"/containers/{cid}/archive", {"path": "/", "copyUIDGID": 1 if owned else None},
                    archive(entries), {"Content-Type": "application/x-tar"})
    except APIError as exc:
        raise ComposeError(f"Error response from daemon: {exc.message}") from None
