"""Container records: SQLite (WAL) at <data-root>/containers.db, one transaction per change, and a
config.v2.json copy in each container's directory (for humans and disaster recovery)."""

from __future__ import annotations

import json
import os
from typing import Any

from dockyard.engine.containers.errors import Conflict, InvalidParameter, no_such_container
from dockyard.engine.containers.etcfiles import write_atomic
from dockyard.engine.containers.names import check_name, random_name
from dockyard.engine.sqlitestore import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    record TEXT NOT NULL
);
"""
Record = dict[str, Any]


class ContainerStore(SqliteStore):
    """Persistent container records keyed by ID, with unique names."""

    def __init__(self, data_root: str) -> None:
        self.data_root = data_root
        self.containers_dir = os.path.join(data_root, "containers")
        os.makedirs(self.containers_dir, mode=0o710, exist_ok=True)
        super().__init__(os.path.join(data_root, "containers.db"), _SCHEMA)



    def directory(self, cid: str) -> str:
        """<data-root>/containers/<id>."""
        return os.path.join(self.containers_dir, cid)

    def _write_copy(self, record: Record) -> None:
        directory = self.directory(record["ID"])
        if os.path.isdir(directory):
            write_atomic(os.path.join(directory, "config.v2.json"), json.dumps(record), 0o600)

    def add(self, record: Record, name: str | None) -> Record:
        """Insert a new record under name (a generated one when None); set record["Name"]."""
        with self.tx() as db:
            if name is not None:
                name = check_name(name)
                row = db.execute("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
                if row:
                    raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                                   f'"{row[0]}". You have to remove (or rename) that container to be able to '
                                   "reuse that name.")
            else:
                for attempt in range(100):
                    name = random_name(attempt // 10)
                    if not db.execute("SELECT 1 FROM containers WHERE name = ?", (name,)).fetchone():
                        break
            record["Name"] = "/" + name
            db.execute("INSERT INTO containers (id, name, created, record) VALUES (?, ?, ?, ?)",
                       (record["ID"], name, record["Created"], json.dumps(record)))
        self._write_copy(record)
        return record

    def save(self, record: Record) -> None:
        """Store a changed record (its name is changed only through rename)."""
        with self.tx() as db:
            cur = db.execute("UPDATE containers SET record = ? WHERE id = ?", (json.dumps(record), record["ID"]))
            if cur.rowcount == 0:
                raise no_such_container(record["ID"])
        self._write_copy(record)

    def get(self, cid: str) -> Record:
        """The record of a full ID."""
        with self._lock:
            row = self._db.execute("SELECT record FROM containers WHERE id = ?", (cid,)).fetchone()
        if not row:
            raise no_such_container(cid)
        return json.loads(row[0])

    def resolve(self, ref: str) -> str:
        """Full ID of a container given by full ID, name (with or without "/") or unique ID prefix."""
        if not ref:
            raise no_such_container(ref)
        with self._lock:
            row = self._db.execute("SELECT id FROM containers WHERE id = ? OR name = ?",
                                   (ref, ref.lstrip("/"))).fetchone()
            if row:
                return row[0]
            if not all(c in "0123456789abcdef" for c in ref):
                raise no_such_container(ref)
            rows = self._db.execute("SELECT id FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                                    (ref, ref + "g")).fetchall()
        if len(rows) > 1:
            raise InvalidParameter(f"Multiple IDs found with provided prefix: {ref}")
        if not rows:
            raise no_such_container(ref)
        return rows[0][0]

    def rename(self, cid: str, new_name: str) -> Record:
        """Give a container a new unique name."""
        new_name = check_name(new_name)
        with self.tx() as db:
            row = db.execute("SELECT record, name FROM containers WHERE id = ?", (cid,)).fetchone()
            if not row:
                raise no_such_container(cid)
            if row[1] == new_name:
                raise InvalidParameter("Renaming a container with the same name as its current name")
            other = db.execute("SELECT id FROM containers WHERE name = ?", (new_name,)).fetchone()
            if other:  # dockerd's rename wraps the name reservation's error
                raise Conflict(f'Error when allocating new name: Conflict. The container name "/{new_name}" is '
                               'already in use by container '
                               f'"{other[0]}". You have to remove (or rename) that container to be able to '
                               "reuse that name.")
            record = json.loads(row[0])
            record["Name"] = "/" + new_name
            db.execute("UPDATE containers SET name = ?, record = ? WHERE id = ?",
                       (new_name, json.dumps(record), cid))
        self._write_copy(record)
        return record

    def delete(self, cid: str) -> None:
        """Forget a container."""
        with self.tx() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def mentioning(self, text: str) -> list[Record]:
        """The records whose JSON contains text (e.g. another container's ID), newest first."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM containers WHERE instr(record, ?) > 0 ORDER BY created DESC",
                                    (text,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def all(self) -> list[Record]:
        """Every record, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM containers ORDER BY created DESC").fetchall()
        return [json.loads(r[0]) for r in rows]
