"""A healthy shared store under real pressure is not an outage (docs/governance.md).

- one gateway with 400 requests in flight on one ``redis-server`` serves them all: a request
  that finds every store connection of its process busy waits for one (back-pressure) instead
  of being refused as if the store were down;
- in ``open`` mode, 500 requests released at once over three gateways against a budget admit
  exactly what fits: only a real outage turns ``open`` on, never a busy pool;
- with ``redis-server`` stopped (SIGSTOP) for seconds, ``/health``, which touches no store,
  still answers at once while requests that need the store wait for it: no store call blocks
  the event loop, on the hot path (new keys, new workspaces) or in the management API;
- an outage of several seconds under load writes a handful of log lines, not one per request;
- in ``open`` mode during a real outage every process goes on enforcing the budget alone, from
  the spend it last read: the overshoot is bounded, and the counters are exact afterwards.

Redis only: the embedded SQLite store is a local file, it has no connection pool to exhaust.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from support.cluster import REQUEST_COST_MICRO, Load, fire, frozen_store, meter_body, statuses
from support.upstream import UpstreamServer

from .conftest import ClusterFactory
from .expect import assert_counts, assert_ledger, assert_refusal, settle_rules


@pytest.mark.timeout(180)
def test_400_in_flight_on_one_gateway_are_all_served(
    clusters: ClusterFactory, meter: UpstreamServer
) -> None:
    cluster = clusters("redis", meter, count=1, name="pressure-closed")
    admin = cluster.admin
    ws = admin.create_workspace("pressure-closed")
    key = admin.create_key(ws, "burst")["key"]
    budget = admin.create_budget(ws, scope_type="workspace", period="daily", limit_usd=100.0)
    settle_rules()

    results = fire(cluster.targets, key, meter_body(), 400, concurrency=400, timeout=120)

    assert_counts(results, {200: 400})
    assert_ledger(
        cluster, ws, key, results, spent_micro=400 * REQUEST_COST_MICRO, budget_id=budget["id"]
    )


@pytest.mark.timeout(180)
def test_open_mode_admits_only_what_fits_when_the_store_is_up(
    clusters: ClusterFactory, meter: UpstreamServer
) -> None:
    """$1.00 at $0.01 a request (the ratio of $0.10 at $0.001): the threshold of $0.90 admits
    exactly 90 of 500 released together over three gateways, and spend stays under $1.00."""
    cluster = clusters(
        "redis", meter, count=3, defaults={"store_unavailable": "open"}, name="pressure-open"
    )
    admin = cluster.admin
    ws = admin.create_workspace("pressure-open")
    key = admin.create_key(ws, "burst")["key"]
    budget = admin.create_budget(ws, scope_type="workspace", period="daily", limit_usd=1.0)
    settle_rules()

    results = fire(cluster.targets, key, meter_body(), 500, concurrency=500, timeout=120)

    assert_counts(results, {200: 90, 402: 410})
    assert_ledger(
        cluster, ws, key, results, spent_micro=90 * REQUEST_COST_MICRO, budget_id=budget["id"]
    )


def _health_latencies(base_url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=30, trust_env=False) as client:
        while not stop.is_set():
            started = time.monotonic()
            client.get(base_url + "/health").raise_for_status()
            out.append(time.monotonic() - started)
            stop.wait(0.05)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_stalled_store_never_stalls_the_event_loop(
    clusters: ClusterFactory, meter: UpstreamServer
) -> None:
    server = clusters.redis()
    cluster = clusters("redis", meter, count=1, server=server, name="pressure-stall")
    admin = cluster.admin
    fresh = []
    for n in range(6):  # keys and workspaces no process has cached yet
        ws = admin.create_workspace(f"stall-{n}")
        fresh.append((ws, admin.create_key(ws, "fresh")["key"]))
    base = cluster.targets[0]
    admin_key = cluster.admin_key

    def need_the_store(index: int) -> None:
        ws, key = fresh[index]
        with httpx.Client(timeout=30, trust_env=False) as client:
            client.post(
                base + "/v1/chat/completions",
                json=meter_body(),
                headers={"Authorization": f"Bearer {key}"},
            )
            client.get(
                f"{base}/v1/workspaces/{ws}/keys", headers={"Authorization": f"Bearer {admin_key}"}
            )

    latencies: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=_health_latencies, args=(base, stop, latencies))
    with frozen_store(cluster, server):
        time.sleep(0.3)
        blocked = [
            threading.Thread(target=need_the_store, args=(i,), daemon=True)
            for i in range(len(fresh))
        ]
        for thread in blocked:
            thread.start()
        time.sleep(0.3)  # they are all waiting for the stopped store now
        prober.start()
        time.sleep(5.0)
        stop.set()
        prober.join(timeout=30)
    for thread in blocked:
        thread.join(timeout=60)

    assert len(latencies) >= 20, latencies
    assert max(latencies) < 0.5, f"/health took up to {max(latencies):.2f} s during the stall"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_an_outage_under_load_is_logged_once_not_per_request(
    clusters: ClusterFactory, meter: UpstreamServer
) -> None:
    server = clusters.redis()
    cluster = clusters("redis", meter, count=1, server=server, name="pressure-log")
    admin = cluster.admin
    ws = admin.create_workspace("pressure-log")
    key = admin.create_key(ws, "steady")["key"]
    admin.create_budget(ws, scope_type="workspace", period="daily", limit_usd=1000.0)
    settle_rules()
    gateway = cluster.gateways[0]

    with Load(cluster.targets, key, meter_body(), threads=8) as load:
        load.wait_for(20)
        before = len(load.results)
        server.stop()  # SIGTERM, by pid: connections are refused from now on
        time.sleep(4.0)
        during = len(load.results) - before

    refused = [r for r in load.results[before:] if r.status == 503]
    assert during >= 50 and len(refused) >= 50, (during, len(refused))
    lines = [line for line in gateway.log_text().splitlines() if "unavailable" in line]
    assert 1 <= len(lines) <= 4, lines


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_open_mode_during_an_outage_admits_at_most_each_process_headroom(
    clusters: ClusterFactory, meter: UpstreamServer
) -> None:
    """With the store down, each of three gateways governs alone from the rules it last read:
    a $1.00 budget (threshold $0.90) admits at most 90 requests per process less what that
    process last saw spent, never all of them; afterwards the store's counter is exact."""
    server = clusters.redis()
    cluster = clusters(
        "redis",
        meter,
        count=3,
        server=server,
        defaults={"store_unavailable": "open"},
        name="pressure-outage",
    )
    admin = cluster.admin
    ws = admin.create_workspace("pressure-outage")
    key = admin.create_key(ws, "burst")["key"]
    budget = admin.create_budget(ws, scope_type="workspace", period="daily", limit_usd=1.0)
    settle_rules()
    primed = fire(cluster.targets, key, meter_body(), 9, concurrency=9)  # 3 per process
    assert_counts(primed, {200: 9})

    server.stop()
    results = fire(cluster.targets, key, meter_body(), 450, concurrency=150, timeout=120)
    server.start()

    served = sum(1 for r in results if r.status == 200)
    assert 3 * (90 - 9) <= served <= 3 * 90, statuses(results)
    for result in results:
        if result.status != 200:
            assert_refusal(result, 402, "budget_exceeded")
    assert_ledger(
        cluster,
        ws,
        key,
        [*primed, *results],
        spent_micro=(9 + served) * REQUEST_COST_MICRO,
        budget_id=budget["id"],
    )


