"""A tiny pure-Python reference model of the ledger (``gateway/store/ledger.py``).

No clock: the tests that drive it run well inside one 60 s window, so window entries never
age out, and a reservation "expires" only when the test made it with ``SHORT_TTL_MS`` and then
waited longer than that (the driver sleeps right after such a reserve). Everything else is
the docstring of ``ledger.py`` read literally, one step at a time, with plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.store.ledger import (
    ALERT_LEVELS,
    Alert,
    Denial,
    Reservation,
    Settlement,
)

SHORT_TTL_MS = 1
"""A reservation made with this TTL has expired by the driver's next operation."""


@dataclass
class Counter:
    spend: int = 0
    reserved: int = 0
    alerts: set[int] = field(default_factory=set)


@dataclass
class Wallet:
    balance: int = 0
    reserved: int = 0
    prepaid: bool = False


@dataclass(frozen=True)
class ModelOutcome:
    """What the model can predict of a ``ReserveOutcome`` (the times are the store's)."""

    granted: bool
    denial: tuple[str, str] | None
    spend: tuple[int, ...]
    windows: tuple[tuple[int, int], ...]
    """(requests, tokens) of each rate hold's window after the operation."""


@dataclass
class LedgerModel:
    counters: dict[tuple[str, str], Counter] = field(default_factory=dict)
    wallets: dict[str, Wallet] = field(default_factory=dict)
    windows: dict[str, dict[str, int]] = field(default_factory=dict)
    held: dict[str, Reservation] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)

    def counter(self, workspace_id: str, name: str) -> Counter:
        return self.counters.setdefault((workspace_id, name), Counter())

    def wallet(self, workspace_id: str) -> Wallet:
        return self.wallets.setdefault(workspace_id, Wallet())

    def window(self, limiter: str) -> dict[str, int]:
        return self.windows.setdefault(limiter, {})

    # --- operations ---------------------------------------------------------------------

    def add_credits(self, workspace_id: str, amount: int) -> None:
        wallet = self.wallet(workspace_id)
        wallet.balance += amount
        wallet.prepaid = True

    def _release(self, reservation: Reservation) -> None:
        for hold in reservation.budgets:
            counter = self.counter(reservation.workspace_id, hold.counter)
            counter.reserved = max(0, counter.reserved - hold.amount)
        if reservation.wallet is not None:
            wallet = self.wallet(reservation.workspace_id)
            wallet.reserved = max(0, wallet.reserved - reservation.wallet.amount)
        del self.held[reservation.id]

    def reserve(self, r: Reservation) -> ModelOutcome:
        ws = r.workspace_id
        # 1. expired reservations of the workspace give their holds back
        for other in list(self.held.values()):
            if other.workspace_id == ws and other.ttl_ms <= SHORT_TTL_MS:
                self._release(other)
        denial: tuple[str, str] | None = None
        # 2. rate windows
        windows = []
        for hold in r.limits:
            entries = self.window(hold.limiter)
            requests, tokens = len(entries), sum(entries.values())
            windows.append((requests, tokens))
            if denial is None:
                if hold.rpm is not None and requests >= hold.rpm:
                    denial = ("rpm", hold.limiter)
                elif hold.tpm is not None and tokens + hold.tokens > hold.tpm:
                    denial = ("tpm", hold.limiter)
        # 3. budgets
        spend = []
        for hold in r.budgets:
            counter = self.counter(ws, hold.counter)
            spend.append(counter.spend)
            used = counter.spend + counter.reserved
            over = used >= hold.threshold or used + hold.amount > hold.threshold
            if denial is None and hold.enforce and over:
                denial = ("budget", hold.budget_id)
        # 4. wallet
        if denial is None and r.wallet is not None:
            wallet = self.wallet(ws)
            free = wallet.balance - wallet.reserved
            if wallet.prepaid and (free <= 0 or free - r.wallet.amount < 0):
                denial = ("wallet", ws)
        if denial is not None:
            return ModelOutcome(False, denial, tuple(spend), tuple(windows))
        # 5. granted
        for n, hold in enumerate(r.limits):
            self.window(hold.limiter)[r.id] = hold.tokens
            requests, tokens = windows[n]
            windows[n] = (requests + 1, tokens + hold.tokens)
        for hold in r.budgets:
            self.counter(ws, hold.counter).reserved += hold.amount
        if r.wallet is not None:
            self.wallet(ws).reserved += r.wallet.amount
        self.held[r.id] = r
        return ModelOutcome(True, None, tuple(spend), tuple(windows))

    def commit(self, s: Settlement) -> list[Alert]:
        record = s.record
        ws = record.workspace_id
        if record.request_id in self.committed:
            return []
        self.committed.add(record.request_id)
        if s.reservation_id is not None and s.reservation_id in self.held:
            self._release(self.held[s.reservation_id])
        alerts = []
        for debit in s.budgets:
            counter = self.counter(ws, debit.counter)
            counter.spend += debit.amount
            for level in ALERT_LEVELS:
                if level not in counter.alerts and counter.spend * 100 >= level * debit.limit:
                    counter.alerts.add(level)
                    alerts.append(
                        Alert(
                            workspace_id=ws,
                            budget_id=debit.budget_id,
                            counter=debit.counter,
                            percent=level,
                            spend=counter.spend,
                            limit=debit.limit,
                        )
                    )
        wallet = self.wallet(ws)
        if s.wallet and wallet.prepaid:
            wallet.balance = max(0, wallet.balance - s.wallet)
        if s.reservation_id is not None:
            for actual in s.tokens:
                entries = self.window(actual.limiter)
                if s.reservation_id in entries:
                    entries[s.reservation_id] = actual.tokens
        return alerts


def denial_of(denial: Denial | None) -> tuple[str, str] | None:
    return None if denial is None else (denial.kind, denial.ref)
