"""The usage writer commits hundreds of settlements at once: on SQLite they are applied in
one pass over rows read once (``sqlite_commit_batch.py``). Whatever the batch holds (repeats,
replays, two settlements of one reservation, expired holds, several workspaces), the alerts
and the state must be exactly those of committing the settlements one by one, in order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.ledger import RateHold, Settlement, TokenActual
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_commit_batch import _SIZES, _chunks
from store.factories import debit, hold, new_id, reservation, settlement
from store.ledger_model import LedgerModel

WORKSPACES = {"ws_a": ("bud_a", 200_000), "ws_b": ("bud_b", 60_000)}


def limiters(ws: str, tokens: int) -> tuple[RateHold, ...]:
    return (RateHold(limiter=f"key:{ws}", tpm=10_000, tokens=tokens),)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[tuple[str, int, int | None]], list[object]]:
    """Reservations to make one by one, then the settlement "plans" of one batch:
    (workspace, reservation index or None, cost, tokens, charge wallet) or ("repeat", i)."""
    made = draw(
        st.lists(
            st.tuples(
                st.sampled_from(sorted(WORKSPACES)),
                st.integers(0, 40_000),
                st.none() | st.integers(0, 30_000),
            ),
            max_size=12,
        )
    )
    plans: list[object] = []
    for _ in range(draw(st.integers(1, 30))):
        if plans and draw(st.integers(0, 7)) == 0:
            plans.append(("repeat", draw(st.integers(0, len(plans) - 1))))
            continue
        plans.append(
            (
                draw(st.sampled_from(sorted(WORKSPACES))),
                draw(st.none() | st.integers(0, 20)),
                draw(st.integers(0, 50_000) | st.sampled_from([6_000, 15_000, 30_000])),
                draw(st.integers(0, 90)),
                draw(st.booleans()),
            )
        )
    return made, plans


@settings(max_examples=80, deadline=None)
@given(case=scenario(), credits=st.none() | st.integers(0, 100_000))
def test_a_batch_commits_exactly_as_one_by_one(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[list[tuple[str, int, int | None]], list[object]],
    credits: int | None,
) -> None:
    made, plans = case
    store = SqliteStore(tmp_path_factory.mktemp("commit") / "store.db")
    model = LedgerModel()
    try:
        if credits is not None:
            store.add_credits("ws_b", credits)
            model.add_credits("ws_b", credits)
        held: list[str] = []
        for ws, amount, wallet in made:
            bid, limit = WORKSPACES[ws]
            r = reservation(
                ws,
                budgets=(hold(bid, amount, limit=limit),),
                wallet=wallet,
                limits=limiters(ws, 7),
            )
            granted = asyncio.run(store.reserve(r)).granted
            assert granted == model.reserve(r).granted
            held.append(r.id)
        batch: list[Settlement] = []
        for plan in plans:
            if plan[0] == "repeat":
                batch.append(batch[plan[1]])  # type: ignore[index, misc]
                continue
            ws, pick, cost, tokens, charge = plan  # type: ignore[misc]
            rid = held[pick % len(held)] if pick is not None and held else None
            bid, limit = WORKSPACES[ws]
            batch.append(
                settlement(
                    ws,
                    rid,
                    request_id=new_id("req"),
                    debits=(debit(bid, cost, limit=limit),),
                    wallet=cost if charge else 0,
                    tokens=(TokenActual(limiter=f"key:{ws}", tokens=tokens),) if rid else (),
                )
            )
        want = [alert for s in batch for alert in model.commit(s)]
        assert store.commit(batch) == want
        assert store.commit(batch) == []  # the spool replayed: nothing applies twice
        for ws, (bid, _) in WORKSPACES.items():
            wallet = model.wallet(ws)
            billing = store.get_billing(ws)
            counter = model.counter(ws, f"{bid}@2026-01")
            assert (billing.balance_microdollars, billing.reserved_microdollars) == (
                wallet.balance,
                wallet.reserved,
            )
            assert store.budget_spend(ws, [f"{bid}@2026-01"]) == [counter.spend]
            reserved = store._db.execute(
                "SELECT reserved FROM budget_counters WHERE workspace_id = ?", (ws,)
            ).fetchone()
            assert (reserved[0] if reserved else 0) == counter.reserved
            window = model.window(f"key:{ws}")
            row = store._db.execute(
                "SELECT requests, tokens FROM rate_windows WHERE limiter = ?", (f"key:{ws}",)
            ).fetchone()
            assert (tuple(row) if row else (0, 0)) == (len(window), sum(window.values()))
    finally:
        store.close()


@given(count=st.integers(0, 1_500))
def test_a_batch_is_cut_into_few_statement_shapes_in_order(count: int) -> None:
    """SQLite caches a compiled statement per SQL text: the pieces come in nine lengths only
    (one text per batch length kept ~100 large statements alive), and nothing is lost."""
    items = list(range(count))
    pieces = list(_chunks(items))
    assert [x for piece in pieces for x in piece] == items
    assert {len(piece) for piece in pieces} <= set(_SIZES)
    assert len(pieces) <= count // 256 + len(_SIZES)
