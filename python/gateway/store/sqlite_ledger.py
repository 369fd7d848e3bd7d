"""The SQLite ledger: reservations, budget counters, wallets, rate windows and usage records.

Every operation is one ``BEGIN IMMEDIATE`` transaction, which SQLite serialises across all
processes on the machine, so several granian workers sharing the file reserve and settle
exactly. Semantics are the ones ``ledger.py`` specifies for every backend; the clock is this
machine's (workers on one host share it).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from gateway.store.ledger import (
    ALERT_LEVELS,
    WINDOW_MS,
    Alert,
    Denial,
    Reservation,
    ReserveOutcome,
    Settlement,
    WindowState,
)
from gateway.store.records import Billing, UsageRecord
from gateway.store.sqlite_errors import StoreLock, rollback

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
_encoder = msgspec.json.Encoder()
_reservation_decoder = msgspec.json.Decoder(Reservation)
_usage_decoder = msgspec.json.Decoder(UsageRecord)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteLedger:
    """Ledger operations on the store's connection, under the store's lock."""

    _db: sqlite3.Connection
    _lock: StoreLock

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                rollback(self._db)
                raise
        return result

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
        """Local and short: runs inline on the event loop (no thread hop, see ledger.py)."""
        return self._transaction(lambda db: _reserve(db, reservation, _now_ms()))

    # -- commit ----------------------------------------------------------------------------

    def commit(self, settlements: Sequence[Settlement]) -> list[Alert]:
        if not settlements:
            return []
        return self._transaction(lambda db: _commit(db, settlements, _now_ms()))

    # -- reads and wallet top-ups ------------------------------------------------------------

    def budget_spend(self, workspace_id: str, counters: Sequence[str]) -> list[int]:
        with self._lock:
            return [_counter(self._db, workspace_id, counter)[0] for counter in counters]

    def get_billing(self, workspace_id: str) -> Billing:
        with self._lock:
            return _billing(self._db, workspace_id)

    def add_credits(self, workspace_id: str, microdollars: int) -> Billing:
        def top_up(db: sqlite3.Connection) -> Billing:
            db.execute(
                "INSERT INTO wallets (workspace_id, balance, tier) VALUES (?, ?, 'prepaid') "
                "ON CONFLICT(workspace_id) DO UPDATE SET balance = balance + excluded.balance, "
                "tier = 'prepaid'",
                (workspace_id, microdollars),
            )
            return _billing(db, workspace_id)

        return self._transaction(top_up)


def _billing(db: sqlite3.Connection, workspace_id: str) -> Billing:
    row = db.execute(
        "SELECT balance, reserved, tier FROM wallets WHERE workspace_id = ?", (workspace_id,)
    ).fetchone()
    if row is None:
        return Billing(workspace_id=workspace_id)
    return Billing(
        workspace_id=workspace_id,
        balance_microdollars=int(row[0]),
        reserved_microdollars=int(row[1]),
        tier=row[2],
    )


def _counter(db: sqlite3.Connection, workspace_id: str, counter: str) -> tuple[int, int, int]:
    """(spend, reserved, alerts bitmask) of a budget counter; zeros when never charged."""
    row = db.execute(
        "SELECT spend, reserved, alerts FROM budget_counters WHERE workspace_id = ? "
        "AND counter = ?",
        (workspace_id, counter),
    ).fetchone()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def _add_reserved(db: sqlite3.Connection, workspace_id: str, counter: str, amount: int) -> None:
    db.execute(
        "INSERT INTO budget_counters (workspace_id, counter, reserved) VALUES (?, ?, ?) "
        "ON CONFLICT(workspace_id, counter) DO UPDATE SET "
        "reserved = MAX(0, reserved + excluded.reserved)",
        (workspace_id, counter, amount),
    )


def _release(db: sqlite3.Connection, held: Reservation) -> None:
    """Give a reservation's budget and wallet holds back, and forget it."""
    for hold in held.budgets:
        _add_reserved(db, held.workspace_id, hold.counter, -hold.amount)
    if held.wallet is not None:
        db.execute(
            "UPDATE wallets SET reserved = MAX(0, reserved - ?) WHERE workspace_id = ?",
            (held.wallet.amount, held.workspace_id),
        )
    db.execute("DELETE FROM reservations WHERE id = ?", (held.id,))


