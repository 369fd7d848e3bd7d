"""What the store's ledger operations take and return: reserve before dispatch, commit after.

Every backend implements the same two operations with the same semantics (SPEC §7), and the
shared store suite checks them. Amounts are integers: money in micro-dollars, tokens in tokens,
times in the store's own clock in milliseconds.

``reserve(Reservation) -> ReserveOutcome``, atomically and all-or-nothing:

1. Release the workspace's reservations whose ``expires`` has passed (their budget and wallet
   holds go back; their rate-limit entries stay and age out of the window).
2. Each ``RateHold``: forget window entries older than 60 s. Deny ``rpm`` when the window
   holds ``rpm`` entries already; deny ``tpm`` when its tokens plus ``tokens`` exceed ``tpm``.
   ``retry_after_ms`` is when the oldest entry leaves the window (60 s if there is none).
3. Each ``BudgetHold`` with ``enforce``: deny when ``spend + reserved >= threshold`` or
   ``spend + reserved + amount > threshold``.
4. The ``WalletHold``: deny when the wallet is prepaid and
   ``balance - reserved <= 0`` or ``balance - reserved - amount < 0`` (postpaid: never).
5. Nothing denied: add one window entry per rate hold (member ``Reservation.id``, the store's
   time, ``tokens``), add each amount to the budget's and the wallet's ``reserved``, and keep
   the reservation (its holds) until it is committed or expires.

A denial changes nothing beyond steps 1 and 2's housekeeping (expired reservations released,
old window entries forgotten). The outcome always reports, in the order of the request's holds,
each budget counter's settled ``spend`` and each limiter's window after the operation.

``commit(settlements) -> fired alerts``: each settlement atomically and exactly once (keyed
by its record's ``request_id``; a repeat is ignored, so replaying a spool is safe):
insert the usage record; if its reservation is still held, release the holds and forget it;
add each ``BudgetDebit.amount`` to its counter's ``spend`` and report every alert level
(50/75/90/100 % of ``limit``) the spend reached for the first time in that counter;
subtract ``wallet`` from a prepaid balance (never below zero); set each limiter's window entry
for this request to the actual tokens (if it is still in the window).
"""

from __future__ import annotations

import msgspec

from gateway.store.records import UsageRecord

WINDOW_MS = 60_000
ALERT_LEVELS = (50, 75, 90, 100)
MICRO = 1_000_000


class StoreUnavailable(Exception):
    """The store cannot be reached (connection refused or lost, a timeout, a failover in
    progress); the gateway applies its configured fail mode (``store_unavailable``)."""


class StoreFault(Exception):
    """The store answered, with an error that is no outage (a script or data error): a bug or
    a misconfiguration, answered 500 and logged; it never applies the ``open`` fail mode."""


class StoreBusy(Exception):
    """Every connection to the store is in use and none came free within the configured wait:
    back-pressure from this process, not an outage. Always a 503 with ``Retry-After``, whatever
    the fail mode: ``open`` must never admit ungoverned traffic because the gateway is busy."""


def to_micro(usd: float) -> int:
    """USD → micro-dollars, rounded half up (costs are never negative)."""
    return int(usd * MICRO + 0.5)


def enforcement_threshold(limit_micro: int) -> int:
    """SPEC §7: ``limit − min(10 USD, 10 % of limit)``."""
    return limit_micro - min(10 * MICRO, limit_micro // 10)


class BudgetHold(msgspec.Struct, frozen=True, kw_only=True):
    budget_id: str
    counter: str
    """The budget's counter for one period, ``<budget id>@<period key>``."""
    threshold: int
    amount: int
    enforce: bool = True


class WalletHold(msgspec.Struct, frozen=True, kw_only=True):
    amount: int


class RateHold(msgspec.Struct, frozen=True, kw_only=True):
    limiter: str
    """``key:<key id>`` or ``workspace:<workspace id>``."""
    rpm: int | None = None
    tpm: int | None = None
    tokens: int = 0


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    workspace_id: str
    ttl_ms: int
    budgets: tuple[BudgetHold, ...] = ()
    wallet: WalletHold | None = None
    limits: tuple[RateHold, ...] = ()


class Denial(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    """``rpm``, ``tpm``, ``budget`` or ``wallet``."""
    ref: str
    """The limiter, the budget id, or the workspace id (wallet)."""
    retry_after_ms: int = 0


class WindowState(msgspec.Struct, frozen=True, kw_only=True):
    limiter: str
    requests: int
    tokens: int
    reset_ms: int
    """Until the oldest entry leaves the window (0 when the window is empty)."""


class ReserveOutcome(msgspec.Struct, frozen=True, kw_only=True):
    granted: bool
    denial: Denial | None = None
    spend: tuple[int, ...] = ()
    """Settled spend of each ``BudgetHold``'s counter, in order."""
    windows: tuple[WindowState, ...] = ()
    """Each ``RateHold``'s window, in order."""


class BudgetDebit(msgspec.Struct, frozen=True, kw_only=True):
    budget_id: str
    counter: str
    amount: int
    limit: int


class TokenActual(msgspec.Struct, frozen=True, kw_only=True):
    limiter: str
    tokens: int


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """One request's usage record and what it actually cost; self-contained, so it can be
    committed after its reservation expired, or replayed from a spool by another process."""

    record: UsageRecord
    reservation_id: str | None = None
    budgets: tuple[BudgetDebit, ...] = ()
    wallet: int = 0
    tokens: tuple[TokenActual, ...] = ()


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    workspace_id: str
    budget_id: str
    counter: str
    percent: int
    spend: int
    limit: int


# -- the rules of ``reserve``, shared by every ledger that decides in Python ---------------------


def rate_denial(hold: RateHold, window: WindowState) -> Denial | None:
    """Step 2 for one rate hold, against its window before this request."""
    retry = window.reset_ms or WINDOW_MS
    if hold.rpm is not None and window.requests >= hold.rpm:
        return Denial(kind="rpm", ref=hold.limiter, retry_after_ms=retry)
    if hold.tpm is not None and window.tokens + hold.tokens > hold.tpm:
        return Denial(kind="tpm", ref=hold.limiter, retry_after_ms=retry)
    return None


def budget_denied(hold: BudgetHold, used: int) -> bool:
    """Step 3: ``used`` is the counter's settled spend plus what is reserved on it."""
    return hold.enforce and (used >= hold.threshold or used + hold.amount > hold.threshold)


def wallet_denied(free: int, amount: int) -> bool:
    """Step 4 for a prepaid wallet: ``free`` is its balance less what is reserved on it."""
    return free <= 0 or free - amount < 0


def window_granted(hold: RateHold, window: WindowState) -> WindowState:
    """Step 5: the window a granted request reports, its own entry included."""
    return WindowState(
        limiter=hold.limiter,
        requests=window.requests + 1,
        tokens=window.tokens + hold.tokens,
        reset_ms=window.reset_ms or WINDOW_MS,
    )
