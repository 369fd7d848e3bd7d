"""A batch of settlements committed in one SQLite transaction with a handful of statements.

The usage writer commits up to a few hundred settlements at a time. Settling them one by one
cost about ten statements each (the record, the held reservation, each counter, the wallet,
each window entry). Here every row the batch touches is read once, each settlement is applied
in order to that state in memory (exactly as ``ledger.py`` specifies for one, clamps
included), and each row is written back once. The caller holds ``BEGIN IMMEDIATE``, so no
other process writes in between; the result is the one-by-one result.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec

from gateway.store.ledger import ALERT_LEVELS, WINDOW_MS, Alert, Reservation, Settlement
from gateway.store.sqlite_ledger_rows import (
    billing,
    reservation_decoder,
    stored_counter,
    write_rows,
)

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_SIZES = (256, 128, 64, 32, 16, 8, 4, 2, 1)
"""The only lengths a statement's list of rows or ids comes in. SQLite's statement cache keys
on the SQL text: one text per batch length would keep a hundred large compiled statements
alive (+23 MiB measured); these keep nine per statement."""


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` cut into pieces whose lengths are all in ``_SIZES``, in order."""
    start = 0
    for size in _SIZES:
        while len(items) - start >= size:
            yield items[start : start + size]
            start += size


def _marks(count: int) -> str:
    return ",".join("?" * count)


@dataclass
class _Counter:
    spend: int = 0
    reserved: int = 0
    alerts: int = 0
    exists: bool = False


@dataclass
class _Wallet:
    balance: int
    reserved: int
    prepaid: bool


@dataclass
class _Rows:
    """What the batch reads up front, then changes in memory."""

    counters: dict[tuple[str, str], _Counter] = field(default_factory=dict)
    wallets: dict[str, _Wallet] = field(default_factory=dict)
    held: dict[str, Reservation] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)
    entries: dict[tuple[str, str], int] = field(default_factory=dict)
    changed_entries: set[tuple[str, str]] = field(default_factory=set)
    window_tokens: dict[str, int] = field(default_factory=dict)


def commit_batch(
    db: sqlite3.Connection, settlements: Sequence[Settlement], now: int
) -> list[Alert]:
    """Apply ``settlements`` in order inside the caller's open transaction; fired alerts."""
    if not any(_governed(s) for s in settlements):
        _insert_records(db, settlements, returning=False)  # records only: nothing to apply
        return []
    fresh = _insert_records(db, settlements, returning=True)
    governed = [s for s in fresh if _governed(s)]
    if not governed:
        return []
    rows = _read(db, governed, now - WINDOW_MS)
    alerts: list[Alert] = []
    for settlement in governed:
        _apply(rows, settlement, alerts)
    _write(db, rows)
    return alerts


def _governed(settlement: Settlement) -> bool:
    """Whether committing the settlement changes more than the usage table."""
    return settlement.reservation_id is not None or bool(settlement.budgets or settlement.wallet)


def _insert_records(
    db: sqlite3.Connection, settlements: Sequence[Settlement], *, returning: bool
) -> list[Settlement]:
    """Insert the usage records; with ``returning``, the settlements whose record was new (a
    replayed spool applies nothing twice), each request id once, in order: one multi-row
    ``INSERT`` per chunk tells which rows went in (``RETURNING``), with no lookup beforehand.
    Without it (a batch with nothing to apply), the rows are only inserted."""
    inserted: set[str] = set()
    for chunk in _chunks(settlements):
        values: list[object] = []
        for settlement in chunk:
            record = settlement.record
            values += (
                record.request_id,
                record.workspace_id,
                record.created_at,
                _encoder.encode(record),
            )
        query = (
            "INSERT OR IGNORE INTO usage (request_id, workspace_id, created_at, data) VALUES "
            + ",".join(("(?,?,?,?)",) * len(chunk))
        )
        if returning:
            rows = db.execute(query + " RETURNING request_id", values)
            inserted.update(request_id for (request_id,) in rows)
        else:
            db.execute(query, values)
    if not returning:
        return []
    fresh: list[Settlement] = []
    for settlement in settlements:
        if settlement.record.request_id in inserted:
            inserted.discard(settlement.record.request_id)
            fresh.append(settlement)
    return fresh


