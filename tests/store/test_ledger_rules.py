"""The ledger's rules (``gateway/store/ledger.py``, SPEC §7) on exact, hand-made examples."""

from __future__ import annotations

import time

import pytest

from gateway.store import Store
from gateway.store.ledger import (
    WINDOW_MS,
    Alert,
    RateHold,
    TokenActual,
    enforcement_threshold,
)
from store.conftest import Reserve
from store.factories import debit, hold, new_id, reservation, settlement

DOLLAR = 1_000_000


def test_threshold_admits_exactly_90_ten_cent_requests_of_one_dollar(
    store: Store, reserve: Reserve
) -> None:
    """$1 limit → threshold $0.90; 10 000-micro holds: 90 fit, the 91st would pass it."""
    ws, bid = new_id("ws"), new_id("bud")
    outcomes = [
        reserve(reservation(ws, budgets=(hold(bid, 10_000, limit=DOLLAR),))) for _ in range(100)
    ]
    granted = [o.granted for o in outcomes]
    assert granted == [True] * 90 + [False] * 10
    denial = outcomes[90].denial
    assert denial is not None
    assert (denial.kind, denial.ref, denial.retry_after_ms) == ("budget", bid, 0)
    assert all(o.spend == (0,) for o in outcomes), "spend is the settled amount, not holds"


def test_threshold_counts_settled_spend(store: Store, reserve: Reserve) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    granted = 0
    for _ in range(100):
        r = reservation(ws, budgets=(hold(bid, 10_000, limit=DOLLAR),))
        if reserve(r).granted:
            granted += 1
            store.commit([settlement(ws, r.id, debits=(debit(bid, 10_000, limit=DOLLAR),))])
    assert granted == 90
    assert store.budget_spend(ws, [f"{bid}@2026-01", "never@2026-01"]) == [900_000, 0]
    last = reserve(reservation(ws, budgets=(hold(bid, 1, limit=DOLLAR),)))
    assert (last.granted, last.spend) == (False, (900_000,))


def test_threshold_is_ten_dollars_below_large_limits() -> None:
    assert enforcement_threshold(1_000 * DOLLAR) == 990 * DOLLAR
    assert enforcement_threshold(50 * DOLLAR) == 45 * DOLLAR


def test_unenforced_budget_never_denies_but_still_holds(store: Store, reserve: Reserve) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    held = hold(bid, 600_000, limit=DOLLAR, enforce=False)
    assert all(reserve(reservation(ws, budgets=(held,))).granted for _ in range(3))
    enforced = reserve(reservation(ws, budgets=(hold(bid, 1, limit=DOLLAR),)))
    assert enforced.granted is False, "the unenforced holds count against the same counter"


def test_rpm_admits_exactly_the_limit_then_says_when_to_retry(
    store: Store, reserve: Reserve
) -> None:
    ws = new_id("ws")
    limiter = f"key:{new_id('key')}"
    limits = (RateHold(limiter=limiter, rpm=100),)
    outcomes = [reserve(reservation(ws, limits=limits)) for _ in range(101)]
    assert [o.granted for o in outcomes] == [True] * 100 + [False]
    denial = outcomes[100].denial
    assert denial is not None
    assert (denial.kind, denial.ref) == ("rpm", limiter)
    assert 0 < denial.retry_after_ms <= WINDOW_MS
    window = outcomes[100].windows[0]
    assert (window.limiter, window.requests) == (limiter, 100)
    assert 0 < window.reset_ms <= WINDOW_MS
    first = outcomes[0].windows[0]
    assert (first.requests, first.tokens, first.reset_ms) == (1, 0, WINDOW_MS)


def test_tpm_counts_tokens_and_commit_sets_the_actual_count(store: Store, reserve: Reserve) -> None:
    ws = new_id("ws")
    limiter = f"workspace:{ws}"
    limits = (RateHold(limiter=limiter, tpm=150, tokens=100),)
    first = reservation(ws, limits=limits)
    assert reserve(first).granted
    denied = reserve(reservation(ws, limits=limits))
    assert denied.denial is not None
    assert denied.denial.kind == "tpm"
    assert 0 < denied.denial.retry_after_ms <= WINDOW_MS
    store.commit([settlement(ws, first.id, tokens=(TokenActual(limiter=limiter, tokens=10),))])
    again = reserve(reservation(ws, limits=limits))
    assert again.granted
    assert (again.windows[0].requests, again.windows[0].tokens) == (2, 110)


