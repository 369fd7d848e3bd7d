"""SPEC §7 under real concurrency: budgets, rate limits and wallets admit exactly what fits.

Each backend runs one cluster for the whole module (``TOPOLOGY``: SQLite is one gateway with
three workers on one database file, Redis three gateway processes on one ``redis-server``, and
the same three on the session's 6-node Redis Cluster, ``redis+cluster://``);
every test makes its own workspace, so tests never see each other's counters. Every request
costs exactly $0.01 (10,000 micro-dollars) as estimate and as actual, and the requests are
released together from 64 client threads, spread round-robin over the cluster's processes.

What must hold, exactly, whatever the interleaving:

- a $1.00 budget (threshold $1.00 − min($10, 10 %) = $0.90) admits 90 requests; the others
  get 402 ``budget_exceeded`` with ``X-Budget-Exceeded*`` headers;
- an RPM limit of 100 (on the key, or on the workspace shared by two keys) admits 100 in its
  window; the others get 429 ``rate_limit_exceeded`` with ``Retry-After``;
- $0.50 of credits admit 50 requests (half of them streamed), the balance never goes below
  zero and ends at zero; the others get 402 ``insufficient_quota``;
- the usage records (read from the store itself) sum to the spend counters to the micro-dollar:
  the budget's ``spend_usd``, ``GET /v1/usage`` and the wallet's debits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from support.cluster import BACKENDS, REQUEST_COST_MICRO, Backend, Cluster, fire, meter_body
from support.redis_cluster import RedisClusterServer
from support.upstream import UpstreamServer

from .conftest import TOPOLOGY, ClusterFactory
from .expect import assert_counts, assert_ledger, assert_refusal, settle_rules

CONCURRENCY = 64


@pytest.fixture(scope="module", params=[*BACKENDS, "redis-cluster"])
def cluster(
    request: pytest.FixtureRequest,
    module_clusters: ClusterFactory,
    module_meter: UpstreamServer,
) -> Iterator[Cluster]:
    if request.param == "redis-cluster":
        server: RedisClusterServer = request.getfixturevalue("redis_cluster")
        yield module_clusters(
            "redis", module_meter, name="exact-cluster", server=server, **TOPOLOGY["redis"]
        )
        return
    backend: Backend = request.param
    yield module_clusters(backend, module_meter, name=f"exact-{backend}", **TOPOLOGY[backend])


def test_topology_is_what_the_suite_claims(cluster: Cluster) -> None:
    """Three gateway processes (Redis) or one gateway with three workers (SQLite)."""
    expected = TOPOLOGY[cluster.backend]
    assert len(cluster.gateways) == expected["count"]
    for gw in cluster.gateways:
        assert gw.workers == expected["workers"]
        assert gw.proc is not None and gw.proc.poll() is None
        text = gw.log_text()
        assert text.count("Spawning worker") == expected["workers"], gw.log_tail()


@pytest.mark.parametrize(("scope_type", "period"), [("workspace", "daily"), ("api_key", "monthly")])
def test_budget_admits_exactly_what_fits_under_its_threshold(
    cluster: Cluster, scope_type: str, period: str
) -> None:
    admin = cluster.admin
    ws = admin.create_workspace(f"budget-{scope_type}-{cluster.backend}")
    racer = admin.create_key(ws, "racer")
    bystander = admin.create_key(ws, "bystander")  # same workspace, not in an api_key budget
    scope = {"scope_id": racer["id"]} if scope_type == "api_key" else {}
    budget = admin.create_budget(
        ws, scope_type=scope_type, period=period, limit_usd=1.0, enforce=True, **scope
    )
    assert budget["threshold_usd"] == 0.9, budget
    settle_rules()

    results = fire(cluster.targets, racer["key"], meter_body(), 200, concurrency=CONCURRENCY)

    assert_counts(results, {200: 90, 402: 110})
    for result in results:
        if result.status == 200:
            assert result.headers.get("x-cost") == "0.01000000", result.describe()
            continue
        assert_refusal(result, 402, "budget_exceeded")
        assert result.headers.get("x-budget-exceeded") == "true", result.headers
        assert result.headers.get("x-budget-exceeded-period") == period, result.headers
        assert result.headers.get("x-budget-exceeded-scope") == scope_type, result.headers
    assert_ledger(
        cluster,
        ws,
        racer["key"],
        results,
        spent_micro=90 * REQUEST_COST_MICRO,
        budget_id=budget["id"],
    )
    view = admin.budget(ws, budget["id"])
    assert view["percent_used"] == 90.0, view

    # The budget's scope is what it names: a key budget leaves the workspace's other keys be.
    after = fire(cluster.targets, bystander["key"], meter_body(), 6, concurrency=6)
    if scope_type == "api_key":
        assert_counts(after, {200: 6})
    else:
        assert_counts(after, {402: 6})
        for result in after:
            assert_refusal(result, 402, "budget_exceeded")


@pytest.mark.parametrize("level", ["key", "workspace"])
def test_rpm_limit_admits_exactly_its_limit_in_the_window(cluster: Cluster, level: str) -> None:
    admin = cluster.admin
    ws = admin.create_workspace(f"rpm-{level}-{cluster.backend}")
    if level == "key":
        keys = [admin.create_key(ws, "limited", rpm_limit=100)["key"]]
    else:
        admin.patch_workspace(ws, rpm_limit=100)
        keys = [admin.create_key(ws, f"member-{i}")["key"] for i in range(2)]
    settle_rules()

    results = fire(cluster.targets, keys, meter_body(), 250, concurrency=CONCURRENCY)

    assert_counts(results, {200: 100, 429: 150})
    for result in results:
        if result.status == 200:
            continue
        assert_refusal(result, 429, "rate_limit_exceeded")
        retry = result.headers.get("retry-after")
        assert retry is not None and retry.isdigit(), result.headers
        assert 1 <= int(retry) <= 60, result.headers
        assert result.headers.get("x-ratelimit-limit-requests") == "100", result.headers
        assert result.headers.get("x-ratelimit-remaining-requests") == "0", result.headers
    assert_ledger(cluster, ws, keys[0], results, spent_micro=100 * REQUEST_COST_MICRO)


def test_wallet_admits_exactly_its_credits_and_never_goes_negative(cluster: Cluster) -> None:
    admin = cluster.admin
    ws = admin.create_workspace(f"wallet-{cluster.backend}")
    key = admin.create_key(ws, "spender")["key"]
    topped = admin.add_credits(ws, 0.5)
    assert topped["balance_microdollars"] == 500_000 and topped["tier"] == "prepaid", topped
    settle_rules()

    seen: list[dict[str, int]] = []
    stop = threading.Event()

    def watch() -> None:
        """The wallet as the management API shows it, all along the burst."""
        with httpx.Client(
            base_url=cluster.targets[-1],
            headers={"Authorization": f"Bearer {cluster.admin_key}"},
            timeout=10.0,
            trust_env=False,
        ) as http:
            while not stop.is_set():
                view = http.get(f"/v1/workspaces/{ws}/billing").json()
                seen.append(
                    {
                        "balance": view["balance_microdollars"],
                        "reserved": view["reserved_microdollars"],
                    }
                )
                stop.wait(0.01)

    watcher = threading.Thread(target=watch, name="wallet-watch", daemon=True)
    watcher.start()
    try:
        # Every other request streams: a stream is charged what its usage chunk says.
        bodies = [meter_body(), meter_body(stream=True)]
        results = fire(cluster.targets, key, bodies, 150, concurrency=CONCURRENCY)
    finally:
        stop.set()
        watcher.join(timeout=10)

    assert_counts(results, {200: 50, 402: 100})
    for result in results:
        if result.status != 200:
            assert_refusal(result, 402, "insufficient_quota")
        elif result.index % 2:
            assert result.headers["content-type"].startswith("text/event-stream"), result.headers
            assert result.text.rstrip().endswith("data: [DONE]"), result.text[-200:]
    assert_ledger(cluster, ws, key, results, spent_micro=50 * REQUEST_COST_MICRO)
    billing = admin.billing(ws)
    assert billing["balance_microdollars"] == 0, billing
    assert billing["reserved_microdollars"] == 0, billing
    assert len(seen) >= 5, f"the wallet was read only {len(seen)} times during the burst"
    for view in seen:
        assert view["balance"] >= 0, seen
        assert view["reserved"] >= 0, seen
        assert view["balance"] - view["reserved"] >= 0, f"over-reserved: {view}"
