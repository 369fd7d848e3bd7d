"""The SQLite table of workspaces' own provider keys (BYOK, SPEC §8).

A mixin of ``SqliteStore`` (like ``sqlite_routing``), sharing its connection and lock. A row
holds the ``ProviderKey`` record as msgspec JSON: the key itself only as the AEAD ciphertext
``byok_crypto`` made, never in plain text. Every read and write names the workspace, so one
workspace's ids never reach another's rows.
"""

from __future__ import annotations

import sqlite3

import msgspec

from gateway.store.records import ProviderKey
from gateway.store.sqlite_errors import StoreLock

PROVIDER_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS provider_keys (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, provider TEXT NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS provider_keys_workspace ON provider_keys (workspace_id, provider);
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ProviderKey)


class SqliteProviderKeys:
    """Create, list, read, replace and delete a workspace's provider keys."""

    _db: sqlite3.Connection
    _lock: StoreLock

    def create_provider_key(self, key: ProviderKey) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO provider_keys (id, workspace_id, provider, data) VALUES (?, ?, ?, ?)",
                (key.id, key.workspace_id, key.provider, _encoder.encode(key)),
            )

    def list_provider_keys(self, workspace_id: str) -> list[ProviderKey]:
        """The workspace's keys, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM provider_keys WHERE workspace_id = ? ORDER BY rowid",
                (workspace_id,),
            ).fetchall()
        return [_decoder.decode(row[0]) for row in rows]

    def get_provider_key(self, workspace_id: str, key_id: str) -> ProviderKey | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM provider_keys WHERE id = ? AND workspace_id = ?",
                (key_id, workspace_id),
            ).fetchone()
        return None if row is None else _decoder.decode(row[0])

    def update_provider_key(self, key: ProviderKey) -> None:
        """Replace the stored record of the same id in the same workspace (no-op otherwise)."""
        with self._lock:
            self._db.execute(
                "UPDATE provider_keys SET provider = ?, data = ? WHERE id = ? AND workspace_id = ?",
                (key.provider, _encoder.encode(key), key.id, key.workspace_id),
            )

    def delete_provider_key(self, workspace_id: str, key_id: str) -> bool:
        """True when the workspace had that key."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM provider_keys WHERE id = ? AND workspace_id = ?",
                (key_id, workspace_id),
            )
        return cursor.rowcount > 0
