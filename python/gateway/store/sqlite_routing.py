"""The SQLite tables for per-workspace routing: defaults and named policies (SPEC §8).

A mixin of ``SqliteStore`` so that ``sqlite.py`` stays about the core records; it shares the
store's connection and lock. Options are kept as msgspec JSON, like every other record.
"""

from __future__ import annotations

import sqlite3

import msgspec

from gateway.routing_options import RoutingOptions
from gateway.store.sqlite_errors import StoreLock

ROUTING_SCHEMA = """
CREATE TABLE IF NOT EXISTS routing_defaults (
    workspace_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS routing_policies (
    workspace_id TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (workspace_id, name));
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RoutingOptions)


class SqliteRoutingTables:
    """Routing defaults and policies, one row per workspace (and name)."""

    _db: sqlite3.Connection
    _lock: StoreLock

    def get_routing_defaults(self, workspace_id: str) -> RoutingOptions:
        """The workspace's defaults; an empty ``RoutingOptions`` when none were ever set."""
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM routing_defaults WHERE workspace_id = ?", (workspace_id,)
            ).fetchone()
        return RoutingOptions() if row is None else _decoder.decode(row[0])

    def set_routing_defaults(self, workspace_id: str, options: RoutingOptions) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO routing_defaults (workspace_id, data) VALUES (?, ?) "
                "ON CONFLICT(workspace_id) DO UPDATE SET data = excluded.data",
                (workspace_id, _encoder.encode(options)),
            )

    def get_policy(self, workspace_id: str, name: str) -> RoutingOptions | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM routing_policies WHERE workspace_id = ? AND name = ?",
                (workspace_id, name),
            ).fetchone()
        return None if row is None else _decoder.decode(row[0])

    def list_policies(self, workspace_id: str) -> dict[str, RoutingOptions]:
        """The workspace's own policies by name, in name order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, data FROM routing_policies WHERE workspace_id = ? ORDER BY name",
                (workspace_id,),
            ).fetchall()
        return {str(name): _decoder.decode(data) for name, data in rows}

    def put_policy(self, workspace_id: str, name: str, options: RoutingOptions) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO routing_policies (workspace_id, name, data) VALUES (?, ?, ?) "
                "ON CONFLICT(workspace_id, name) DO UPDATE SET data = excluded.data",
                (workspace_id, name, _encoder.encode(options)),
            )

    def delete_policy(self, workspace_id: str, name: str) -> bool:
        """True when the workspace had the policy."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM routing_policies WHERE workspace_id = ? AND name = ?",
                (workspace_id, name),
            )
        return cursor.rowcount > 0
