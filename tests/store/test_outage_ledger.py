"""The ``open`` fail mode's local ledger (``gateway.governance.outage``) decides as the store
would have: from the snapshot the cached rules hold (each budget's settled spend, the wallet's
free balance), a sequence of reservations gets, one by one, the same decisions, spends and
windows from ``OutageLedger`` as from the reference ledger model (``ledger_model``) seeded with
that snapshot. So what one process admits during an outage is exactly what fits in the
headroom it last saw, and never more.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.governance.outage import OutageLedger
from gateway.governance.rules import Rules
from gateway.store.ledger import WINDOW_MS, RateHold
from store.factories import hold, reservation
from store.ledger_model import LedgerModel, denial_of

WS = "ws_outage"
BUDGETS = ("bud_a", "bud_b")

limits_st = st.tuples(
    st.none() | st.integers(1, 6), st.none() | st.integers(1, 400)
)  # (rpm, tpm) of one limiter
requests_st = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.sampled_from(BUDGETS), st.integers(0, 300)),
            max_size=2,
            unique_by=lambda b: b[0],
        ),
        st.none() | st.integers(0, 300),  # wallet hold
        st.integers(0, 120),  # tokens
    ),
    min_size=1,
    max_size=30,
)


class FixedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=200, deadline=None)
@given(
    budget_rules=st.fixed_dictionaries(
        {b: st.tuples(st.integers(1, 2000), st.booleans(), st.integers(0, 2000)) for b in BUDGETS}
    ),
    wallet_free=st.integers(-50, 1500),
    rate_limits=st.tuples(limits_st, limits_st),
    requests=requests_st,
)
def test_outage_ledger_decides_as_the_store_would_from_the_snapshot(
    budget_rules: dict[str, tuple[int, bool, int]],
    wallet_free: int,
    rate_limits: tuple[tuple[int | None, int | None], tuple[int | None, int | None]],
    requests: list[tuple[list[tuple[str, int]], int | None, int]],
) -> None:
    """``budget_rules``: each budget's (limit, enforce, settled spend in the snapshot)."""
    limits = {b: rule[0] for b, rule in budget_rules.items()}
    enforce = {b: rule[1] for b, rule in budget_rules.items()}
    spent = {b: rule[2] for b, rule in budget_rules.items()}
    key_limits, ws_limits = rate_limits
    model = LedgerModel()
    for budget_id in BUDGETS:
        model.counter(WS, f"{budget_id}@2026-01").spend = spent[budget_id]
    model.add_credits(WS, max(0, wallet_free))
    model.wallet(WS).reserved = max(0, -wallet_free)
    rules = Rules(
        workspace=None,
        budgets=(),
        tier="prepaid",
        spend={f"{b}@2026-01": spent[b] for b in BUDGETS},
        wallet_free=wallet_free,
    )
    clock = FixedClock()
    local = OutageLedger(clock)
    for n, (budgets, wallet, tokens) in enumerate(requests):
        r = reservation(
            WS,
            rid=f"req_{n}",
            budgets=tuple(
                hold(b, amount, limit=limits[b], enforce=enforce[b]) for b, amount in budgets
            ),
            wallet=wallet,
            limits=(
                RateHold(limiter="key:k", rpm=key_limits[0], tpm=key_limits[1], tokens=tokens),
                RateHold(
                    limiter=f"workspace:{WS}", rpm=ws_limits[0], tpm=ws_limits[1], tokens=tokens
                ),
            ),
        )
        want = model.reserve(r)
        got = local.reserve(r, rules)
        assert got.granted is want.granted, (n, got, want)
        assert denial_of(got.denial) == want.denial
        assert got.spend == want.spend
        assert [(w.requests, w.tokens) for w in got.windows] == list(want.windows)
        for window in got.windows:
            assert 0 < window.reset_ms <= WINDOW_MS if window.requests else window.reset_ms == 0
        clock.now += 0.5  # well inside one window


def test_window_entries_age_out_after_a_minute() -> None:
    clock = FixedClock()
    local = OutageLedger(clock)
    rules = Rules(workspace=None, budgets=(), tier="postpaid")
    limit = (RateHold(limiter="key:k", rpm=2, tokens=1),)
    for n in range(2):
        assert local.reserve(reservation(WS, rid=f"a{n}", limits=limit), rules).granted
    refused = local.reserve(reservation(WS, rid="a2", limits=limit), rules)
    assert not refused.granted and refused.denial is not None
    assert refused.denial.kind == "rpm" and 0 < refused.denial.retry_after_ms <= WINDOW_MS
    clock.now += WINDOW_MS / 1000 + 0.01
    assert local.reserve(reservation(WS, rid="a3", limits=limit), rules).granted


def test_reset_forgets_what_was_admitted_locally() -> None:
    local = OutageLedger(FixedClock())
    rules = Rules(workspace=None, budgets=(), tier="postpaid", spend={"bud_a@2026-01": 0})
    r = reservation(WS, budgets=(hold("bud_a", 800, limit=1000),))
    assert local.reserve(r, rules).granted and local.active
    assert not local.reserve(
        reservation(WS, budgets=(hold("bud_a", 800, limit=1000),)), rules
    ).granted
    local.reset()
    assert not local.active
    assert local.reserve(reservation(WS, budgets=(hold("bud_a", 800, limit=1000),)), rules).granted
