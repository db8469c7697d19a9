"""docker diff and docker commit: a container's own layer (the snapshot's overlay upper dir, or
its full tree compared with the parent's) as read by the image store's layer writer."""

from __future__ import annotations

import contextlib
import os
import posixpath
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dockyard.engine.containers.errors import Conflict, InvalidParameter
from dockyard.engine.containers.spec import merge_env
from dockyard.image.archive.changes import ChangeError, apply_changes
from dockyard.image.layer_apply import WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from dockyard.image.layer_diff import write_layer
from dockyard.image.tarstream import DIR, TarReader
from dockyard.runtime.paths import secure_join

if TYPE_CHECKING:
    from dockyard.engine.containers.service import ContainerService

MODIFIED, ADDED, DELETED = 0, 1, 2
# What Docker keeps in a container's init layer (below its diff): mount points the runtime makes.
INIT_PATHS = frozenset({"/.dockerenv", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab",
                        "/dev/console", "/dev/pts", "/dev/shm", "/proc", "/sys", "/dev"})


def _lowers(service: ContainerService, cid: str) -> tuple[str, str, str | None, list[str]]:
    """(diff mode, layer dir, parent dir for compare mode, the image's trees to look paths up in)."""
    snapshots = service.images.snapshots
    mode, layer = snapshots.diff_mode(), snapshots.layer_dir(cid)
    if mode == "compare":
        parent = snapshots.parent_dir(cid)
        return mode, layer, parent, [parent] if parent else []
    lowers = [opt.removeprefix("lowerdir=") for m in snapshots.mounts(cid) for opt in m.options
              if opt.startswith("lowerdir=")]
    return mode, layer, None, [d for opts in lowers for d in opts.split(":") if d]


def _layer_entries(mode: str, layer: str, parent: str | None) -> Iterator[tuple[str, bool]]:
    """(path, is directory) of each entry of the container's layer tar, written in a thread."""
    read_fd, write_fd = os.pipe()
    error: list[BaseException] = []

    def produce() -> None:
        with open(write_fd, "wb") as out:
            try:
                write_layer(layer, out, mode=mode, parent=parent)
            except (BrokenPipeError, OSError, RuntimeError) as e:
                error.append(e)

    thread = threading.Thread(target=produce, name="dockyardd-diff", daemon=True)
    thread.start()
    with open(read_fd, "rb") as source:
        chunks = iter(lambda: source.read(65536), b"")
        for entry in TarReader(chunks):
            yield "/" + entry.name.rstrip("/"), entry.type == DIR
        for _ in chunks:  # let the writer finish
            pass
    thread.join()
    if error:
        raise error[0]


def changes(service: ContainerService, ref: str) -> list[dict[str, Any]]:
    """GET /containers/{id}/changes: [{"Path", "Kind"}] sorted by path (0 changed, 1 added,
    2 deleted), parents of changes listed as changed, the init layer's paths left out."""
    cid = service.store.resolve(ref)
    mode, layer, parent, lowers = _lowers(service, cid)
    found: dict[str, int] = {}
    for path, _ in _layer_entries(mode, layer, parent):
        directory, base = posixpath.split(path)
        if base == WHITEOUT_OPAQUE:
            continue  # the directory itself is listed as changed
        if base.startswith(WHITEOUT_PREFIX):
            found[posixpath.join(directory, base[len(WHITEOUT_PREFIX):])] = DELETED
            continue
        in_image = any(os.path.lexists(secure_join(lower, path)) for lower in lowers)
        found[path] = MODIFIED if in_image else ADDED
    kept = {p: k for p, k in found.items() if p not in INIT_PATHS}
    needed = {posixpath.dirname(p) for p in kept}
    needed |= {a for p in needed for a in _ancestors(p)}
    hidden = {a for p in found if p in INIT_PATHS for a in _ancestors(p)}
    result = {p: k for p, k in kept.items() if not (k == MODIFIED and p in hidden and p not in needed)}
    result.update({p: MODIFIED for p in needed if p != "/" and p not in result})
    return [{"Path": p, "Kind": k} for p, k in sorted(result.items())]


def _ancestors(path: str) -> list[str]:
    out = []
    while path not in ("/", ""):
        path = posixpath.dirname(path)
        out.append(path)
    return out


def commit(service: ContainerService, ref: str, repo: str = "", tag: str = "", comment: str = "",
           author: str = "", pause: bool = True, change_lines: list[str] | None = None,
           config: dict[str, Any] | None = None) -> str:
    """POST /commit: a new image from the container's layer on its image, its config being the
    container's with the body's set fields over it (Env merged by name) and the --change lines
    applied; the image ID."""
    record = service.store.get(service.store.resolve(ref))
    cid = record["ID"]
    if repo and not tag and ":" in repo.rsplit("/", 1)[-1]:
        repo, tag = repo.rsplit(":", 1)
    body = {k: v for k, v in (config or {}).items() if v not in (None, "", [], {})}  # unset: the container's
    if body.get("Env"):
        body["Env"] = merge_env(record["Config"].get("Env") or [], body["Env"])
    try:
        run_config = apply_changes({**record["Config"], **body}, change_lines or [])
    except ChangeError as e:
        raise InvalidParameter(str(e)) from None
    paused_here = False
    if pause and record["State"]["Running"] and not record["State"]["Paused"]:
        with contextlib.suppress(Conflict):
            service.pause(cid)
            paused_here = True
    try:
        return service.images.commit_container(
            cid, run_config, image_id=record["Image"], author=author, comment=comment, container_id=cid,
            container_config=record["Config"],
            created_by=" ".join([record["Path"], *record["Args"]]), tags=(f"{repo}:{tag or 'latest'}",) if repo else ())
    finally:
        if paused_here:
            with contextlib.suppress(Conflict):
                service.unpause(cid)
