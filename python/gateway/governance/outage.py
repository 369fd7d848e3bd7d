"""What the ``open`` fail mode admits while the store is unreachable: a bounded allowance.

Failing open must not mean failing ungoverned. While reservations cannot reach the store, each
gateway process decides them itself, by the ledger's own rules (``store/ledger.py``), against
the last state of the store it read (the cached ``Rules``: each budget's settled spend and the
wallet's free balance, read at most ``CACHE_TTL_S`` before the outage) plus everything it has
admitted itself since the outage began. Rate limits are counted in a local window.

So, per process, a budget admits at most its threshold less the spend it last read, a prepaid
wallet at most its last free balance, and a rate limit at most its limit per window; with P
gateway processes the overshoot is bounded by (P − 1) times the headroom each had when the
outage began, plus what was in flight and unsettled then (docs/governance.md, "When the store
is down"). Usage records are spooled meanwhile and settled when the store is back, so the
store's counters end exact; the first reservation the store grants again ends the outage here.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from gateway.governance.rules import Rules
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

_WINDOW_S = WINDOW_MS / 1000


class OutageLedger:
    """This process's reservations while the store is unreachable (one event loop uses it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._spent: dict[str, int] = {}
        self._wallet: dict[str, int] = {}
        self._windows: dict[str, deque[tuple[float, int]]] = {}

    @property
    def active(self) -> bool:
        """Whether anything was admitted here since the outage began."""
        return bool(self._spent or self._wallet or self._windows)

    def reset(self) -> None:
        """The store answers again: its counters are the truth from now on."""
        self._spent.clear()
        self._wallet.clear()
        self._windows.clear()

    def reserve(self, reservation: Reservation, rules: Rules) -> ReserveOutcome:
        """``Store.reserve``'s decision and outcome (``store/ledger.py``), made here."""
        now = self._clock()
        windows, denial = self._windows_now(reservation, now)
        spend = tuple(rules.spend.get(b.counter, 0) for b in reservation.budgets)
        denial = (
            denial
            or self._budget_denial(reservation, spend)
            or self._wallet_denial(reservation, rules)
        )
        if denial is not None:
            return ReserveOutcome(granted=False, denial=denial, spend=spend, windows=windows)
        for limit in reservation.limits:
            self._windows.setdefault(limit.limiter, deque()).append((now, limit.tokens))
        for budget in reservation.budgets:
            self._spent[budget.counter] = self._spent.get(budget.counter, 0) + budget.amount
        if reservation.wallet is not None:
            ws = reservation.workspace_id
            self._wallet[ws] = self._wallet.get(ws, 0) + reservation.wallet.amount
        return ReserveOutcome(
            granted=True,
            spend=spend,
            windows=tuple(map(window_granted, reservation.limits, windows)),
        )

    def _windows_now(
        self, reservation: Reservation, now: float
    ) -> tuple[tuple[WindowState, ...], Denial | None]:
        """Each rate hold's local window (entries older than 60 s dropped), and the first
        limit it would break."""
        states: list[WindowState] = []
        denial: Denial | None = None
        for limit in reservation.limits:
            window = self._windows.get(limit.limiter) or deque()
            while window and window[0][0] <= now - _WINDOW_S:
                window.popleft()
            tokens = sum(t for _, t in window)
            reset_ms = (
                min(WINDOW_MS, max(1, math.ceil((window[0][0] + _WINDOW_S - now) * 1000)))
                if window
                else 0
            )
            state = WindowState(
                limiter=limit.limiter, requests=len(window), tokens=tokens, reset_ms=reset_ms
            )
            denial = denial or rate_denial(limit, state)
            states.append(state)
        return tuple(states), denial

    def _budget_denial(self, reservation: Reservation, spend: tuple[int, ...]) -> Denial | None:
        for budget, settled in zip(reservation.budgets, spend, strict=True):
            if budget_denied(budget, settled + self._spent.get(budget.counter, 0)):
                return Denial(kind="budget", ref=budget.budget_id)
        return None

    def _wallet_denial(self, reservation: Reservation, rules: Rules) -> Denial | None:
        ws = reservation.workspace_id
        if reservation.wallet is None:
            return None
        if wallet_denied(rules.wallet_free - self._wallet.get(ws, 0), reservation.wallet.amount):
            return Denial(kind="wallet", ref=ws)
        return None
