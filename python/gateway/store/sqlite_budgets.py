"""The SQLite tables behind the management API's writes: budgets, and in-place record updates.

A mixin of ``SqliteStore`` (like ``sqlite_routing``) so that ``sqlite.py`` stays about creating
and looking up the core records; it shares the store's connection and lock. Budgets are kept as
msgspec JSON beside the columns they are looked up by. Their spend is not here: it lives in the
ledger's per-period counters (``sqlite_ledger``), so editing or deleting a budget never races
with a request settling against it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import msgspec

from gateway.store.records import ApiKey, Budget, Workspace
from gateway.store.sqlite_errors import StoreLock, immediate

BUDGETS_SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS budgets_workspace ON budgets (workspace_id);
"""

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_budget_decoder = msgspec.json.Decoder(Budget)
_key_decoder = msgspec.json.Decoder(ApiKey)


class SqliteBudgetTables:
    """Budgets CRUD, plus ``update_workspace`` and ``update_key`` (replace a record by id)."""

    _db: sqlite3.Connection
    _lock: StoreLock

    def _budget_tx(self, work: Callable[[], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction: other processes wait."""
        with self._lock:
            return immediate(self._db, lambda _: work())

    # --- records updated in place -----------------------------------------------------

    def update_workspace(self, workspace: Workspace) -> None:
        """Replace the workspace of that id; its ``slug`` column is never changed."""
        with self._lock:
            self._db.execute(
                "UPDATE workspaces SET data = ? WHERE id = ?",
                (_encoder.encode(workspace), workspace.id),
            )

    def update_key(self, key: ApiKey) -> None:
        """Replace the key of that id (same workspace). Revocation is final: if the stored key
        was revoked meanwhile (a concurrent DELETE), the replacement stays revoked."""

        def replace() -> None:
            row = self._db.execute(
                "SELECT data FROM api_keys WHERE id = ? AND workspace_id = ?",
                (key.id, key.workspace_id),
            ).fetchone()
            if row is None:
                return
            stored = _key_decoder.decode(row[0])
            record = key
            if stored.status == "revoked" and key.status != "revoked":
                record = msgspec.structs.replace(key, status="revoked")
            self._db.execute(
                "UPDATE api_keys SET data = ? WHERE id = ?", (_encoder.encode(record), key.id)
            )

        self._budget_tx(replace)

    # --- budgets ----------------------------------------------------------------------

    def create_budget(self, budget: Budget) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO budgets (id, workspace_id, data) VALUES (?, ?, ?)",
                (budget.id, budget.workspace_id, _encoder.encode(budget)),
            )

    def list_budgets(self, workspace_id: str) -> list[Budget]:
        """The workspace's budgets, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM budgets WHERE workspace_id = ? ORDER BY rowid", (workspace_id,)
            ).fetchall()
        return [_budget_decoder.decode(row[0]) for row in rows]

    def get_budget(self, workspace_id: str, budget_id: str) -> Budget | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM budgets WHERE id = ? AND workspace_id = ?",
                (budget_id, workspace_id),
            ).fetchone()
        return None if row is None else _budget_decoder.decode(row[0])

    def update_budget(self, budget: Budget) -> None:
        """Replace the budget of that id in its workspace; nothing when it was deleted."""
        with self._lock:
            self._db.execute(
                "UPDATE budgets SET data = ? WHERE id = ? AND workspace_id = ?",
                (_encoder.encode(budget), budget.id, budget.workspace_id),
            )

    def delete_budget(self, workspace_id: str, budget_id: str) -> bool:
        """True when the workspace had the budget."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM budgets WHERE id = ? AND workspace_id = ?", (budget_id, workspace_id)
            )
        return cursor.rowcount > 0
