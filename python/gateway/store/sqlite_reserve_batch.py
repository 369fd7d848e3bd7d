"""Many reservations decided in one SQLite transaction: group commit for admission.

A busy worker used to pay one ``BEGIN IMMEDIATE``/``COMMIT`` and about ten statements per
governed request, on the event loop. Here a batch of reservations is decided in one
transaction: each window, budget counter and wallet the batch touches is read once, every
reservation is then decided in order against that state held in memory (exactly as if each
had been its own transaction, in that order), and the changes are written back once per row.
Because the transaction is ``IMMEDIATE``, no other process can write between the reads and
the writes, so exactness across workers is unchanged. The rules are ``ledger.py``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from gateway.store.ledger import (
    WINDOW_MS,
    Denial,
    Reservation,
    ReserveOutcome,
    WindowState,
    budget_denied,
    rate_denial,
    wallet_denied,
    window_granted,
)
from gateway.store.sqlite_ledger_rows import (
    billing,
    counter_row,
    sweep_expired,
    window_state,
    write_rows,
)

_encoder = msgspec.json.Encoder()


@dataclass
class _Window:
    requests: int
    tokens: int
    reset_ms: int
    added_requests: int = 0
    added_tokens: int = 0


@dataclass
class _Counter:
    spend: int
    reserved: int
    added: int = 0


@dataclass
class _Wallet:
    balance: int
    reserved: int
    prepaid: bool
    added: int = 0


class _BatchState:
    """The rows a batch touches, read on first use and written back once at the end."""

    def __init__(self, db: sqlite3.Connection, now: int) -> None:
        self.db = db
        self.now = now
        self.windows: dict[str, _Window] = {}
        self.counters: dict[tuple[str, str], _Counter] = {}
        self.wallets: dict[str, _Wallet] = {}

    def window(self, limiter: str) -> _Window:
        state = self.windows.get(limiter)
        if state is None:
            read = window_state(self.db, limiter, self.now)
            state = self.windows[limiter] = _Window(read.requests, read.tokens, read.reset_ms)
        return state

    def counter(self, workspace_id: str, name: str) -> _Counter:
        state = self.counters.get((workspace_id, name))
        if state is None:
            spend, reserved, _ = counter_row(self.db, workspace_id, name)
            state = self.counters[(workspace_id, name)] = _Counter(spend, reserved)
        return state

    def wallet(self, workspace_id: str) -> _Wallet:
        state = self.wallets.get(workspace_id)
        if state is None:
            read = billing(self.db, workspace_id)
            state = self.wallets[workspace_id] = _Wallet(
                read.balance_microdollars, read.reserved_microdollars, read.tier == "prepaid"
            )
        return state

    def write_back(self) -> None:
        write_rows(
            self.db,
            "INSERT INTO rate_windows (limiter, requests, tokens) VALUES (?, ?, ?) "
            "ON CONFLICT(limiter) DO UPDATE SET requests = requests + excluded.requests, "
            "tokens = tokens + excluded.tokens",
            [
                (limiter, w.added_requests, w.added_tokens)
                for limiter, w in self.windows.items()
                if w.added_requests
            ],
        )
        write_rows(
            self.db,
            "INSERT INTO budget_counters (workspace_id, counter, reserved) VALUES (?, ?, ?) "
            "ON CONFLICT(workspace_id, counter) DO UPDATE SET "
            "reserved = MAX(0, reserved + excluded.reserved)",
            [(ws, name, c.added) for (ws, name), c in self.counters.items() if c.added],
        )
        write_rows(
            self.db,
            "INSERT INTO wallets (workspace_id, reserved) VALUES (?, ?) "
            "ON CONFLICT(workspace_id) DO UPDATE SET reserved = reserved + excluded.reserved",
            [(ws, w.added) for ws, w in self.wallets.items() if w.added],
        )


def reserve_batch(
    db: sqlite3.Connection, reservations: Sequence[Reservation], now: int
) -> list[ReserveOutcome]:
    """Decide ``reservations`` in order inside the caller's open transaction."""
    for workspace_id in dict.fromkeys(r.workspace_id for r in reservations):
        sweep_expired(db, workspace_id, now)
    state = _BatchState(db, now)
    kept: list[tuple[str, str, int, bytes]] = []
    outcomes = [_decide(state, reservation, kept) for reservation in reservations]
    state.write_back()
    write_rows(
        db,
        "INSERT OR REPLACE INTO reservations (id, workspace_id, expires, data) VALUES (?, ?, ?, ?)",
        kept,
    )
    return outcomes


def _decide(
    state: _BatchState, reservation: Reservation, kept: list[tuple[str, str, int, bytes]]
) -> ReserveOutcome:
    workspace = reservation.workspace_id
    windows = [state.window(hold.limiter) for hold in reservation.limits]
    seen = [
        WindowState(limiter=h.limiter, requests=w.requests, tokens=w.tokens, reset_ms=w.reset_ms)
        for h, w in zip(reservation.limits, windows, strict=True)
    ]
    denial = next(filter(None, map(rate_denial, reservation.limits, seen)), None)
    counters = [state.counter(workspace, budget.counter) for budget in reservation.budgets]
    for budget, counter in zip(reservation.budgets, counters, strict=True):
        if budget_denied(budget, counter.spend + counter.reserved):
            denial = denial or Denial(kind="budget", ref=budget.budget_id)
    if reservation.wallet is not None:
        wallet = state.wallet(workspace)
        if wallet.prepaid and wallet_denied(
            wallet.balance - wallet.reserved, reservation.wallet.amount
        ):
            denial = denial or Denial(kind="wallet", ref=workspace)
    spend = tuple(counter.spend for counter in counters)
    if denial is not None:
        return ReserveOutcome(granted=False, denial=denial, spend=spend, windows=tuple(seen))
    granted = tuple(map(window_granted, reservation.limits, seen))
    for hold, window in zip(reservation.limits, windows, strict=True):
        _add_entry(state, window, hold.limiter, reservation.id, hold.tokens)
    for budget, counter in zip(reservation.budgets, counters, strict=True):
        counter.reserved += budget.amount
        counter.added += budget.amount
    if reservation.wallet is not None:
        wallet = state.wallet(workspace)
        wallet.reserved += reservation.wallet.amount
        wallet.added += reservation.wallet.amount
    kept.append(
        (reservation.id, workspace, state.now + reservation.ttl_ms, _encoder.encode(reservation))
    )
    return ReserveOutcome(granted=True, spend=spend, windows=granted)


def _add_entry(state: _BatchState, window: _Window, limiter: str, member: str, tokens: int) -> None:
    """One window entry per granted reservation; the same reservation id twice counts once."""
    window.reset_ms = window.reset_ms or WINDOW_MS
    added = state.db.execute(
        "INSERT OR IGNORE INTO rate_entries (limiter, member, ts, tokens) VALUES (?, ?, ?, ?)",
        (limiter, member, state.now, tokens),
    ).rowcount
    if added:
        window.requests += 1
        window.tokens += tokens
        window.added_requests += 1
        window.added_tokens += tokens
