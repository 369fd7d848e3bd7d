"""Row-level steps of the SQLite ledger, shared by the batched reserve and the commit.

Each runs inside the caller's open ``BEGIN IMMEDIATE`` transaction; the rules are
``ledger.py``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from gateway.store.ledger import WINDOW_MS, Reservation, WindowState
from gateway.store.records import Billing

reservation_decoder = msgspec.json.Decoder(Reservation)


def billing(db: sqlite3.Connection, workspace_id: str) -> Billing:
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


def stored_counter(
    db: sqlite3.Connection, workspace_id: str, counter: str
) -> tuple[int, int, int] | None:
    """(spend, reserved, alerts bitmask) of a budget counter; None when it has no row yet."""
    row = db.execute(
        "SELECT spend, reserved, alerts FROM budget_counters WHERE workspace_id = ? "
        "AND counter = ?",
        (workspace_id, counter),
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def counter_row(db: sqlite3.Connection, workspace_id: str, counter: str) -> tuple[int, int, int]:
    """(spend, reserved, alerts bitmask) of a budget counter; zeros when never charged."""
    return stored_counter(db, workspace_id, counter) or (0, 0, 0)


def add_reserved(db: sqlite3.Connection, workspace_id: str, counter: str, amount: int) -> None:
    db.execute(
        "INSERT INTO budget_counters (workspace_id, counter, reserved) VALUES (?, ?, ?) "
        "ON CONFLICT(workspace_id, counter) DO UPDATE SET "
        "reserved = MAX(0, reserved + excluded.reserved)",
        (workspace_id, counter, amount),
    )


def release(db: sqlite3.Connection, held: Reservation) -> None:
    """Give a reservation's budget and wallet holds back, and forget it."""
    for hold in held.budgets:
        add_reserved(db, held.workspace_id, hold.counter, -hold.amount)
    if held.wallet is not None:
        db.execute(
            "UPDATE wallets SET reserved = MAX(0, reserved - ?) WHERE workspace_id = ?",
            (held.wallet.amount, held.workspace_id),
        )
    db.execute("DELETE FROM reservations WHERE id = ?", (held.id,))


def sweep_expired(db: sqlite3.Connection, workspace_id: str, now: int) -> None:
    rows = db.execute(
        "SELECT data FROM reservations WHERE workspace_id = ? AND expires <= ?",
        (workspace_id, now),
    ).fetchall()
    for row in rows:
        release(db, reservation_decoder.decode(row[0]))


def window_state(db: sqlite3.Connection, limiter: str, now: int) -> WindowState:
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


def write_rows(db: sqlite3.Connection, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
    """``executemany`` that skips the statement when there is nothing to write."""
    if rows:
        db.executemany(sql, rows)
