"""Random sequences of reserve, commit, replay, top-up and expiry leave each backend exactly
where the reference model (``ledger_model.py``) says: the same decisions, alerts, settled
spend, holds and balance, after every step."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store import Store
from gateway.store.ledger import WINDOW_MS, RateHold, ReserveOutcome, Settlement, TokenActual
from gateway.store.redis import RedisStore
from store.conftest import Reserve
from store.factories import debit, hold, new_id, reservation, settlement
from store.ledger_model import SHORT_TTL_MS, LedgerModel, ModelOutcome, denial_of

EXPIRY_WAIT_S = 0.005


@dataclass(frozen=True)
class Setup:
    budgets: list[tuple[int, bool]]
    """(limit, enforce) of each budget."""
    credits: int | None
    """A first top-up (prepaid wallet), or None: postpaid."""
    key_rpm: int | None
    key_tpm: int | None
    ws_rpm: int | None
    ws_tpm: int | None


@dataclass(frozen=True)
class Reserve_:
    amount: int
    wallet: int | None
    tokens: int
    limited: bool
    short: bool


@dataclass(frozen=True)
class Commit:
    pick: int | None
    """Which earlier reservation this settles (modulo their count); None: none (refused)."""
    cost: int
    tokens: int
    charge_wallet: bool


@dataclass(frozen=True)
class Replay:
    pick: int


@dataclass(frozen=True)
class Credit:
    amount: int


LIMITS = st.sampled_from([None, 1, 2, 3, 5, 8])
TOKEN_LIMITS = st.sampled_from([None, 40, 100, 300])
SETUPS = st.builds(
    Setup,
    budgets=st.lists(
        st.tuples(st.sampled_from([0, 50_000, 200_000, 1_000_000]), st.booleans()), max_size=2
    ),
    credits=st.none() | st.integers(0, 300_000),
    key_rpm=LIMITS,
    key_tpm=TOKEN_LIMITS,
    ws_rpm=LIMITS,
    ws_tpm=TOKEN_LIMITS,
)
RESERVES = st.builds(
    Reserve_,
    amount=st.integers(0, 120_000),
    wallet=st.none() | st.integers(0, 120_000),
    tokens=st.integers(0, 80),
    limited=st.booleans(),
    short=st.sampled_from([False, False, False, True]),
)
OPS = st.one_of(
    RESERVES,
    RESERVES,
    st.builds(
        Commit,
        pick=st.none() | st.integers(0, 50),
        cost=st.integers(0, 150_000),
        tokens=st.integers(0, 80),
        charge_wallet=st.booleans(),
    ),
    st.builds(Replay, pick=st.integers(0, 50)),
    st.builds(Credit, amount=st.integers(0, 200_000)),
)


def check_outcome(got: ReserveOutcome, want: ModelOutcome) -> None:
    assert got.granted is want.granted
    assert denial_of(got.denial) == want.denial
    assert got.spend == want.spend
    assert [(w.requests, w.tokens) for w in got.windows] == list(want.windows)
    for window in got.windows:
        assert (0 < window.reset_ms <= WINDOW_MS) if window.requests else window.reset_ms == 0
    if got.denial is not None:
        timed = got.denial.kind in ("rpm", "tpm")
        assert (
            (0 < got.denial.retry_after_ms <= WINDOW_MS)
            if timed
            else (got.denial.retry_after_ms == 0)
        )


class Driver:
    """Applies one sequence to the store and the model side by side."""

    def __init__(self, store: Store, reserve: Reserve, setup: Setup) -> None:
        self.store, self.reserve_call, self.setup = store, reserve, setup
        self.model = LedgerModel()
        self.ws = new_id("ws")
        self.budgets = [(new_id("bud"), limit, enforce) for limit, enforce in setup.budgets]
        self.reserved: list[str] = []
        self.committed: list[Settlement] = []
        if setup.credits is not None:
            self.credit(setup.credits)

    def limits(self, tokens: int) -> tuple[RateHold, ...]:
        s = self.setup
        return (
            RateHold(limiter=f"key:k-{self.ws}", rpm=s.key_rpm, tpm=s.key_tpm, tokens=tokens),
            RateHold(limiter=f"workspace:{self.ws}", rpm=s.ws_rpm, tpm=s.ws_tpm, tokens=tokens),
        )

    def credit(self, amount: int) -> None:
        self.store.add_credits(self.ws, amount)
        self.model.add_credits(self.ws, amount)

    def reserve(self, op: Reserve_) -> None:
        r = reservation(
            self.ws,
            budgets=tuple(
                hold(bid, op.amount, limit=limit, enforce=enforce)
                for bid, limit, enforce in self.budgets
            ),
            wallet=op.wallet,
            limits=self.limits(op.tokens) if op.limited else (),
            ttl_ms=SHORT_TTL_MS if op.short else 15 * 60 * 1000,
        )
        # Step 1 (the sweep of expired holds) happens whatever the outcome; with nothing to
        # sweep, a denied reserve must leave everything as it was.
        sweeping = any(held.ttl_ms <= SHORT_TTL_MS for held in self.model.held.values())
        before = self.state()
        got = self.reserve_call(r)
        check_outcome(got, self.model.reserve(r))
        if not got.granted and not sweeping:
            assert self.state() == before, "a denial changes nothing"
        self.reserved.append(r.id)
        if op.short:
            time.sleep(EXPIRY_WAIT_S)

    def commit(self, op: Commit) -> None:
        rid = (
            None
            if op.pick is None or not self.reserved
            else self.reserved[op.pick % len(self.reserved)]
        )
        s = settlement(
            self.ws,
            rid,
            debits=tuple(debit(bid, op.cost, limit=limit) for bid, limit, _ in self.budgets),
            wallet=op.cost if op.charge_wallet else 0,
            tokens=tuple(TokenActual(limiter=h.limiter, tokens=op.tokens) for h in self.limits(0)),
        )
        assert self.store.commit([s]) == self.model.commit(s)
        self.committed.append(s)

    def replay(self, op: Replay) -> None:
        if not self.committed:
            return
        before = self.state()
        assert self.store.commit([self.committed[op.pick % len(self.committed)]]) == []
        assert self.state() == before, "a replayed settlement changes nothing"

    def state(self) -> tuple[object, ...]:
        billing = self.store.get_billing(self.ws)
        counters = [f"{bid}@2026-01" for bid, _, _ in self.budgets]
        return (
            billing.balance_microdollars,
            billing.reserved_microdollars,
            billing.tier,
            tuple(self.store.budget_spend(self.ws, counters)),
        )

    def check_state(self) -> None:
        wallet = self.model.wallet(self.ws)
        spend = tuple(self.model.counter(self.ws, f"{b}@2026-01").spend for b, _, _ in self.budgets)
        tier = "prepaid" if wallet.prepaid else "postpaid"
        assert self.state() == (wallet.balance, wallet.reserved, tier, spend)
        assert wallet.balance >= 0

    def apply(self, op: object) -> None:
        if isinstance(op, Reserve_):
            self.reserve(op)
        elif isinstance(op, Commit):
            self.commit(op)
        elif isinstance(op, Replay):
            self.replay(op)
        elif isinstance(op, Credit):
            self.credit(op.amount)
        self.check_state()


def test_random_sequences_match_the_model(store: Store, reserve: Reserve) -> None:
    examples = 25 if isinstance(store, RedisStore) else 60

    @settings(max_examples=examples, deadline=None)
    @given(setup=SETUPS, ops=st.lists(OPS, min_size=8, max_size=40))
    def check(setup: Setup, ops: list[object]) -> None:
        driver = Driver(store, reserve, setup)
        for op in ops:
            driver.apply(op)

    check()