@pytest.mark.timeout(120)
def test_open_mode_refuses_a_key_whose_rules_it_never_read(
    clusters: ClusterFactory, meter: UpstreamServer
) -> None:
    """A key the gateway has seen, but whose workspace rules it never read (its only request
    was refused before admission), has no known limits: during an outage ``open`` mode must
    refuse it (503), not treat "never read" as "no rules" and serve it ungoverned."""
    server = clusters.redis()
    cluster = clusters(
        "redis", meter, server=server, defaults={"store_unavailable": "open"}, name="never-read"
    )
    admin = cluster.admin
    ws = admin.create_workspace("never-read")
    key = admin.create_key(ws, "unread")["key"]
    admin.create_budget(ws, scope_type="workspace", period="daily", limit_usd=1.0)
    settle_rules()
    bad = meter_body(messages="not a list")  # refused while decoding: no admission
    assert_counts(fire(cluster.targets, key, bad, 1, concurrency=1), {400: 1})
    calls = len(meter.requests)

    server.stop()
    try:
        results = fire(cluster.targets, key, meter_body(), 3, concurrency=3, timeout=30)
    finally:
        server.start()

    assert_counts(results, {503: 3})
    for result in results:
        assert_refusal(result, 503, "service_unavailable")
    assert len(meter.requests) == calls, "a request with unknown limits reached the provider"
