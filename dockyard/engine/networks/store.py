"""Networks and their endpoints: SQLite (WAL) at <data-root>/networks.db. An endpoint row is a
container's address on a network while it runs; UNIQUE(network, ip) makes two allocations of one
address impossible, whatever the concurrency."""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from dockyard.engine.sqlitestore import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
"""
Record = dict[str, Any]


class NetworkStore(SqliteStore):
    """Persistent network records and endpoints."""

    def __init__(self, data_root: str) -> None:
        os.makedirs(data_root, mode=0o711, exist_ok=True)
        super().__init__(os.path.join(data_root, "networks.db"), _SCHEMA)

    # -- networks -----------------------------------------------------------------------------------

    def networks(self) -> list[Record]:
        """Every network record."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM networks").fetchall()
        return [json.loads(r[0]) for r in rows]

    def get(self, network_id: str) -> Record | None:
        """A network by full ID."""
        with self._lock:
            row = self._db.execute("SELECT record FROM networks WHERE id = ?", (network_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def add(self, db: sqlite3.Connection, record: Record) -> bool:
        """Insert a network (inside tx); False if its name is taken."""
        try:
            db.execute("INSERT INTO networks (id, name, record) VALUES (?, ?, ?)",
                       (record["Id"], record["Name"], json.dumps(record)))
        except sqlite3.IntegrityError:
            return False
        return True

    def update(self, record: Record) -> None:
        """Replace a network's record (same ID and name)."""
        with self.tx() as db:
            db.execute("UPDATE networks SET record = ? WHERE id = ?", (json.dumps(record), record["Id"]))

    def delete(self, network_id: str) -> None:
        """Forget a network and its endpoints."""
        with self.tx() as db:
            db.execute("DELETE FROM endpoints WHERE network_id = ?", (network_id,))
            db.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    # -- endpoints ----------------------------------------------------------------------------------

    def endpoints(self, network_id: str | None = None, container_id: str | None = None) -> list[Record]:
        """Endpoint records (each with NetworkID and ContainerID), filtered by network or container."""
        query, args = "SELECT network_id, container_id, record FROM endpoints WHERE 1", []
        if network_id is not None:
            query, args = query + " AND network_id = ?", [*args, network_id]
        if container_id is not None:
            query, args = query + " AND container_id = ?", [*args, container_id]
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [{**json.loads(rec), "NetworkID": nid, "ContainerID": cid} for nid, cid, rec in rows]

    def used_ips(self, db: sqlite3.Connection, network_id: str) -> set[str]:
        """The addresses in use on a network, IPv4 and IPv6 (inside tx: BEGIN IMMEDIATE makes the
        IPv6 ones, which have no UNIQUE column, as safe from concurrent starts)."""
        rows = db.execute("SELECT ip, json_extract(record, '$.GlobalIPv6Address') FROM endpoints "
                          "WHERE network_id = ?", (network_id,))
        return {ip for row in rows for ip in row if ip}

    def add_endpoint(self, db: sqlite3.Connection, network_id: str, container_id: str, record: Record) -> None:
        """Record an endpoint (inside tx); IntegrityError if the address (IPv4, or IPv6 on an
        IPv6-only network) or the pair is taken."""
        db.execute("INSERT INTO endpoints (network_id, container_id, ip, record) VALUES (?, ?, ?, ?)",
                   (network_id, container_id, record["IPAddress"] or record["GlobalIPv6Address"], json.dumps(record)))

    def delete_endpoint(self, network_id: str, container_id: str) -> None:
        """Forget one endpoint (nothing if absent)."""
        with self.tx() as db:
            db.execute("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?", (network_id, container_id))
