"""The SQLite ledger: reservations, budget counters, wallets, rate windows and usage records.

Every operation is one ``BEGIN IMMEDIATE`` transaction, which SQLite serialises across all
processes on the machine, so several granian workers sharing the file reserve and settle
exactly; reservations waiting at the same time share one (``sqlite_reserve_batch.py``).
Semantics are the ones ``ledger.py`` specifies for every backend; the clock is this machine's
(workers on one host share it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from gateway.store.group_commit import GroupCommit
from gateway.store.ledger import (
    Alert,
    Reservation,
    ReserveOutcome,
    Settlement,
)
from gateway.store.records import Billing, UsageRecord
from gateway.store.sqlite_commit_batch import commit_batch
from gateway.store.sqlite_errors import StoreLock, immediate, is_busy
from gateway.store.sqlite_ledger_rows import billing, counter_row
from gateway.store.sqlite_reserve_batch import reserve_batch

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    request_id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, created_at TEXT NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS usage_workspace_time ON usage (workspace_id, created_at);
CREATE TABLE IF NOT EXISTS budget_counters (
    workspace_id TEXT NOT NULL, counter TEXT NOT NULL, spend INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0, alerts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, counter));
CREATE TABLE IF NOT EXISTS wallets (
    workspace_id TEXT PRIMARY KEY, balance INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0, tier TEXT NOT NULL DEFAULT 'postpaid');
CREATE TABLE IF NOT EXISTS rate_entries (
    limiter TEXT NOT NULL, member TEXT NOT NULL, ts INTEGER NOT NULL, tokens INTEGER NOT NULL,
    PRIMARY KEY (limiter, member));
CREATE INDEX IF NOT EXISTS rate_entries_time ON rate_entries (limiter, ts);
CREATE TABLE IF NOT EXISTS rate_windows (
    limiter TEXT PRIMARY KEY, requests INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, expires INTEGER NOT NULL,
    data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (workspace_id, expires);
"""

T = TypeVar("T")

_usage_decoder = msgspec.json.Decoder(UsageRecord)


def _loop_connection(path: str) -> sqlite3.Connection | None:
    """The connection reservations use on the event loop: it never waits for a lock
    (``busy_timeout`` 0) and never checkpoints (that fsync would stall the loop; the store's
    main connection, used by its threads, does). None for an in-memory store (one
    connection only), or when it cannot be opened right now."""
    if path == ":memory:":
        return None
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 0")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error:
        return None  # every batch then takes the thread, which reports the store's state
    return db


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteLedger:
    """Ledger operations on the store's connection, under the store's lock."""

    _db: sqlite3.Connection
    _lock: StoreLock
    path: str
    _reserve_group: GroupCommit[Reservation, ReserveOutcome] | None = None
    _group_lock: threading.Lock
    _loop_db: sqlite3.Connection | None = None
    _loop_lock: StoreLock

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return immediate(self._db, work)

    # -- usage records -------------------------------------------------------------------

    def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        self.commit([Settlement(record=r) for r in records])

    def list_usage(self, workspace_id: str, since: str) -> list[UsageRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM usage WHERE workspace_id = ? AND created_at >= ? "
                "ORDER BY created_at",
                (workspace_id, since),
            ).fetchall()
        return [_usage_decoder.decode(row[0]) for row in rows]

    def get_usage(self, workspace_id: str, request_id: str) -> UsageRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM usage WHERE request_id = ? AND workspace_id = ?",
                (request_id, workspace_id),
            ).fetchone()
        return None if row is None else _usage_decoder.decode(row[0])

    # -- reserve ---------------------------------------------------------------------------

    async def reserve(self, reservation: Reservation) -> ReserveOutcome:
        """Decided together with the reservations of the same loop iteration, in one
        transaction (``group_commit.py``): on the loop when the store is free this instant,
        else on the store's reserve thread. The loop never waits for the store."""
        return await self._reservations().submit(reservation)

    def _reservations(self) -> GroupCommit[Reservation, ReserveOutcome]:
        group = self._reserve_group
        if group is None:
            with self._group_lock:
                if self._reserve_group is None:
                    self._loop_db = _loop_connection(self.path)
                    self._reserve_group = GroupCommit(
                        self._reserve_batch, self._reserve_now, name="routegate-reserve"
                    )
                group = self._reserve_group
        return group

    def _reserve_batch(self, reservations: Sequence[Reservation]) -> list[ReserveOutcome]:
        return self._transaction(lambda db: reserve_batch(db, reservations, _now_ms()))

    def _reserve_now(self, reservations: Sequence[Reservation]) -> list[ReserveOutcome] | None:
        """The batch on the loop's own connection, or None at once when it would wait:
        another thread is using it, or another connection (a thread of this process, another
        worker) holds the write lock."""
        db = self._loop_db
        if db is None:
            return None
        with self._loop_lock.attempt() as held:
            if not held:
                return None
            try:
                return immediate(db, lambda db: reserve_batch(db, reservations, _now_ms()))
            except sqlite3.OperationalError as error:
                if is_busy(error):
                    return None  # rolled back: the reserve thread decides this batch
                raise

    def _close_reservations(self) -> None:
        with self._group_lock:
            group, self._reserve_group = self._reserve_group, None
            db, self._loop_db = self._loop_db, None
        if group is not None:
            group.close()
        if db is not None:
            with self._loop_lock:
                db.close()

    # -- commit ----------------------------------------------------------------------------

    def commit(self, settlements: Sequence[Settlement]) -> list[Alert]:
        if not settlements:
            return []
        return self._transaction(lambda db: commit_batch(db, settlements, _now_ms()))

    # -- reads and wallet top-ups ------------------------------------------------------------

    def budget_spend(self, workspace_id: str, counters: Sequence[str]) -> list[int]:
        with self._lock:
            return [counter_row(self._db, workspace_id, counter)[0] for counter in counters]

    def get_billing(self, workspace_id: str) -> Billing:
        with self._lock:
            return billing(self._db, workspace_id)

    def add_credits(self, workspace_id: str, microdollars: int) -> Billing:
        def top_up(db: sqlite3.Connection) -> Billing:
            db.execute(
                "INSERT INTO wallets (workspace_id, balance, tier) VALUES (?, ?, 'prepaid') "
                "ON CONFLICT(workspace_id) DO UPDATE SET balance = balance + excluded.balance, "
                "tier = 'prepaid'",
                (workspace_id, microdollars),
            )
            return billing(db, workspace_id)

        return self._transaction(top_up)
