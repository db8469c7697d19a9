"""The snapshotter model (containerd's): snapshots, their metadata, and the rules every
implementation shares.

A snapshot is "active" (writable, from prepare), "view" (read-only, from view) or "committed"
(immutable, from commit of an active one; the only kind that can be a parent). Keys and
committed names share one namespace.

On disk, under root:
  metadata.db        SQLite (WAL): one row per snapshot (id, key, kind, parent, created,
                     labels as JSON, usage of committed ones), the driver that owns the root
  snapshots/<id>/    one directory per snapshot (fs/, plus what the implementation needs)
  tmp/               directories being built or being deleted
A snapshot's directory is built in tmp/ and renamed to snapshots/<id> inside the transaction
that inserts its row; a removal deletes the row first and the directory after. So a crash
leaves at worst a directory without a row (in snapshots/ or tmp/), which cleanup() deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from dockyard.image.snapshot.mount import Mount, mounts_under, unmount

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
    parent_id INTEGER REFERENCES snapshots(id),
    created REAL NOT NULL,
    labels TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    inodes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_SELECT = ("SELECT s.id, s.key, s.kind, p.key, s.created, s.labels, s.size, s.inodes "
           "FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id")
_CHAIN = ("WITH RECURSIVE chain(id, parent_id, depth) AS ("
          " SELECT id, parent_id, 0 FROM snapshots WHERE id = ?"
          " UNION ALL SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id)"
          " SELECT id FROM chain WHERE depth > 0 ORDER BY depth")


class SnapshotError(Exception):
    """A snapshot operation the current state does not allow; the message says why."""


class NotFound(SnapshotError):
    """No snapshot has that key."""


class AlreadyExists(SnapshotError):
    """A snapshot with that key or name already exists."""


@dataclass(frozen=True)
class Info:
    """What stat() and walk() report about a snapshot (created: seconds since the epoch)."""

    key: str
    kind: str
    parent: str | None
    created: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """A snapshot as the implementations see it: its id and parent chain (nearest first)."""

    id: int
    info: Info
    parent_ids: list[int]
    size: int
    inodes: int

    @property
    def kind(self) -> str:
        return self.info.kind


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    # WAL with NORMAL, as the image metadata: a killed process loses no commit (only a power loss
    # may lose the last ones), and a commit costs no fsync
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def recorded_driver(root: str) -> str | None:
    """The snapshotter that owns root ("overlay", "vfs"), or None for a new root."""
    path = os.path.join(root, "metadata.db")
    if not os.path.exists(path):
        return None
    conn = _connect(path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'driver'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return row[0] if row else None


def _check_labels(labels: dict | None) -> dict[str, str]:
    labels = dict(labels or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise SnapshotError(f"labels must map strings to strings: {labels!r}")
    return labels


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: str) -> None:
    """Delete path (file or tree), unmounting first anything mounted inside it."""
    for point in reversed(mounts_under(path)):
        unmount(point)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def disk_usage(path: str) -> tuple[int, int]:
    """(bytes allocated, inodes) of the tree at path, path itself included, hard links once."""
    seen: set[tuple[int, int]] = set()
    size = 0
    stack = [path]
    while stack:
        current = stack.pop()
        st = os.lstat(current)
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        size += st.st_blocks * 512
        if os.path.isdir(current) and not os.path.islink(current):
            stack.extend(os.path.join(current, name) for name in os.listdir(current))
    return size, len(seen)


class Snapshotter(ABC):
    """Snapshots under one root directory; safe to use from several threads and processes."""

    driver = ""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._snapshots = os.path.join(self.root, "snapshots")
        self._tmp = os.path.join(self.root, "tmp")
        self._db_path = os.path.join(self.root, "metadata.db")
        self._local = threading.local()
        for path in (self.root, self._snapshots, self._tmp):
            os.makedirs(path, mode=0o700, exist_ok=True)
        conn = _connect(self._db_path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('driver', ?)", (self.driver,))
            owner = conn.execute("SELECT value FROM meta WHERE name = 'driver'").fetchone()[0]
        finally:
            conn.close()
        if owner != self.driver:
            raise SnapshotError(f"{self.root} holds {owner} snapshots, not {self.driver}")

    # -- the interface -------------------------------------------------------------------

    def prepare(self, key: str, parent: str | None = None, labels: dict | None = None) -> list[Mount]:
        """Create an active (writable) snapshot on top of the committed parent; its mounts."""
        return self._create("active", key, parent, labels)

    def view(self, key: str, parent: str | None = None, labels: dict | None = None) -> list[Mount]:
        """Create a read-only view of the committed parent; its mounts."""
        return self._create("view", key, parent, labels)

    def commit(self, name: str, key: str, labels: dict | None = None) -> None:
        """Turn the active snapshot key into the committed snapshot name (labels replace the
        active snapshot's, as containerd does); key no longer exists afterwards."""
        labels = _check_labels(labels)
        with self._db() as db:
            rec = self._committable(db, name, key)
        size, inodes = disk_usage(self._fs(rec.id))
        with self._db(write=True) as db:
            if self._committable(db, name, key).id != rec.id:
                raise NotFound(f"snapshot {key!r} was replaced during the commit")
            db.execute("UPDATE snapshots SET key = ?, kind = 'committed', labels = ?, created = ?, size = ?, "
                       "inodes = ? WHERE id = ?", (name, json.dumps(labels), time.time(), size, inodes, rec.id))

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or view."""
        with self._db() as db:
            rec = self._get(db, key)
        if rec.kind == "committed":
            raise SnapshotError(f"snapshot {key!r} is committed: prepare or view a child of it to mount it")
        return self._mounts(rec)

    def stat(self, key: str) -> Info:
        """The snapshot's Info."""
        with self._db() as db:
            return self._get(db, key).info

    def walk(self) -> Iterator[Info]:
        """Every snapshot, oldest first."""
        with self._db() as db:
            infos = [_info(row) for row in db.execute(_SELECT + " ORDER BY s.id")]
        yield from infos

    def remove(self, key: str) -> None:
        """Delete the snapshot and its directory; no error if it does not exist. Refused while
        other snapshots have it as their parent."""
        with self._db(write=True) as db:
            rec = self._find(db, key)
            if rec is None:
                return
            children = [r[0] for r in db.execute("SELECT key FROM snapshots WHERE parent_id = ? ORDER BY id",
                                                 (rec.id,))]
            if children:
                raise SnapshotError(f"cannot remove snapshot {key!r}: it is the parent of {', '.join(children)}")
            db.execute("DELETE FROM snapshots WHERE id = ?", (rec.id,))
        trash = os.path.join(self._tmp, f"rm-{rec.id}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(self._dir(rec.id), trash)
        remove_tree(trash)

    def usage(self, key: str) -> tuple[int, int]:
        """(bytes, inodes) of the snapshot's own layer: measured now for active snapshots and
        views, recorded at commit for committed ones."""
        with self._db() as db:
            rec = self._get(db, key)
        if rec.kind == "committed":
            return rec.size, rec.inodes
        return disk_usage(self._fs(rec.id))

    def layer_dir(self, key: str) -> str:
        """The directory holding the snapshot's own layer (where a layer is applied to an active
        snapshot; the layer to diff or export for a committed one)."""
        with self._db() as db:
            rec = self._get(db, key)
        if rec.kind == "view":
            raise SnapshotError(f"snapshot {key!r} is a view: it has no layer of its own")
        return self._fs(rec.id)

    @abstractmethod
    def diff_mode(self) -> str:
        """"overlay": layer_dir holds only the changes, with overlay whiteouts; "compare": it holds
        the full tree, to compare with parent_dir."""

    @abstractmethod
    def parent_dir(self, key: str) -> str | None:
        """The parent's full tree for "compare" diffs (None without a parent or in "overlay" mode)."""

    def cleanup(self) -> None:
        """Crash repair, at start-up before other use: delete directories that have no
        metadata (a crash before the row was committed, or after it was deleted) and tmp/."""
        with self._db(write=True) as db:
            known = {str(row[0]) for row in db.execute("SELECT id FROM snapshots")}
            for entry in os.scandir(self._snapshots):
                if entry.name not in known:
                    remove_tree(entry.path)
        for entry in os.scandir(self._tmp):
            remove_tree(entry.path)

    # -- for the implementations ----------------------------------------------------------

    @abstractmethod
    def _mounts(self, rec: Record) -> list[Mount]:
        """The mounts of an active snapshot or view."""

    @abstractmethod
    def _populate(self, path: str, kind: str, parent: Record | None) -> None:
        """Fill a new snapshot's directory (fs/ exists) before it is published."""

    def _dir(self, snapshot_id: int) -> str:
        return os.path.join(self._snapshots, str(snapshot_id))

    def _fs(self, snapshot_id: int) -> str:
        return os.path.join(self._snapshots, str(snapshot_id), "fs")

    # -- internals ------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection to the database (opened once per thread and process: a
        connection is never used across a fork)."""
        local = self._local
        if getattr(local, "pid", 0) != os.getpid():
            local.conn = _connect(self._db_path)
            local.pid = os.getpid()
        return local.conn

    @contextlib.contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A transaction: a consistent read, or (write) one holding the database's write lock."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _find(self, db: sqlite3.Connection, key: str) -> Record | None:
        row = db.execute(_SELECT + " WHERE s.key = ?", (key,)).fetchone()
        if row is None:
            return None
        chain = [r[0] for r in db.execute(_CHAIN, (row[0],))]
        return Record(row[0], _info(row), chain, row[6], row[7])

    def _get(self, db: sqlite3.Connection, key: str) -> Record:
        rec = self._find(db, key)
        if rec is None:
            raise NotFound(f"snapshot {key!r} does not exist")
        return rec

    def _parent(self, db: sqlite3.Connection, parent: str | None) -> Record | None:
        if parent is None:
            return None
        rec = self._find(db, parent)
        if rec is None:
            raise NotFound(f"parent snapshot {parent!r} does not exist")
        if rec.kind != "committed":
            raise SnapshotError(f"parent snapshot {parent!r} is not committed")
        return rec

    def _committable(self, db: sqlite3.Connection, name: str, key: str) -> Record:
        if self._find(db, name) is not None:
            raise AlreadyExists(f"snapshot {name!r} already exists")
        rec = self._get(db, key)
        if rec.kind != "active":
            raise SnapshotError(f"snapshot {key!r} is not active (it is {rec.kind})")
        return rec

    def _create(self, kind: str, key: str, parent: str | None, labels: dict | None) -> list[Mount]:
        labels = _check_labels(labels)
        if not isinstance(key, str) or not key:
            raise SnapshotError(f"invalid snapshot key {key!r}")
        with self._db() as db:
            if self._find(db, key) is not None:
                raise AlreadyExists(f"snapshot {key!r} already exists")
            parent_rec = self._parent(db, parent)
        tmp = tempfile.mkdtemp(prefix="new-", dir=self._tmp)
        published = ""
        try:
            os.chmod(tmp, 0o700)
            os.mkdir(os.path.join(tmp, "fs"), 0o755)
            self._populate(tmp, kind, parent_rec)
            with self._db(write=True) as db:
                if self._find(db, key) is not None:
                    raise AlreadyExists(f"snapshot {key!r} already exists")
                again = self._parent(db, parent)
                if again is not None and parent_rec is not None and again.id != parent_rec.id:
                    raise NotFound(f"parent snapshot {parent!r} was replaced")
                cur = db.execute("INSERT INTO snapshots (key, kind, parent_id, created, labels) VALUES (?, ?, ?, ?, ?)",
                                 (key, kind, parent_rec.id if parent_rec else None, time.time(), json.dumps(labels)))
                published = self._dir(cur.lastrowid)
                if os.path.lexists(published):  # a crash between a rename and its insert's commit
                    remove_tree(published)
                os.rename(tmp, published)
                tmp = ""
                _fsync_dir(self._snapshots)
                rec = self._get(db, key)
        except BaseException:
            remove_tree(tmp or published)
            raise
        return self._mounts(rec)


def _info(row: tuple) -> Info:
    return Info(key=row[1], kind=row[2], parent=row[3], created=row[4], labels=json.loads(row[5]))
