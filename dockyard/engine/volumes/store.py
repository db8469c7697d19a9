"""Volume records: SQLite (WAL) at <data-root>/volumes/metadata.db plus one directory per volume,
<data-root>/volumes/<name>/_data.

Every change is one transaction and the directory work happens inside it, so a kill -9 leaves at
worst a directory without a record (created, not committed), or a removal parked as
`.removing-<name>` (renamed, not committed); `repair()` settles both at start. Container
references (`refs`) and mounts of driver-option volumes (`active`) are rows too: a removal checks
the references in the same transaction that deletes, so it cannot race a container create."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from typing import Any

from dockyard.engine.containers.errors import Conflict, NotFound
from dockyard.engine.sqlitestore import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    created REAL NOT NULL,
    labels TEXT NOT NULL,
    options TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    volume TEXT NOT NULL,
    container TEXT NOT NULL,
    PRIMARY KEY (volume, container)
);
CREATE TABLE IF NOT EXISTS active (
    volume TEXT NOT NULL,
    holder TEXT NOT NULL,
    PRIMARY KEY (volume, holder)
);
"""
TRASH_PREFIX = ".removing-"
Volume = dict[str, Any]  # name, driver, created (epoch seconds), labels, options (None when not given)


class VolumeStore(SqliteStore):
    """Persistent volumes, their container references and active mounts."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, mode=0o701, exist_ok=True)
        super().__init__(os.path.join(root, "metadata.db"), _SCHEMA)



    def path(self, name: str) -> str:
        """<root>/<name>/_data, the volume's mountpoint."""
        return os.path.join(self.root, name, "_data")

    # -- volumes ----------------------------------------------------------------------------------

    @staticmethod
    def _volume(row: tuple[Any, ...]) -> Volume:
        return {"name": row[0], "driver": row[1], "created": row[2], "labels": json.loads(row[3]),
                "options": json.loads(row[4])}

    def create(self, name: str, labels: dict[str, str] | None, options: dict[str, str] | None,
               ref: str | None = None) -> tuple[Volume, bool]:
        """The volume called name, created (with its directory) if missing; (volume, created).
        ref, a container ID, is recorded as a reference in the same transaction."""
        with self.tx() as db:
            row = db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
            created = row is None
            os.makedirs(os.path.join(self.root, name), mode=0o701, exist_ok=True)
            os.makedirs(self.path(name), mode=0o755, exist_ok=True)  # (again, if someone deleted it)
            if created:
                row = (name, "local", time.time(), json.dumps(labels), json.dumps(options))
                db.execute("INSERT INTO volumes VALUES (?, ?, ?, ?, ?)", row)
            if ref is not None:
                db.execute("INSERT OR IGNORE INTO refs VALUES (?, ?)", (name, ref))
        return self._volume(row), created

    def get(self, name: str) -> Volume:
        """A volume by name; NotFound with Docker's text."""
        with self._lock:
            row = self._db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return self._volume(row)

    def all(self) -> list[Volume]:
        """Every volume, by name."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM volumes ORDER BY name").fetchall()
        return [self._volume(r) for r in rows]

    def remove(self, name: str) -> None:
        """Delete a volume nobody references: the record and, once committed, its directory.
        Conflict (Docker's text) when containers still reference it."""
        trash = os.path.join(self.root, TRASH_PREFIX + name)
        with self.tx() as db:
            if db.execute("SELECT 1 FROM volumes WHERE name = ?", (name,)).fetchone() is None:
                raise NotFound(f"get {name}: no such volume")
            users = [r[0] for r in db.execute("SELECT container FROM refs WHERE volume = ? ORDER BY container",
                                              (name,))]
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            db.execute("DELETE FROM volumes WHERE name = ?", (name,))
            db.execute("DELETE FROM active WHERE volume = ?", (name,))
            if os.path.lexists(os.path.join(self.root, name)):
                os.rename(os.path.join(self.root, name), trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- references and active mounts ---------------------------------------------------------------

    def add_ref(self, name: str, container: str) -> Volume:
        """Record that container uses the existing volume name."""
        with self.tx() as db:
            row = db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"get {name}: no such volume")
            db.execute("INSERT OR IGNORE INTO refs VALUES (?, ?)", (name, container))
        return self._volume(row)

    def release(self, container: str) -> list[str]:
        """Drop every reference of container; the volumes it referenced."""
        with self.tx() as db:
            names = [r[0] for r in db.execute("SELECT volume FROM refs WHERE container = ?", (container,))]
            db.execute("DELETE FROM refs WHERE container = ?", (container,))
        return names

    def ref_counts(self) -> dict[str, int]:
        """{volume: number of containers referencing it} for referenced volumes."""
        with self._lock:
            return dict(self._db.execute("SELECT volume, COUNT(*) FROM refs GROUP BY volume").fetchall())

    def holders(self, db: sqlite3.Connection, name: str) -> int:
        """How many holders have the volume mounted (inside a transaction)."""
        return int(db.execute("SELECT COUNT(*) FROM active WHERE volume = ?", (name,)).fetchone()[0])

    # -- start-up repair --------------------------------------------------------------------------

    def repair(self, containers: set[str]) -> None:
        """Settle what a kill -9 left: a parked removal is finished (or undone if its record
        survived); a directory without a record is adopted if it holds data, else removed; a
        record without a directory gets an empty one; references of containers that no longer
        exist are dropped."""
        with self.tx() as db:
            names = {r[0] for r in db.execute("SELECT name FROM volumes")}
            for entry in os.listdir(self.root):
                path = os.path.join(self.root, entry)
                if entry.startswith(TRASH_PREFIX):
                    name = entry[len(TRASH_PREFIX):]
                    if name in names and not os.path.lexists(os.path.join(self.root, name)):
                        os.rename(path, os.path.join(self.root, name))
                    else:
                        shutil.rmtree(path, ignore_errors=True)
                elif os.path.isdir(path) and entry not in names:
                    data = self.path(entry)
                    if os.path.isdir(data) and os.listdir(data):
                        db.execute("INSERT INTO volumes VALUES (?, 'local', ?, 'null', 'null')",
                                   (entry, os.stat(path).st_ctime))
                    else:
                        shutil.rmtree(path, ignore_errors=True)
            for name in names:
                os.makedirs(self.path(name), mode=0o755, exist_ok=True)
            for (container,) in db.execute("SELECT DISTINCT container FROM refs").fetchall():
                if container not in containers:
                    db.execute("DELETE FROM refs WHERE container = ?", (container,))
