"""Incremental contexts (dockyard's CLI ↔ dockyardd): the daemon keeps the last context of each
client directory; the client sends a manifest (path, type, size, mtime, mode, link) and then only
the files whose metadata changed, as BuildKit's file sync does. Unchanged files keep the sha256
computed when they arrived, so a no-change rebuild reads no file data."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from dockyard.build.context import ContextError, extract

_SESSION = re.compile(r"^[0-9a-f]{16,64}$")
MAX_PENDING = 64


class ContextStore:
    """Per-session mirrors under root: `<session>/files` and `<session>/index.json`."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._pending: dict[str, list[list[Any]]] = {}  # "<session>.<token>" → the build's manifest

    def _dir(self, session: str) -> str:
        if not _SESSION.match(session):
            raise ContextError(f"invalid context session {session!r}")
        return os.path.join(self.root, session)

    def _lock(self, session: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(session, threading.Lock())

    def _index(self, session: str) -> dict[str, list[Any]]:
        try:
            with open(os.path.join(self._dir(session), "index.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def need(self, session: str, entries: list[list[Any]]) -> tuple[str, list[str]]:
        """Record the manifest of a coming build: (its reference for the build request, the
        paths whose data must be sent)."""
        index = self._index(session)
        ref = f"{session}.{uuid.uuid4().hex}"
        with self._guard:
            self._pending[ref] = entries
            while len(self._pending) > MAX_PENDING:  # manifests of builds that never came
                self._pending.pop(next(iter(self._pending)))
        need = []
        for entry in entries:
            old = index.get(entry[0])
            if entry[1] == "f" and (old is None or old[:5] != entry[1:6]):
                need.append(entry[0])
        return ref, need

    @contextmanager
    def use(self, ref: str, body: IO[bytes]) -> Iterator[tuple[str, dict[str, str]]]:
        """Apply the sent files to the session's mirror and hold it for one build (ref: what
        need() answered): (context directory, sha256 of every file)."""
        session = ref.partition(".")[0]
        with self._guard:
            entries = self._pending.pop(ref, None)
        if entries is None:
            raise ContextError("no context manifest was sent for this build")
        with self._lock(session):
            base = self._dir(session)
            files = os.path.join(base, "files")
            os.makedirs(files, mode=0o700, exist_ok=True)
            index = self._index(session)
            unchanged = len(index) == len(entries) and all(
                e[3] != -1 and index.get(e[0], [])[:5] == e[1:6] for e in entries)
            if not unchanged:  # a mirror without its index is rebuilt from scratch next time
                try:
                    os.unlink(os.path.join(base, "index.json"))
                except FileNotFoundError:
                    pass
                _prune(files, {e[0]: e[1] for e in entries})
            digests: dict[str, str] = {}
            extract(body, files, digests=digests)
            if unchanged and not digests:  # a rebuild of the same directory: nothing to apply
                yield files, {k: v[5] for k, v in index.items() if v[0] == "f"}
                return
            new_index: dict[str, list[Any]] = {}
            for rel, kind, size, mtime_ns, mode, link in entries:
                host = os.path.join(files, rel)
                if kind == "d":
                    os.makedirs(host, exist_ok=True)
                    os.chmod(host, mode)
                elif kind == "l" and not (os.path.islink(host) and os.readlink(host) == link):
                    _replace_with_link(host, link)
                digest = digests.get(rel) or (index.get(rel) or [None] * 6)[5]
                if kind == "f" and (digest is None or not os.path.isfile(host)):
                    raise ContextError(f"context file {rel} was neither sent nor known")
                new_index[rel] = [kind, size, mtime_ns, mode, link, digest]
            with open(os.path.join(base, "index.json.tmp"), "w") as f:
                json.dump(new_index, f)
            os.replace(os.path.join(base, "index.json.tmp"), os.path.join(base, "index.json"))
            yield files, {k: v[5] for k, v in new_index.items() if v[0] == "f"}

    def prune(self) -> int:
        """Remove every session mirror; bytes freed."""
        freed = 0
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            lock = self._lock(name)
            with lock:
                for dirpath, _dirs, names in os.walk(path):
                    for n in names:
                        try:
                            freed += os.lstat(os.path.join(dirpath, n)).st_size
                        except OSError:
                            pass
                shutil.rmtree(path, ignore_errors=True)
        return freed


def _replace_with_link(host: str, link: str) -> None:
    if os.path.lexists(host):
        if os.path.isdir(host) and not os.path.islink(host):
            shutil.rmtree(host)
        else:
            os.unlink(host)
    os.makedirs(os.path.dirname(host), exist_ok=True)
    os.symlink(link, host)


def _kind(path: str) -> str:
    mode = os.lstat(path).st_mode
    return "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "f"


def _prune(files: str, keep: dict[str, str]) -> None:
    """Delete what the new manifest no longer lists, or lists with another type (deepest
    first, never following links)."""
    for dirpath, dirs, names in os.walk(files, topdown=False):
        rel_dir = os.path.relpath(dirpath, files)
        for name in names + dirs:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = os.path.join(dirpath, name)
            if not os.path.lexists(path):
                continue
            kind = _kind(path)
            if keep.get(rel) == kind:
                continue
            if kind == "d":
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
