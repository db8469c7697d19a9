"""The build cache: step key → image, persisted in SQLite, with the inputs of each step's last
build kept so a miss can say what changed."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable


class BuildCache:
    """Cache records under root (cache.db) and the directories of RUN cache mounts."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(os.path.join(root, "mounts"), mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._mount_locks: dict[str, threading.Lock] = {}
        self._private: set[str] = set()
        self._db = sqlite3.connect(os.path.join(root, "cache.db"), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses at most the last records
        self._db.execute("CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY, image TEXT NOT NULL,"
                         " created REAL NOT NULL, used REAL NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS inputs (slot TEXT PRIMARY KEY, detail TEXT NOT NULL)")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def get(self, key: str) -> str | None:
        """The image recorded for key, if any."""
        with self._lock:
            row = self._db.execute("SELECT image FROM steps WHERE key=?", (key,)).fetchone()
            if row:
                self._db.execute("UPDATE steps SET used=? WHERE key=?", (time.time(), key))
        return row[0] if row else None

    def put(self, key: str, image: str, slot: str, detail: dict) -> None:
        """Record key → image, and detail as the latest inputs of slot (a stage step)."""
        now = time.time()
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?)", (key, image, now, now))
            self._db.execute("INSERT OR REPLACE INTO inputs VALUES (?, ?)", (slot, json.dumps(detail)))

    def drop(self, key: str) -> None:
        """Forget key (its image is gone)."""
        with self._lock:
            self._db.execute("DELETE FROM steps WHERE key=?", (key,))

    def previous(self, slot: str) -> dict | None:
        """The inputs slot had when it was last built."""
        with self._lock:
            row = self._db.execute("SELECT detail FROM inputs WHERE slot=?", (slot,)).fetchone()
        return json.loads(row[0]) if row else None

    def mount_dir(self, mount_id: str, owner: tuple[int, int, int] = (0, 0, 0o755)) -> str:
        """The persistent directory of a RUN --mount=type=cache id (created with owner:
        uid, gid, mode)."""
        safe = mount_id.replace("/", "%2F").replace("\0", "") or "default"
        path = os.path.join(self.root, "mounts", safe)
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            os.chown(path, owner[0], owner[1])
            os.chmod(path, owner[2])
        return path

    def acquire(self, mount_id: str, sharing: str, owner: tuple[int, int, int]) -> tuple[str, Callable[[], None]]:
        """A cache mount's directory for one RUN and its release: `shared` lets concurrent RUNs
        use it together, `locked` makes them wait their turn, `private` gives a busy id's
        other users a directory of their own (removed after)."""
        path = self.mount_dir(mount_id, owner)
        if sharing == "locked":
            with self._lock:
                lock = self._mount_locks.setdefault(mount_id, threading.Lock())
            lock.acquire()
            return path, lock.release
        if sharing == "private":
            with self._lock:
                busy = mount_id in self._private
                if not busy:
                    self._private.add(mount_id)
            if not busy:
                return path, lambda: self._private.discard(mount_id)
            extra = tempfile.mkdtemp(prefix="private-", dir=os.path.join(self.root, "mounts"))
            os.chown(extra, owner[0], owner[1])
            os.chmod(extra, owner[2])
            return extra, lambda: shutil.rmtree(extra, ignore_errors=True)
        return path, lambda: None

    def records(self) -> list[tuple[str, str, float, float]]:
        """(key, image, created, last used) of every step."""
        with self._lock:
            return list(self._db.execute("SELECT key, image, created, used FROM steps"))

    def prune(self, keep: set[str] | None = None) -> tuple[list[str], int]:
        """Remove every step record (except those whose key is in keep) and the cache mounts;
        (removed keys, bytes freed by the mounts)."""
        with self._lock:
            keys = [k for (k,) in self._db.execute("SELECT key FROM steps") if not keep or k not in keep]
            self._db.executemany("DELETE FROM steps WHERE key=?", [(k,) for k in keys])
            self._db.execute("DELETE FROM inputs")
        freed = 0
        mounts = os.path.join(self.root, "mounts")
        for name in os.listdir(mounts):
            path = os.path.join(mounts, name)
            for dirpath, _dirs, files in os.walk(path):
                for f in files:
                    try:
                        freed += os.lstat(os.path.join(dirpath, f)).st_size
                    except OSError:
                        pass
            shutil.rmtree(path, ignore_errors=True)
        return keys, freed


def explain(previous: dict | None, current: dict) -> str:
    """Why a step missed the cache, comparing its inputs with the last build's."""
    if previous is None:
        return "no earlier build of this step"
    if previous.get("parent") != current.get("parent"):
        return "the previous step changed"
    if previous.get("instruction") != current.get("instruction"):
        return "the instruction changed"
    old_args, new_args = previous.get("args", {}), current.get("args", {})
    changed = sorted(k for k in set(old_args) | set(new_args) if old_args.get(k) != new_args.get(k))
    if changed:
        return "build arg " + ", ".join(changed) + " changed"
    old_files, new_files = previous.get("files", {}), current.get("files", {})
    for name in sorted(set(old_files) | set(new_files)):
        if name not in old_files:
            return f"file {name} was added"
        if name not in new_files:
            return f"file {name} was removed"
        if old_files[name] != new_files[name]:
            return f"file {name} changed"
    if previous.get("source") != current.get("source"):
        return "the source stage changed"
    return "the cached image is gone"
