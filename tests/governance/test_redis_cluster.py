"""Governance on a real Redis Cluster (3 masters + 3 replicas, ``support.redis_cluster``).

Two gateway processes share ``ROUTEGATE_STORE=redis+cluster://<one node>``. What must hold:

- a $1.00 budget admits exactly 90 requests and an RPM limit of 40 exactly 40, as on one
  server (every workspace's keys are in one slot, so its scripts run as one call there);
- a master fails over in the middle of a steady load (SIGKILL by PID): requests in the
  failover window may be refused (503, fail closed), but every 200 the clients got has its
  usage record in the store afterwards, and the budget counter equals the records' costs
  (docs/governance.md, "Redis Cluster and failover").
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.cluster import (
    MICRO,
    REQUEST_COST_MICRO,
    Cluster,
    Load,
    fire,
    meter_body,
    wait_until,
)
from support.redis_cluster import RedisClusterServer
from support.upstream import UpstreamServer

from .conftest import ClusterFactory
from .expect import assert_counts, assert_ledger, assert_refusal, settle_rules

CONCURRENCY = 32


@pytest.fixture(scope="module")
def cluster(
    redis_cluster: RedisClusterServer,
    module_clusters: ClusterFactory,
    module_meter: UpstreamServer,
) -> Iterator[Cluster]:
    redis_cluster.flush()
    yield module_clusters("redis", module_meter, count=2, server=redis_cluster, name="rc")


def test_the_gateways_run_on_the_redis_cluster(
    cluster: Cluster, redis_cluster: RedisClusterServer
) -> None:
    assert cluster.store_url == redis_cluster.url
    assert cluster.store_url.startswith("redis+cluster://127.0.0.1:")
    assert len(redis_cluster.master_pids()) == 3
    assert len(cluster.gateways) == 2


def test_budget_is_exact_on_the_cluster(cluster: Cluster) -> None:
    admin = cluster.admin
    ws = admin.create_workspace("rc-budget")
    key = admin.create_key(ws, "racer")["key"]
    budget = admin.create_budget(
        ws, scope_type="workspace", period="daily", limit_usd=1.0, enforce=True
    )
    settle_rules()

    results = fire(cluster.targets, key, meter_body(), 200, concurrency=CONCURRENCY)

    assert_counts(results, {200: 90, 402: 110})
    for result in results:
        if result.status != 200:
            assert_refusal(result, 402, "budget_exceeded")
    assert_ledger(
        cluster, ws, key, results, spent_micro=90 * REQUEST_COST_MICRO, budget_id=budget["id"]
    )


def test_rpm_limit_is_exact_on_the_cluster(cluster: Cluster) -> None:
    admin = cluster.admin
    ws = admin.create_workspace("rc-rpm")
    key = admin.create_key(ws, "limited", rpm_limit=40)["key"]
    settle_rules()

    results = fire(cluster.targets, key, meter_body(), 100, concurrency=CONCURRENCY)

    assert_counts(results, {200: 40, 429: 60})
    for result in results:
        if result.status != 200:
            assert_refusal(result, 429, "rate_limit_exceeded")
            assert result.headers.get("x-ratelimit-limit-requests") == "40", result.headers
    assert_ledger(cluster, ws, key, results, spent_micro=40 * REQUEST_COST_MICRO)


@pytest.mark.slow
def test_no_acknowledged_usage_is_lost_when_a_master_fails_over(
    cluster: Cluster, redis_cluster: RedisClusterServer
) -> None:
    admin = cluster.admin
    ws = admin.create_workspace("rc-failover")
    key = admin.create_key(ws, "steady")["key"]
    budget = admin.create_budget(
        ws, scope_type="workspace", period="daily", limit_usd=1000.0, enforce=True
    )
    settle_rules()
    usage_key = f"rg:{{ws:{ws}}}:usage"

    load = Load(cluster.targets, key, meter_body(), threads=4).start()
    try:
        load.wait_for(30, timeout=60)
        dead = redis_cluster.kill_master(usage_key)  # the master holding this workspace
        seen = len(load.results)
        load.wait_for(seen + 40, timeout=90)  # served again after the failover
    finally:
        results = load.stop()
    try:
        served = {r.request_id for r in results if r.status == 200}
        odd = [r.describe() for r in results if r.status not in (200, 503)][:5]
        assert not odd, f"only 200 or 503 (fail closed) expected: {odd}"
        assert len(served) >= 70, f"only {len(served)} requests served"

        store = cluster.store()
        records = wait_until(
            lambda: store.usage_records(ws),
            lambda rs: served <= {r["request_id"] for r in rs},
            timeout=30.0,
            what=f"records of all {len(served)} served requests",
        )
        by_id = {r["request_id"]: r for r in records}
        for request_id in served:
            assert by_id[request_id]["cost_microdollars"] == REQUEST_COST_MICRO
        total = sum(int(r["cost_microdollars"]) for r in records)
        view = wait_until(
            lambda: admin.budget(ws, budget["id"]),
            lambda v: round(v["spend_usd"] * MICRO) == total,
            timeout=15.0,
            what=f"budget spend of {total} micro-dollars",
        )
        assert round(view["spend_usd"] * MICRO) == total, view
    finally:
        redis_cluster.revive(dead)