def test_tpm_over_the_limit_alone_waits_a_whole_window(store: Store, reserve: Reserve) -> None:
    ws = new_id("ws")
    outcome = reserve(reservation(ws, limits=(RateHold(limiter="key:k", tpm=10, tokens=11),)))
    assert outcome.denial is not None
    assert (outcome.denial.kind, outcome.denial.retry_after_ms) == ("tpm", WINDOW_MS)
    assert outcome.windows[0].reset_ms == 0


def test_denials_report_in_step_order_and_change_nothing(store: Store, reserve: Reserve) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    store.add_credits(ws, 1_000)
    limits = (RateHold(limiter="key:a", rpm=5), RateHold(limiter="key:b", rpm=1))
    assert reserve(reservation(ws, limits=limits[1:])).granted
    before = (store.get_billing(ws), store.budget_spend(ws, [f"{bid}@2026-01"]))
    over_everything = reservation(
        ws, budgets=(hold(bid, 2 * DOLLAR, limit=DOLLAR),), wallet=5_000, limits=limits
    )
    outcome = reserve(over_everything)
    assert outcome.denial is not None
    assert (outcome.denial.kind, outcome.denial.ref) == ("rpm", "key:b")
    assert [(w.limiter, w.requests) for w in outcome.windows] == [("key:a", 0), ("key:b", 1)]
    assert (store.get_billing(ws), store.budget_spend(ws, [f"{bid}@2026-01"])) == before
    budget_first = reserve(reservation(ws, budgets=over_everything.budgets, wallet=5_000))
    assert budget_first.denial is not None
    assert budget_first.denial.kind == "budget"
    wallet_last = reserve(reservation(ws, wallet=5_000))
    assert wallet_last.denial is not None
    assert (wallet_last.denial.kind, wallet_last.denial.ref) == ("wallet", ws)
    assert reserve(reservation(ws, limits=limits[:1])).windows[0].requests == 1
    assert store.get_billing(ws) == before[0]


def test_wallet_prepaid_denies_at_zero_and_never_goes_negative(
    store: Store, reserve: Reserve
) -> None:
    ws = new_id("ws")
    assert reserve(reservation(ws, wallet=10**9)).granted, "postpaid: never denied"
    ws = new_id("ws")
    store.add_credits(ws, 1_000)
    assert not reserve(reservation(ws, wallet=1_001)).granted
    held = reservation(ws, wallet=1_000)
    assert reserve(held).granted
    assert store.get_billing(ws).reserved_microdollars == 1_000
    assert not reserve(reservation(ws, wallet=0)).granted, "nothing free: balance - reserved = 0"
    store.commit([settlement(ws, held.id, wallet=5_000)])
    billing = store.get_billing(ws)
    assert (billing.balance_microdollars, billing.reserved_microdollars) == (0, 0)
    assert not reserve(reservation(ws, wallet=1)).granted


def test_postpaid_wallet_is_never_debited(store: Store, reserve: Reserve) -> None:
    ws = new_id("ws")
    held = reservation(ws, wallet=700)
    assert reserve(held).granted
    assert store.get_billing(ws).reserved_microdollars == 700
    store.commit([settlement(ws, held.id, wallet=700)])
    billing = store.get_billing(ws)
    assert (billing.balance_microdollars, billing.reserved_microdollars, billing.tier) == (
        0,
        0,
        "postpaid",
    )


def test_commit_is_idempotent(store: Store, reserve: Reserve) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    store.add_credits(ws, DOLLAR)
    r = reservation(ws, budgets=(hold(bid, 400_000, limit=DOLLAR),), wallet=400_000)
    assert reserve(r).granted
    done = settlement(ws, r.id, debits=(debit(bid, 300_000, limit=DOLLAR),), wallet=300_000)
    assert store.commit([done]) == []
    after = (store.get_billing(ws), store.budget_spend(ws, [f"{bid}@2026-01"]))
    assert after[0].balance_microdollars == 700_000
    assert after[0].reserved_microdollars == 0
    assert store.commit([done, done]) == []
    assert (store.get_billing(ws), store.budget_spend(ws, [f"{bid}@2026-01"])) == after
    assert store.list_usage(ws, "") == [done.record]