def _sweep_expired(db: sqlite3.Connection, workspace_id: str, now: int) -> None:
    rows = db.execute(
        "SELECT data FROM reservations WHERE workspace_id = ? AND expires <= ?",
        (workspace_id, now),
    ).fetchall()
    for row in rows:
        _release(db, _reservation_decoder.decode(row[0]))


def _window(db: sqlite3.Connection, limiter: str, now: int) -> WindowState:
    """The limiter's window after forgetting entries older than 60 s. Its totals are kept
    running in ``rate_windows``, so this costs O(expired entries), not O(window)."""
    cutoff = now - WINDOW_MS
    gone, gone_tokens = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM rate_entries WHERE limiter = ? AND ts <= ?",
        (limiter, cutoff),
    ).fetchone()
    if gone:
        db.execute("DELETE FROM rate_entries WHERE limiter = ? AND ts <= ?", (limiter, cutoff))
        db.execute(
            "UPDATE rate_windows SET requests = requests - ?, tokens = tokens - ? "
            "WHERE limiter = ?",
            (gone, gone_tokens, limiter),
        )
    row = db.execute(
        "SELECT requests, tokens FROM rate_windows WHERE limiter = ?", (limiter,)
    ).fetchone()
    count, tokens = (0, 0) if row is None else (int(row[0]), int(row[1]))
    oldest = db.execute(
        "SELECT MIN(ts) FROM rate_entries WHERE limiter = ?", (limiter,)
    ).fetchone()[0]
    reset = 0 if oldest is None else max(1, int(oldest) + WINDOW_MS - now)
    return WindowState(limiter=limiter, requests=count, tokens=tokens, reset_ms=reset)


def _add_entry(db: sqlite3.Connection, limiter: str, member: str, now: int, tokens: int) -> None:
    added = db.execute(
        "INSERT OR IGNORE INTO rate_entries (limiter, member, ts, tokens) VALUES (?, ?, ?, ?)",
        (limiter, member, now, tokens),
    ).rowcount
    if not added:
        return  # the same reservation id twice: it already counts once
    db.execute(
        "INSERT INTO rate_windows (limiter, requests, tokens) VALUES (?, 1, ?) "
        "ON CONFLICT(limiter) DO UPDATE SET requests = requests + 1, "
        "tokens = tokens + excluded.tokens",
        (limiter, tokens),
    )


def _set_entry_tokens(
    db: sqlite3.Connection, limiter: str, member: str, tokens: int, cutoff: int
) -> None:
    row = db.execute(
        "SELECT tokens FROM rate_entries WHERE limiter = ? AND member = ? AND ts > ?",
        (limiter, member, cutoff),
    ).fetchone()
    if row is None:
        return  # already out of the window
    db.execute(
        "UPDATE rate_entries SET tokens = ? WHERE limiter = ? AND member = ?",
        (tokens, limiter, member),
    )
    db.execute(
        "UPDATE rate_windows SET tokens = tokens + ? WHERE limiter = ?",
        (tokens - int(row[0]), limiter),
    )


