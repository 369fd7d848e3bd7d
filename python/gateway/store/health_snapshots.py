"""Deployment-health snapshots shared between gateway processes: the SQLite side
(the Redis side is ``redis_health``).

Each process writes its own snapshot (opaque bytes) with an expiry and reads everyone else's
live ones. Nothing here needs atomicity: a snapshot is a process's whole view, replaced
each time, and a stale one simply expires.
"""

from __future__ import annotations

import sqlite3
import time

from gateway.store.sqlite_errors import StoreLock

HEALTH_SCHEMA = """
CREATE TABLE IF NOT EXISTS health_snapshots (
    process_id TEXT PRIMARY KEY, expires REAL NOT NULL, data BLOB NOT NULL);
"""


class SqliteHealthSnapshots:
    _db: sqlite3.Connection
    _lock: StoreLock

    def exchange_health(self, process_id: str, snapshot: bytes, ttl_s: float) -> list[bytes]:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO health_snapshots (process_id, expires, data) VALUES (?, ?, ?) "
                "ON CONFLICT(process_id) DO UPDATE SET expires = excluded.expires, "
                "data = excluded.data",
                (process_id, now + ttl_s, snapshot),
            )
            self._db.execute("DELETE FROM health_snapshots WHERE expires <= ?", (now,))
            rows = self._db.execute(
                "SELECT data FROM health_snapshots WHERE process_id != ?", (process_id,)
            ).fetchall()
        return [bytes(row[0]) for row in rows]