def test_alerts_fire_once_per_level_with_the_spend_that_crossed_it(store: Store) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    counter = f"{bid}@2026-01"

    def pay(amount: int) -> list[tuple[int, int]]:
        alerts = store.commit([settlement(ws, None, debits=(debit(bid, amount, limit=DOLLAR),))])
        assert all(isinstance(a, Alert) and a.counter == counter for a in alerts)
        assert all((a.workspace_id, a.budget_id, a.limit) == (ws, bid, DOLLAR) for a in alerts)
        return [(a.percent, a.spend) for a in alerts]

    assert pay(499_999) == []
    assert pay(1) == [(50, 500_000)]
    assert pay(100_000) == []
    assert pay(300_000) == [(75, 900_000), (90, 900_000)]
    assert pay(99_999) == []
    assert pay(1) == [(100, 1_000_000)]
    assert pay(500_000) == []


def test_commit_releases_the_holds_of_its_reservation(store: Store, reserve: Reserve) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    store.add_credits(ws, DOLLAR)
    budgets = (hold(bid, 500_000, limit=DOLLAR),)
    first = reservation(ws, budgets=budgets, wallet=600_000)
    assert reserve(first).granted
    assert not reserve(reservation(ws, budgets=budgets)).granted
    store.commit([settlement(ws, first.id, debits=(debit(bid, 1_000, limit=DOLLAR),))])
    assert store.get_billing(ws).reserved_microdollars == 0
    assert reserve(reservation(ws, budgets=budgets, wallet=600_000)).granted


def test_expired_reservations_give_their_holds_back_once(store: Store, reserve: Reserve) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    store.add_credits(ws, DOLLAR)
    budgets = (hold(bid, 800_000, limit=DOLLAR),)
    limits = (RateHold(limiter="key:k", rpm=10, tokens=5),)
    lost = reservation(ws, budgets=budgets, wallet=800_000, limits=limits, ttl_ms=1)
    assert reserve(lost).granted
    time.sleep(0.01)
    assert store.get_billing(ws).reserved_microdollars == 800_000, "swept by the next reserve"
    nxt = reservation(ws, budgets=budgets, wallet=700_000, limits=limits)
    outcome = reserve(nxt)
    assert outcome.granted, "the expired holds were released first"
    assert outcome.windows[0].requests == 2, "rate entries stay until they age out"
    assert store.get_billing(ws).reserved_microdollars == 700_000
    # The lost request settles late: charged, but its holds are not released a second time.
    store.commit([settlement(ws, lost.id, debits=(debit(bid, 10, limit=DOLLAR),), wallet=10)])
    billing = store.get_billing(ws)
    assert (billing.balance_microdollars, billing.reserved_microdollars) == (999_990, 700_000)
    assert store.budget_spend(ws, [f"{bid}@2026-01"]) == [10]


def test_outcome_reports_each_hold_in_request_order(store: Store, reserve: Reserve) -> None:
    ws, b1, b2 = new_id("ws"), new_id("bud"), new_id("bud")
    store.commit([settlement(ws, None, debits=(debit(b2, 77, limit=DOLLAR),))])
    limits = (
        RateHold(limiter="workspace:w", rpm=9, tokens=3),
        RateHold(limiter="key:k", tpm=99, tokens=4),
    )
    outcome = reserve(
        reservation(
            ws, budgets=(hold(b1, 5, limit=DOLLAR), hold(b2, 5, limit=DOLLAR)), limits=limits
        )
    )
    assert outcome.spend == (0, 77)
    assert [(w.limiter, w.requests, w.tokens) for w in outcome.windows] == [
        ("workspace:w", 1, 3),
        ("key:k", 1, 4),
    ]


@pytest.mark.parametrize("amount", [0, 1])
def test_a_wallet_hold_on_an_empty_prepaid_wallet_is_denied(
    store: Store, reserve: Reserve, amount: int
) -> None:
    ws = new_id("ws")
    store.add_credits(ws, 0)
    outcome = reserve(reservation(ws, wallet=amount))
    assert outcome.denial is not None
    assert outcome.denial.kind == "wallet"
