"""The image metadata database: images, names (tags and repo digests), blob references, leases.

SQLite in WAL mode with ``synchronous=NORMAL``, a busy timeout and foreign keys on, so several
processes (and threads: one connection per thread) can use one file at once. Every public
method that changes more than one row runs in one transaction; ``transaction()`` groups several
calls. The schema is versioned: ``schema_version`` holds the number of MIGRATIONS applied.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dockyard.image import digest as digests

BUSY_TIMEOUT = 30.0  # seconds a statement waits for another process's write lock
LEASE_KINDS = ("content", "snapshot", "ingest")

# MIGRATIONS[i] takes the schema from version i to version i + 1; append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE images (
            id TEXT PRIMARY KEY,
            target_media_type TEXT NOT NULL,
            target_digest TEXT NOT NULL,
            target_size INTEGER NOT NULL,
            created TEXT,
            last_tag_time TEXT,
            labels TEXT NOT NULL DEFAULT '{}')""",
        """CREATE TABLE names (
            name TEXT PRIMARY KEY,
            image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')))""",
        "CREATE INDEX names_by_image ON names(image_id)",
        """CREATE TABLE refs (
            parent TEXT NOT NULL,
            child TEXT NOT NULL,
            PRIMARY KEY (parent, child)) WITHOUT ROWID""",
        """CREATE TABLE leases (
            id TEXT PRIMARY KEY,
            created TEXT NOT NULL,
            expires REAL,
            labels TEXT NOT NULL DEFAULT '{}')""",
        """CREATE TABLE lease_resources (
            lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('content', 'snapshot', 'ingest')),
            key TEXT NOT NULL,
            PRIMARY KEY (lease_id, kind, key)) WITHOUT ROWID""",
    ),
)


class UnknownImage(LookupError):
    """No image with this ID."""


class UnknownLease(LookupError):
    """No live lease with this ID."""


class LeaseExists(ValueError):
    """A lease with this ID already exists."""


class AmbiguousPrefix(LookupError):
    """An image ID prefix that matches more than one image."""


class SchemaTooNew(RuntimeError):
    """The database was written by a newer dockyard."""


@dataclass(frozen=True)
class Target:
    """The manifest or index an image was stored from."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class ImageRecord:
    """One image: its ID is its config digest."""

    id: str
    target: Target
    created: str | None = None
    last_tag_time: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Lease:
    """A lease and the resources it protects from garbage collection, as (kind, key) pairs."""

    id: str
    created: str
    expires: float | None
    labels: dict[str, str]
    resources: tuple[tuple[str, str], ...]


def now_rfc3339() -> str:
    """The current UTC time as an RFC 3339 string with microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_labels(labels: dict[str, str] | None) -> str:
    labels = labels or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ValueError("labels must map strings to strings")
    return json.dumps(labels, sort_keys=True)


def _check_tag(name: str) -> str:
    """A normalised tagged reference: name:tag, no digest."""
    if "@" in name or ":" not in name.rpartition("/")[2]:
        raise ValueError(f"invalid tag reference {name!r}: expected repository:tag")
    return name


def _check_repo_digest(name: str) -> str:
    """A normalised digested reference: repository@digest, no tag."""
    repo, sep, dgst = name.partition("@")
    if not sep or not repo or ":" in repo.rpartition("/")[2]:
        raise ValueError(f"invalid digest reference {name!r}: expected repository@digest")
    digests.validate(dgst)
    return name


