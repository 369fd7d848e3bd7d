"""200 reservations at once against one limit admit exactly what fits (SPEC §7: "spend is
exact under concurrency across gateway processes"). Redis: coroutines gathered over four store
instances (four gateway processes' clients); SQLite: 16 threads on one file."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from gateway.store import Store
from gateway.store.ledger import RateHold, Reservation, ReserveOutcome
from gateway.store.redis import RedisStore
from store.conftest import backend_url
from store.factories import hold, new_id, reservation

CALLS = 200
DOLLAR = 1_000_000


@dataclass(frozen=True)
class Case:
    build: Callable[[str, str], Reservation]
    setup_credits: int | None
    admitted: int
    kind: str


CASES = {
    # $1 → threshold $0.90: 90 holds of 10 000 micro-dollars.
    "budget": Case(
        lambda ws, bid: reservation(ws, budgets=(hold(bid, 10_000, limit=DOLLAR),)),
        None,
        90,
        "budget",
    ),
    # 555 000 prepaid: 55 holds of 10 000 fit, the 56th would leave it negative.
    "wallet": Case(lambda ws, bid: reservation(ws, wallet=10_000), 555_000, 55, "wallet"),
    "rpm": Case(
        lambda ws, bid: reservation(ws, limits=(RateHold(limiter=f"key:{bid}", rpm=100),)),
        None,
        100,
        "rpm",
    ),
    # 1 000 tokens a minute, 7 per request: 142 × 7 = 994, a 143rd would make 1 001.
    "tpm": Case(
        lambda ws, bid: reservation(
            ws, limits=(RateHold(limiter=f"workspace:{ws}", tpm=1_000, tokens=7),)
        ),
        None,
        142,
        "tpm",
    ),
}


def gather_redis(
    store: RedisStore, url: str, loop: asyncio.AbstractEventLoop, batch: list[Reservation]
) -> list[ReserveOutcome]:
    peers = [store, *(RedisStore(url) for _ in range(3))]

    async def all_at_once() -> list[ReserveOutcome]:
        calls = [peers[n % len(peers)].reserve(r) for n, r in enumerate(batch)]
        return list(await asyncio.gather(*calls))

    try:
        return loop.run_until_complete(all_at_once())
    finally:
        for peer in peers[1:]:
            peer.close()


def threads_sqlite(store: Store, batch: list[Reservation]) -> list[ReserveOutcome]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda r: asyncio.run(store.reserve(r)), batch))


@pytest.mark.parametrize("case", list(CASES))
def test_concurrent_reserves_admit_exactly_what_fits(
    store: Store, loop: asyncio.AbstractEventLoop, request: pytest.FixtureRequest, case: str
) -> None:
    spec = CASES[case]
    ws, bid = new_id("ws"), new_id("bud")
    if spec.setup_credits is not None:
        store.add_credits(ws, spec.setup_credits)
    batch = [spec.build(ws, bid) for _ in range(CALLS)]
    if isinstance(store, RedisStore):
        url = backend_url(request.node.callspec.params["store"], request)
        outcomes = gather_redis(store, url, loop, batch)
    else:
        outcomes = threads_sqlite(store, batch)
    granted = [o for o in outcomes if o.granted]
    assert len(granted) == spec.admitted
    assert {o.denial.kind for o in outcomes if o.denial is not None} == {spec.kind}
    if case == "wallet":
        assert store.get_billing(ws).reserved_microdollars == 550_000
    if case == "rpm":
        assert max(o.windows[0].requests for o in outcomes) == 100
