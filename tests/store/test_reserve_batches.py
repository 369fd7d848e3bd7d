"""SQLite decides reservations that wait at the same time in one transaction (group commit):
the outcomes and the state must be exactly those of deciding them one by one, in order, and
the event loop must never wait for the store's lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.ledger import RateHold, Reservation, ReserveOutcome
from gateway.store.sqlite import SqliteStore
from store.factories import hold, reservation
from store.ledger_model import LedgerModel, ModelOutcome, denial_of

WORKSPACES = ("ws_a", "ws_b")
BUDGETS = {"ws_a": ("bud_a", 300_000), "ws_b": ("bud_b", 80_000)}


def check(got: ReserveOutcome, want: ModelOutcome) -> None:
    assert (got.granted, denial_of(got.denial), got.spend) == (
        want.granted,
        want.denial,
        want.spend,
    )
    assert [(w.requests, w.tokens) for w in got.windows] == list(want.windows)


@st.composite
def batches(draw: st.DrawFn) -> list[Reservation]:
    """Reservations over two workspaces sharing nothing and one key limiter each, with
    budgets, prepaid wallets and the odd reservation sent twice."""
    out: list[Reservation] = []
    for _ in range(draw(st.integers(1, 40))):
        if out and draw(st.integers(0, 9)) == 0:
            out.append(draw(st.sampled_from(out)))  # the same reservation sent again
            continue
        ws = draw(st.sampled_from(WORKSPACES))
        bid, limit = BUDGETS[ws]
        limits = (
            RateHold(
                limiter=f"key:{ws}",
                rpm=draw(st.sampled_from([None, 3, 10])),
                tpm=draw(st.sampled_from([None, 100, 400])),
                tokens=draw(st.integers(0, 60)),
            ),
        )
        out.append(
            reservation(
                ws,
                budgets=(hold(bid, draw(st.integers(0, 60_000)), limit=limit),),
                wallet=draw(st.none() | st.integers(0, 50_000)),
                limits=limits if draw(st.booleans()) else (),
            )
        )
    return out


async def reserve_timing_the_loop(store: SqliteStore) -> tuple[float, bool]:
    """Reserve while ticking the loop every 10 ms: the longest gap between ticks, and whether
    the reservation was granted."""
    pending = asyncio.ensure_future(store.reserve(reservation("ws_a")))
    longest, last = 0.0, time.monotonic()
    while not pending.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest, (await pending).granted


async def reserve_all(store: SqliteStore, batch: Sequence[Reservation]) -> list[ReserveOutcome]:
    """Submit every reservation before any is decided, as concurrent requests do."""
    return list(await asyncio.gather(*(store.reserve(r) for r in batch)))


@settings(max_examples=60, deadline=None)
@given(first=batches(), second=batches(), credits=st.integers(0, 400_000))
def test_a_batch_decides_exactly_as_one_by_one(
    tmp_path_factory: pytest.TempPathFactory,
    first: list[Reservation],
    second: list[Reservation],
    credits: int,
) -> None:
    store = SqliteStore(tmp_path_factory.mktemp("batch") / "store.db")
    sizes: list[int] = []
    on_thread, on_loop = store._reserve_batch, store._reserve_now

    def counted(items: Sequence[Reservation]) -> list[ReserveOutcome]:
        sizes.append(len(items))
        return on_thread(items)

    def counted_now(items: Sequence[Reservation]) -> list[ReserveOutcome] | None:
        outcomes = on_loop(items)
        if outcomes is not None:
            sizes.append(len(items))
        return outcomes

    store._reserve_batch = counted  # type: ignore[method-assign]
    store._reserve_now = counted_now  # type: ignore[method-assign]
    model = LedgerModel()
    store.add_credits("ws_b", credits)
    model.add_credits("ws_b", credits)
    try:
        for batch in (first, second):
            got = asyncio.run(reserve_all(store, batch))
            for outcome, r in zip(got, batch, strict=True):
                check(outcome, model.reserve(r))
        for ws in WORKSPACES:
            billing = store.get_billing(ws)
            wallet = model.wallet(ws)
            assert (billing.balance_microdollars, billing.reserved_microdollars) == (
                wallet.balance,
                wallet.reserved,
            )
    finally:
        store.close()
    assert sizes == [len(first), len(second)]  # one transaction per loop iteration


def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_works(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "store.db")
    broken = reservation("ws_a", limits=(RateHold(limiter="key:x", rpm=5),))
    store._db.execute("DROP TABLE rate_entries")

    async def both() -> list[ReserveOutcome | BaseException]:
        return await asyncio.gather(
            store.reserve(broken), store.reserve(reservation("ws_a")), return_exceptions=True
        )

    try:
        assert all(isinstance(r, Exception) for r in asyncio.run(both()))
        assert asyncio.run(store.reserve(reservation("ws_b"))).granted
    finally:
        store.close()


def test_the_event_loop_runs_while_another_thread_holds_the_store(tmp_path: Path) -> None:
    """The usage writer commits under the store's lock; a reserve waiting for that lock must
    not stop the loop (before group commit it blocked the whole worker)."""
    store = SqliteStore(tmp_path / "store.db")
    held = threading.Event()

    def writer() -> None:
        with store._lock:
            held.set()
            time.sleep(0.4)

    async def scenario() -> tuple[float, bool]:
        thread = threading.Thread(target=writer)
        thread.start()
        held.wait()
        longest, granted = await reserve_timing_the_loop(store)
        thread.join()
        return longest, granted

    try:
        longest, granted = asyncio.run(scenario())
    finally:
        store.close()
    assert granted
    assert longest < 0.2, f"the loop stalled for {longest:.3f} s"


def test_reservations_from_several_event_loops_each_get_their_answer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    limiter = RateHold(limiter="key:shared", rpm=30)
    results: list[list[ReserveOutcome]] = []

    def one_loop() -> None:
        batch = [reservation("ws_a", limits=(limiter,)) for _ in range(20)]
        results.append(asyncio.run(reserve_all(store, batch)))

    threads = [threading.Thread(target=one_loop) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        store.close()
    granted = sum(o.granted for outcomes in results for o in outcomes)
    assert [len(outcomes) for outcomes in results] == [20, 20, 20]
    assert granted == 30  # the limiter's rpm, exactly, across the three loops


def test_the_event_loop_runs_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    """Another worker's transaction (here: another connection) makes the loop's attempt fail
    at once; the reservation waits on the reserve thread instead, and is then granted."""
    store = SqliteStore(tmp_path / "store.db")
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.4, lambda: other.execute("COMMIT")).start()

    try:
        longest, granted = asyncio.run(reserve_timing_the_loop(store))
    finally:
        store.close()
        other.close()
    assert granted
    assert longest < 0.2, f"the loop stalled for {longest:.3f} s"