class MetadataStore:
    """The metadata database at ``path`` (created and migrated on first use)."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._pid = os.getpid()
        self._migrate()

    # -- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked child: the parent's connections are not ours
            self._pid, self._local, self._connections = os.getpid(), threading.local(), []
        local = self._local
        if getattr(local, "conn", None) is None:  # first use on this thread
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            local.conn, local.depth, local.writing = conn, 0, False
            with self._connections_lock:
                self._connections.append(conn)
        return local.conn

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction on this thread's connection; nested calls become savepoints.

        A write transaction takes the database's write lock at once (BEGIN IMMEDIATE), so it
        never fails half-way for another writer; a read one sees a consistent snapshot and
        cannot contain writes."""
        conn = self._conn()
        local = self._local
        depth = local.depth
        if depth and write and not local.writing:
            raise RuntimeError("a write cannot be nested in a read transaction")
        savepoint = f"sp{depth}"
        conn.execute(f"SAVEPOINT {savepoint}" if depth else ("BEGIN IMMEDIATE" if write else "BEGIN"))
        if not depth:
            local.writing = write
        local.depth = depth + 1
        try:
            yield conn
        except BaseException:
            if depth:
                conn.execute(f"ROLLBACK TO {savepoint}")
                conn.execute(f"RELEASE {savepoint}")
            else:
                conn.execute("ROLLBACK")
            raise
        else:
            conn.execute(f"RELEASE {savepoint}" if depth else "COMMIT")
        finally:
            local.depth = depth
            if not depth and conn.in_transaction:  # COMMIT itself failed
                conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close every connection this object opened (no other thread may be using it)."""
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise SchemaTooNew(f"{self.path}: schema version {version} is newer than this "
                                   f"dockyard supports ({len(MIGRATIONS)})")
            for migration in MIGRATIONS[version:]:
                for statement in migration:
                    db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS),))

    def schema_version(self) -> int:
        """The schema version of the database."""
        return self._conn().execute("SELECT version FROM schema_version").fetchone()[0]

    # -- images --------------------------------------------------------------------------------

    def put_image(self, image_id: str, target: Target, created: str | None = None,
                  labels: dict[str, str] | None = None) -> None:
        """Add an image or replace its target, created time and labels (tags stay)."""
        digests.validate(image_id)
        digests.validate(target.digest)
        if not target.media_type or target.size < 0:
            raise ValueError(f"invalid image target {target!r}")
        with self.transaction() as db:
            db.execute(
                """INSERT INTO images (id, target_media_type, target_digest, target_size, created, labels)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET target_media_type = excluded.target_media_type,
                     target_digest = excluded.target_digest, target_size = excluded.target_size,
                     created = excluded.created, labels = excluded.labels""",
                (image_id, target.media_type, target.digest, target.size, created, _check_labels(labels)))

    def set_image_labels(self, image_id: str, labels: dict[str, str | None]) -> bool:
        """Set (or, with None, remove) labels of an image; False if it is gone."""
        with self.transaction() as db:
            row = db.execute("SELECT labels FROM images WHERE id = ?", (image_id,)).fetchone()
            if row is None:
                return False
            merged = {k: v for k, v in {**json.loads(row[0]), **labels}.items() if v is not None}
            db.execute("UPDATE images SET labels = ? WHERE id = ?", (_check_labels(merged), image_id))
        return True

    def get_image(self, image_id: str) -> ImageRecord | None:
        """The image with this full ID, or None."""
        row = self._conn().execute(f"{_IMAGE_SELECT} WHERE id = ?", (image_id,)).fetchone()
        return _image(row) if row else None

    def list_images(self) -> list[ImageRecord]:
        """Every image, ordered by ID."""
        return [_image(row) for row in self._conn().execute(f"{_IMAGE_SELECT} ORDER BY id")]

    def delete_image(self, image_id: str) -> bool:
        """Remove an image with its tags and repo digests; whether it existed."""
        with self.transaction() as db:
            return db.execute("DELETE FROM images WHERE id = ?", (image_id,)).rowcount > 0

    def images_by_prefix(self, prefix: str) -> str | None:
        """The one image whose ID starts with prefix (``sha256:`` optional, as in Docker's
        short IDs), or None. AmbiguousPrefix if several match."""
        term = prefix if ":" in prefix else f"sha256:{prefix}"
        algo, _, hexpart = term.partition(":")
        length = digests.ALGORITHMS.get(algo)
        if not length or not hexpart or len(hexpart) > length or hexpart.strip("0123456789abcdef"):
            return None
        # Every ID starting with term sorts in [term, term + "g"): hex digits sort below "g".
        rows = self._conn().execute("SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                                    (term, term + "g")).fetchall()
        if len(rows) > 1:
            raise AmbiguousPrefix(f"ambiguous image ID prefix {prefix!r}: it matches more than one image")
        return rows[0][0] if rows else None

    # -- names ---------------------------------------------------------------------------------

    def _set_name(self, db: sqlite3.Connection, name: str, image_id: str, kind: str) -> str | None:
        if db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
            raise UnknownImage(f"No such image: {image_id}")
        row = db.execute("SELECT image_id FROM names WHERE name = ?", (name,)).fetchone()
        db.execute("""INSERT INTO names (name, image_id, kind) VALUES (?, ?, ?)
                      ON CONFLICT (name) DO UPDATE SET image_id = excluded.image_id""",
                   (name, image_id, kind))
        return row[0] if row and row[0] != image_id else None

    def set_tag(self, name: str, image_id: str) -> str | None:
        """Point a tag ("docker.io/library/busybox:latest") at an image, moving it if it was
        elsewhere: returns the image it was taken from, else None. Sets the last tag time."""
        _check_tag(name)
        with self.transaction() as db:
            previous = self._set_name(db, name, image_id, "tag")
            db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (now_rfc3339(), image_id))
            return previous

    def add_repo_digest(self, name_at_digest: str, image_id: str) -> str | None:
        """Record "repository@sha256:..." for an image (moving it if another image had it);
        returns the image it was taken from, else None."""
        _check_repo_digest(name_at_digest)
        with self.transaction() as db:
            return self._set_name(db, name_at_digest, image_id, "digest")

    def remove_tag(self, name: str) -> str | None:
        """Remove a tag or repo digest; the image it pointed at, or None if there was none."""
        with self.transaction() as db:
            row = db.execute("DELETE FROM names WHERE name = ? RETURNING image_id", (name,)).fetchone()
            return row[0] if row else None

    def resolve_tag(self, name: str) -> str | None:
        """The image a tag (or repo digest) points at, or None."""
        row = self._conn().execute("SELECT image_id FROM names WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _names_of(self, image_id: str, kind: str) -> list[str]:
        rows = self._conn().execute("SELECT name FROM names WHERE image_id = ? AND kind = ? ORDER BY name",
                                    (image_id, kind))
        return [row[0] for row in rows]

    def tags_of(self, image_id: str) -> list[str]:
        """The image's tags, sorted."""
        return self._names_of(image_id, "tag")

    def tags_in(self, repository: str) -> list[tuple[str, str]]:
        """(tag, image ID) of every tag of a repository ("docker.io/library/busybox"), sorted."""
        prefix = f"{repository}:"
        rows = self._conn().execute("SELECT name, image_id FROM names WHERE kind = 'tag' AND substr(name, 1, ?) = ? "
                                    "ORDER BY name", (len(prefix), prefix))
        return [(name, image_id) for name, image_id in rows if "/" not in name[len(prefix):]]

    def repo_digests_of(self, image_id: str) -> list[str]:
        """The image's repo digests, sorted."""
        return self._names_of(image_id, "digest")

    # -- blob references -----------------------------------------------------------------------

    def set_refs(self, parent_digest: str, children: list[str]) -> None:
        """Record the blobs a blob references (replacing what was recorded)."""
        digests.validate(parent_digest)
        for child in children:
            digests.validate(child)
        with self.transaction() as db:
            db.execute("DELETE FROM refs WHERE parent = ?", (parent_digest,))
            db.executemany("INSERT OR IGNORE INTO refs (parent, child) VALUES (?, ?)",
                           [(parent_digest, child) for child in children])

    def refs_of(self, digest: str) -> list[str]:
        """The blobs recorded as referenced by this one, sorted."""
        rows = self._conn().execute("SELECT child FROM refs WHERE parent = ? ORDER BY child", (digest,))
        return [row[0] for row in rows]

    def clear_refs(self, parent_digest: str) -> None:
        """Forget what a (removed) blob referenced."""
        with self.transaction() as db:
            db.execute("DELETE FROM refs WHERE parent = ?", (parent_digest,))

    # -- leases --------------------------------------------------------------------------------

    def create_lease(self, lease_id: str | None = None, expires_in: float | None = None,
                     labels: dict[str, str] | None = None) -> str:
        """Create a lease (expiring after expires_in seconds, or never); returns its ID."""
        lease_id = lease_id if lease_id is not None else f"{int(time.time())}-{secrets.token_hex(8)}"
        if not lease_id:
            raise ValueError("lease ID must not be empty")
        expires = time.time() + expires_in if expires_in is not None else None
        with self.transaction() as db:
            try:
                db.execute("INSERT INTO leases (id, created, expires, labels) VALUES (?, ?, ?, ?)",
                           (lease_id, now_rfc3339(), expires, _check_labels(labels)))
            except sqlite3.IntegrityError:
                raise LeaseExists(f"lease {lease_id!r} already exists") from None
        return lease_id

    def add_lease_resource(self, lease_id: str, kind: str, key: str) -> None:
        """Protect a resource ("content": a digest, "snapshot": a key, "ingest": a ref) with a live lease."""
        if kind not in LEASE_KINDS:
            raise ValueError(f"invalid lease resource kind {kind!r}: expected one of {', '.join(LEASE_KINDS)}")
        if kind == "content":
            digests.validate(key)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM leases WHERE id = ? AND (expires IS NULL OR expires > ?)",
                          (lease_id, time.time())).fetchone() is None:
                raise UnknownLease(f"lease {lease_id!r} not found")
            db.execute("INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?, ?, ?)",
                       (lease_id, kind, key))

    def delete_lease(self, lease_id: str) -> bool:
        """Remove a lease and its resources; whether it existed."""
        with self.transaction() as db:
            return db.execute("DELETE FROM leases WHERE id = ?", (lease_id,)).rowcount > 0

    def list_leases(self, include_expired: bool = False) -> list[Lease]:
        """Leases with their resources, by ID; expired ones only if asked for."""
        with self.transaction(write=False) as db:
            where = "" if include_expired else "WHERE expires IS NULL OR expires > ?"
            rows = db.execute(f"SELECT id, created, expires, labels FROM leases {where} ORDER BY id",
                              () if include_expired else (time.time(),)).fetchall()
            resources: dict[str, list[tuple[str, str]]] = {}
            for lease_id, kind, key in db.execute(
                    "SELECT lease_id, kind, key FROM lease_resources ORDER BY lease_id, kind, key"):
                resources.setdefault(lease_id, []).append((kind, key))
        return [Lease(lid, created, expires, json.loads(labels), tuple(resources.get(lid, ())))
                for lid, created, expires, labels in rows]

    def purge_expired_leases(self) -> int:
        """Remove expired leases; how many."""
        with self.transaction() as db:
            return db.execute("DELETE FROM leases WHERE expires IS NOT NULL AND expires <= ?",
                              (time.time(),)).rowcount


_IMAGE_SELECT = ("SELECT id, target_media_type, target_digest, target_size, created, last_tag_time, labels "
                 "FROM images")


def _image(row: tuple) -> ImageRecord:
    image_id, media_type, dgst, size, created, last_tag_time, labels = row
    return ImageRecord(image_id, Target(media_type, dgst, size), created, last_tag_time, json.loads(labels))