def _reserve(db: sqlite3.Connection, reservation: Reservation, now: int) -> ReserveOutcome:
    workspace = reservation.workspace_id
    _sweep_expired(db, workspace, now)
    windows = [_window(db, hold.limiter, now) for hold in reservation.limits]
    spend: list[int] = []
    denial: Denial | None = None
    for hold, window in zip(reservation.limits, windows, strict=True):
        retry = window.reset_ms or WINDOW_MS
        if hold.rpm is not None and window.requests >= hold.rpm:
            denial = denial or Denial(kind="rpm", ref=hold.limiter, retry_after_ms=retry)
        elif hold.tpm is not None and window.tokens + hold.tokens > hold.tpm:
            denial = denial or Denial(kind="tpm", ref=hold.limiter, retry_after_ms=retry)
    for budget in reservation.budgets:
        settled, reserved, _ = _counter(db, workspace, budget.counter)
        spend.append(settled)
        used = settled + reserved
        if budget.enforce and (used >= budget.threshold or used + budget.amount > budget.threshold):
            denial = denial or Denial(kind="budget", ref=budget.budget_id)
    if reservation.wallet is not None:
        wallet = _billing(db, workspace)
        free = wallet.balance_microdollars - wallet.reserved_microdollars
        if wallet.tier == "prepaid" and (free <= 0 or free - reservation.wallet.amount < 0):
            denial = denial or Denial(kind="wallet", ref=workspace)
    if denial is not None:
        return ReserveOutcome(
            granted=False, denial=denial, spend=tuple(spend), windows=tuple(windows)
        )
    granted_windows: list[WindowState] = []
    for hold, window in zip(reservation.limits, windows, strict=True):
        _add_entry(db, hold.limiter, reservation.id, now, hold.tokens)
        granted_windows.append(
            WindowState(
                limiter=hold.limiter,
                requests=window.requests + 1,
                tokens=window.tokens + hold.tokens,
                reset_ms=window.reset_ms or WINDOW_MS,
            )
        )
    for budget in reservation.budgets:
        _add_reserved(db, workspace, budget.counter, budget.amount)
    if reservation.wallet is not None:
        db.execute(
            "INSERT INTO wallets (workspace_id, reserved) VALUES (?, ?) "
            "ON CONFLICT(workspace_id) DO UPDATE SET reserved = reserved + excluded.reserved",
            (workspace, reservation.wallet.amount),
        )
    db.execute(
        "INSERT OR REPLACE INTO reservations (id, workspace_id, expires, data) VALUES (?, ?, ?, ?)",
        (reservation.id, workspace, now + reservation.ttl_ms, _encoder.encode(reservation)),
    )
    return ReserveOutcome(granted=True, spend=tuple(spend), windows=tuple(granted_windows))


def _commit(db: sqlite3.Connection, settlements: Sequence[Settlement], now: int) -> list[Alert]:
    alerts: list[Alert] = []
    for settlement in settlements:
        record = settlement.record
        inserted = db.execute(
            "INSERT OR IGNORE INTO usage (request_id, workspace_id, created_at, data) "
            "VALUES (?, ?, ?, ?)",
            (record.request_id, record.workspace_id, record.created_at, _encoder.encode(record)),
        ).rowcount
        if not inserted:
            continue  # already committed (a replayed spool): apply nothing twice
        workspace = record.workspace_id
        if settlement.reservation_id is not None:
            row = db.execute(
                "SELECT data FROM reservations WHERE id = ?", (settlement.reservation_id,)
            ).fetchone()
            if row is not None:
                _release(db, _reservation_decoder.decode(row[0]))
        for debit in settlement.budgets:
            before, _, fired = _counter(db, workspace, debit.counter)
            after = before + debit.amount
            for bit, level in enumerate(ALERT_LEVELS):
                if not fired & (1 << bit) and after * 100 >= level * debit.limit:
                    fired |= 1 << bit
                    alerts.append(
                        Alert(
                            workspace_id=workspace,
                            budget_id=debit.budget_id,
                            counter=debit.counter,
                            percent=level,
                            spend=after,
                            limit=debit.limit,
                        )
                    )
            db.execute(
                "INSERT INTO budget_counters (workspace_id, counter, spend, alerts) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(workspace_id, counter) DO UPDATE SET "
                "spend = excluded.spend, alerts = excluded.alerts",
                (workspace, debit.counter, after, fired),
            )
        if settlement.wallet:
            db.execute(
                "UPDATE wallets SET balance = MAX(0, balance - ?) "
                "WHERE workspace_id = ? AND tier = 'prepaid'",
                (settlement.wallet, workspace),
            )
        if settlement.reservation_id is not None:
            for actual in settlement.tokens:
                _set_entry_tokens(
                    db, actual.limiter, settlement.reservation_id, actual.tokens, now - WINDOW_MS
                )
    return alerts
