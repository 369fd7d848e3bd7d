"""Embedded store: one SQLite file in WAL mode, safe for several granian workers on one host.

Records are kept as msgspec-encoded JSON beside the columns they are looked up by, so a
schema change to a record needs no migration of the table.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TypeVar

import msgspec

from gateway.store.health_snapshots import HEALTH_SCHEMA, SqliteHealthSnapshots
from gateway.store.ledger import StoreUnavailable
from gateway.store.private_files import PRIVATE_DIR, private_file
from gateway.store.records import ApiKey, Workspace
from gateway.store.sqlite_budgets import BUDGETS_SCHEMA, SqliteBudgetTables
from gateway.store.sqlite_errors import BUSY_TIMEOUT_MS, StoreLock, immediate
from gateway.store.sqlite_ledger import LEDGER_SCHEMA, SqliteLedger
from gateway.store.sqlite_provider_keys import PROVIDER_KEYS_SCHEMA, SqliteProviderKeys
from gateway.store.sqlite_routing import ROUTING_SCHEMA, SqliteRoutingTables

R = TypeVar("R", bound=msgspec.Struct)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY, slug TEXT UNIQUE NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, key_hash TEXT UNIQUE NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS api_keys_workspace ON api_keys (workspace_id);
"""

_encoder = msgspec.json.Encoder()


class SqliteStore(
    SqliteLedger, SqliteRoutingTables, SqliteBudgetTables, SqliteProviderKeys, SqliteHealthSnapshots
):
    """The embedded default store (``sqlite:///path``); routing tables in ``sqlite_routing``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            private_file(Path(self.path))
        self._lock = StoreLock("SQLite store")
        self._loop_lock = StoreLock("SQLite store")
        self._group_lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._db.executescript(
                _SCHEMA
                + ROUTING_SCHEMA
                + LEDGER_SCHEMA
                + BUDGETS_SCHEMA
                + PROVIDER_KEYS_SCHEMA
                + HEALTH_SCHEMA
            )

    def _one(self, kind: type[R], sql: str, args: tuple[object, ...]) -> R | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=kind)

    def _all(self, kind: type[R], sql: str, args: tuple[object, ...]) -> list[R]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [msgspec.json.decode(row[0], type=kind) for row in rows]

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def create_workspace(self, workspace: Workspace) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO workspaces (id, slug, data) VALUES (?, ?, ?)",
                (workspace.id, workspace.slug, _encoder.encode(workspace)),
            )

    def get_workspace(self, workspace_id: str) -> Workspace | None:
        return self._one(Workspace, "SELECT data FROM workspaces WHERE id = ?", (workspace_id,))

    def get_workspace_by_slug(self, slug: str) -> Workspace | None:
        return self._one(Workspace, "SELECT data FROM workspaces WHERE slug = ?", (slug,))

    def list_workspaces(self) -> list[Workspace]:
        return self._all(Workspace, "SELECT data FROM workspaces ORDER BY rowid", ())

    def create_key(self, key: ApiKey) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (id, workspace_id, key_hash, data) VALUES (?, ?, ?, ?)",
                (key.id, key.workspace_id, key.key_hash, _encoder.encode(key)),
            )

    def get_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return self._one(ApiKey, "SELECT data FROM api_keys WHERE key_hash = ?", (key_hash,))

    def list_keys(self, workspace_id: str) -> list[ApiKey]:
        return self._all(
            ApiKey,
            "SELECT data FROM api_keys WHERE workspace_id = ? ORDER BY rowid",
            (workspace_id,),
        )

    def get_key(self, workspace_id: str, key_id: str) -> ApiKey | None:
        return self._one(
            ApiKey,
            "SELECT data FROM api_keys WHERE id = ? AND workspace_id = ?",
            (key_id, workspace_id),
        )

    def revoke_key(self, workspace_id: str, key_id: str) -> ApiKey | None:
        """Read-modify-write in one immediate transaction: concurrent workers cannot interleave."""
        with self._lock:
            return immediate(self._db, lambda _: self._revoke_locked(workspace_id, key_id))

    def _revoke_locked(self, workspace_id: str, key_id: str) -> ApiKey | None:
        row = self._db.execute(
            "SELECT data FROM api_keys WHERE id = ? AND workspace_id = ?", (key_id, workspace_id)
        ).fetchone()
        if row is None:
            return None
        key = msgspec.structs.replace(msgspec.json.decode(row[0], type=ApiKey), status="revoked")
        self._db.execute(
            "UPDATE api_keys SET data = ? WHERE id = ?", (_encoder.encode(key), key_id)
        )
        return key

    def ping(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
        except (sqlite3.Error, StoreUnavailable):
            return False
        return True

    def close(self) -> None:
        self._close_reservations()
        with self._lock:
            self._db.close()