def _read(db: sqlite3.Connection, governed: list[Settlement], cutoff: int) -> _Rows:
    rows = _Rows()
    reservation_ids = list(dict.fromkeys(s.reservation_id for s in governed if s.reservation_id))
    for chunk in _chunks(reservation_ids):
        query = f"SELECT data FROM reservations WHERE id IN ({_marks(len(chunk))})"
        for (data,) in db.execute(query, chunk):
            held = reservation_decoder.decode(data)
            rows.held[held.id] = held
    members: dict[str, list[str]] = {}
    for settlement in governed:
        if settlement.reservation_id is not None:
            for actual in settlement.tokens:
                members.setdefault(actual.limiter, []).append(settlement.reservation_id)
    for limiter, ids in members.items():
        for chunk in _chunks(list(dict.fromkeys(ids))):
            # No ``ts`` in the WHERE: the planner would walk the (limiter, ts) index over the
            # whole window instead of looking the members up by primary key.
            query = (
                "SELECT member, tokens, ts FROM rate_entries WHERE limiter = ? "
                f"AND member IN ({_marks(len(chunk))})"
            )
            for member, tokens, ts in db.execute(query, (limiter, *chunk)):
                if ts > cutoff:
                    rows.entries[(limiter, member)] = int(tokens)
    touched = {(s.record.workspace_id, d.counter) for s in governed for d in s.budgets}
    touched |= {(h.workspace_id, b.counter) for h in rows.held.values() for b in h.budgets}
    for workspace_id, name in touched:
        found = stored_counter(db, workspace_id, name)
        rows.counters[(workspace_id, name)] = (
            _Counter() if found is None else _Counter(*found, exists=True)
        )
    for workspace_id in {s.record.workspace_id for s in governed} | {
        h.workspace_id for h in rows.held.values()
    }:
        wallet = billing(db, workspace_id)  # no row: nothing to release or charge, as one by one
        rows.wallets[workspace_id] = _Wallet(
            wallet.balance_microdollars, wallet.reserved_microdollars, wallet.tier == "prepaid"
        )
    return rows


def _apply(rows: _Rows, settlement: Settlement, alerts: list[Alert]) -> None:
    """``ledger.py``'s commit of one settlement, on the rows in memory."""
    workspace = settlement.record.workspace_id
    held = rows.held.pop(settlement.reservation_id, None) if settlement.reservation_id else None
    if held is not None:
        rows.released.append(held.id)
        for hold in held.budgets:
            counter = rows.counters[(held.workspace_id, hold.counter)]
            # The upsert of one-by-one commits: a missing row is created holding -amount.
            counter.reserved = (
                max(0, counter.reserved - hold.amount) if counter.exists else -hold.amount
            )
            counter.exists = True
        wallet = rows.wallets[held.workspace_id]
        if held.wallet is not None:
            wallet.reserved = max(0, wallet.reserved - held.wallet.amount)
    for debit in settlement.budgets:
        counter = rows.counters[(workspace, debit.counter)]
        counter.spend += debit.amount
        counter.exists = True
        for bit, level in enumerate(ALERT_LEVELS):
            if not counter.alerts & (1 << bit) and counter.spend * 100 >= level * debit.limit:
                counter.alerts |= 1 << bit
                alerts.append(
                    Alert(
                        workspace_id=workspace,
                        budget_id=debit.budget_id,
                        counter=debit.counter,
                        percent=level,
                        spend=counter.spend,
                        limit=debit.limit,
                    )
                )
    wallet = rows.wallets[workspace]
    if settlement.wallet and wallet.prepaid:
        wallet.balance = max(0, wallet.balance - settlement.wallet)
    if settlement.reservation_id is not None:
        for actual in settlement.tokens:
            entry = (actual.limiter, settlement.reservation_id)
            before = rows.entries.get(entry)
            if before is None:
                continue  # already out of the window
            rows.entries[entry] = actual.tokens
            rows.changed_entries.add(entry)
            rows.window_tokens[actual.limiter] = (
                rows.window_tokens.get(actual.limiter, 0) + actual.tokens - before
            )


def _write(db: sqlite3.Connection, rows: _Rows) -> None:
    write_rows(db, "DELETE FROM reservations WHERE id = ?", [(rid,) for rid in rows.released])
    write_rows(
        db,
        "INSERT INTO budget_counters (workspace_id, counter, spend, reserved, alerts) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(workspace_id, counter) DO UPDATE SET "
        "spend = excluded.spend, reserved = excluded.reserved, alerts = excluded.alerts",
        [
            (ws, name, c.spend, c.reserved, c.alerts)
            for (ws, name), c in rows.counters.items()
            if c.exists
        ],
    )
    write_rows(
        db,
        "UPDATE wallets SET balance = ?, reserved = ? WHERE workspace_id = ?",
        [(w.balance, w.reserved, ws) for ws, w in rows.wallets.items()],
    )
    write_rows(
        db,
        "UPDATE rate_entries SET tokens = ? WHERE limiter = ? AND member = ?",
        [(rows.entries[entry], *entry) for entry in rows.changed_entries],
    )
    write_rows(
        db,
        "UPDATE rate_windows SET tokens = tokens + ? WHERE limiter = ?",
        [(delta, limiter) for limiter, delta in rows.window_tokens.items() if delta],
    )
