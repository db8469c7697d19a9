"""`compose watch`: poll each service's `develop.watch` paths (5 times a second) and apply the
rule's action: sync (copy changed files into the running containers, delete removed ones),
sync+restart, sync+exec (then run the rule's command in them), or rebuild (build the image and
recreate the service)."""

from __future__ import annotations

import fnmatch
import io
import os
import socket
import sys
import tarfile
import time
from typing import Any

from dockyard.client.api import APIError
from dockyard.compose.engine import Engine
from dockyard.compose.errors import ComposeError

POLL = 0.2


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split(os.sep)
    return any(fnmatch.fnmatch(rel, p.rstrip("/")) or fnmatch.fnmatch(parts[0], p.rstrip("/"))
               or any(fnmatch.fnmatch(part, p.rstrip("/")) for part in parts) for p in patterns)


def snapshot(path: str, ignore: list[str]) -> dict[str, tuple[float, int]]:
    """relative path → (mtime, size) of every file under path (or the file itself)."""
    if os.path.isfile(path):
        st = os.stat(path)
        return {"": (st.st_mtime, st.st_size)}
    out: dict[str, tuple[float, int]] = {}
    for root, dirs, files in os.walk(path):
        rel_root = os.path.relpath(root, path)
        dirs[:] = [d for d in dirs if not _ignored(os.path.normpath(os.path.join(rel_root, d)), ignore)]
        for f in files:
            rel = os.path.normpath(os.path.join(rel_root, f))
            if _ignored(rel, ignore):
                continue
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            out[rel] = (st.st_mtime, st.st_size)
    return out


def _tar(rule: dict[str, Any], changed: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in changed:
            source = os.path.join(rule["path"], rel) if rel else rule["path"]
            target = os.path.join(rule["target"], rel) if rel else rule["target"]
            tar.add(source, target.lstrip("/"), recursive=False)
    return buf.getvalue()


def _exec(eng: Engine, cid: str, cmd: list[str], data: bytes | None = None) -> None:
    exec_id = eng.client.exec_create(cid, {"Cmd": cmd, "AttachStdin": data is not None, "AttachStdout": True,
                                           "AttachStderr": True})["Id"]
    resp = eng.client.exec_start(exec_id, False, False)
    assert resp is not None
    try:
        if data is not None:
            resp.sock.sendall(data)
            resp.sock.shutdown(socket.SHUT_WR)
        for _ in resp.iter_raw():
            pass
    finally:
        resp.close()


def sync(eng: Engine, service: str, rule: dict[str, Any], changed: list[str], removed: list[str]) -> None:
    """Copy changed files into every running container of the service; delete removed ones."""
    data = _tar(rule, changed) if changed else b""
    for c in eng.containers([service], all=False):
        if data:
            try:
                eng.client.call("PUT", f"/containers/{c['Id']}/archive", {"path": "/"}, data,
                                {"Content-Type": "application/x-tar"})
            except APIError as exc:
                if exc.status not in (404, 405):
                    raise
                _exec(eng, c["Id"], ["tar", "-x", "-C", "/"], data)  # a daemon without the archive route
        if removed:
            _exec(eng, c["Id"], ["rm", "-rf", *(os.path.join(rule["target"], r) for r in removed)])


def _apply(eng: Engine, service: str, rule: dict[str, Any], changed: list[str], removed: list[str]) -> None:
    action = rule.get("action", "sync")
    count = len(changed) + len(removed)
    if action == "rebuild":
        eng.progress.line(f"Rebuilding service {service!r} after changes were detected...")
        eng.build(service)
        eng.up([service], no_deps=True)
        return
    eng.progress.line(f"Syncing service {service!r} after {count} changes were detected")
    sync(eng, service, rule, changed, removed)
    if action == "sync+restart":
        eng.action([service], "restart", "Started")
    elif action == "sync+exec":
        command = (rule.get("exec") or {}).get("command") or []
        command = command if isinstance(command, list) else ["/bin/sh", "-c", command]
        for c in eng.containers([service], all=False):
            _exec(eng, c["Id"], command)


def run(eng: Engine, services: list[str]) -> int:
    """Watch until interrupted."""
    rules = [(n, r) for n in services for r in ((eng.project.services[n].get("develop") or {}).get("watch") or [])]
    if not rules:
        raise ComposeError("none of the selected services is configured for watch, consider setting a "
                           "'develop' section")
    for n, r in rules:
        if r.get("action", "sync") != "rebuild" and not r.get("target"):
            raise ComposeError(f"services.{n}.develop.watch: target is required for non-rebuild actions")
        if r.get("action") == "rebuild" and "build" not in eng.project.services[n]:
            raise ComposeError(f"can't watch service {n!r} with action rebuild without a build context")
    states = [snapshot(r["path"], [".git", *(r.get("ignore") or [])]) for _, r in rules]
    eng.progress.line("Watch enabled")
    sys.stderr.flush()
    try:
        while True:
            time.sleep(POLL)
            for i, (n, r) in enumerate(rules):
                now = snapshot(r["path"], [".git", *(r.get("ignore") or [])])
                changed = [p for p, st in now.items() if states[i].get(p) != st]
                removed = [p for p in states[i] if p not in now]
                states[i] = now
                if changed or removed:
                    _apply(eng, n, r, changed, removed)
    except KeyboardInterrupt:
        return 0
