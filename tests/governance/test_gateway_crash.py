"""A gateway process killed with SIGKILL loses no metered request (SPEC §7: "usage records
survive a gateway crash once the response has been sent"), on both backends.

The request path appends each request's settlement (usage record + cost) to a per-process
spool under ``<data dir>/spool`` before the response ends; a background thread commits it.
After a crash, the gateway restarted on the same data directory, or any live gateway sharing
it, commits the dead process's spool within a few seconds.

- mid-load: a steady load, one gateway killed and restarted: every request whose complete 200
  answer a client received has its record, and the spend counter equals the records' sum (a
  request cut by the kill after it was spooled is recorded and charged, never half);
- spooled, not committed: the store is frozen (``redis-server`` stopped with SIGSTOP, or the
  SQLite write lock held) while requests already admitted finish: the clients get their 200s,
  the store has none of their records, the gateway is killed; then the records come back from
  its spool, through a restart or through a live peer on the same data directory, exactly
  once, even when a copy of the spool is replayed (commits are idempotent per request id).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from support.cluster import (
    REQUEST_COST_MICRO,
    Backend,
    Cluster,
    Load,
    Result,
    fire,
    frozen_store,
    meter_body,
    statuses,
    wait_until,
)
from support.redis_server import RedisServer
from support.upstream import Delay, Reply, UpstreamServer

from .conftest import TOPOLOGY, ClusterFactory
from .expect import assert_counts, assert_ledger, request_ids, settle_rules

LOAD_THREADS = 4
RECOVERY_S = 6.0
"""A dead process's spool is scanned for every 2 s; "within a few seconds"."""


def _spooled_segments(data_dir: Path) -> list[Path]:
    """Non-empty spool segments left in ``data_dir`` (by dead or live processes)."""
    root = data_dir / "spool"
    if not root.exists():
        return []
    return [p for p in root.glob("*/seg-*") if p.stat().st_size > 0]


def _governed_workspace(cluster: Cluster, name: str) -> tuple[str, str, str]:
    """A workspace with a key and a large enforced budget (so every request reserves)."""
    admin = cluster.admin
    ws = admin.create_workspace(name)
    key = admin.create_key(ws, "steady")["key"]
    budget = admin.create_budget(ws, scope_type="workspace", period="daily", limit_usd=1000.0)
    settle_rules()
    return ws, key, budget["id"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_gateway_killed_mid_load_keeps_every_served_record(
    clusters: ClusterFactory, meter: UpstreamServer, backend: Backend
) -> None:
    cluster = clusters(backend, meter, name=f"crash-{backend}", **TOPOLOGY[backend])
    ws, key, budget_id = _governed_workspace(cluster, f"crash-{backend}")

    load = Load(cluster.targets, key, meter_body(), threads=LOAD_THREADS, pause_s=0.05).start()
    try:
        load.wait_for(60)
        victim = cluster.targets[0]
        killed_at = time.monotonic()
        cluster.kill(0)
        time.sleep(0.5)
        cluster.restart(0)
        load.retarget(0, cluster.targets[0])  # a new port
        restarted_at = time.monotonic()
        load.wait_for(len(load.results) + 60)
    finally:
        results = load.stop()

    counts = statuses(results)
    assert set(counts) <= {0, 200}, counts
    cut = [r for r in results if r.status == 0]
    assert all(r.target == victim for r in cut), [r.describe() for r in cut][:5]
    outside = [r for r in results if r.ended < killed_at or r.started > restarted_at]
    assert all(r.status == 200 for r in outside), [
        r.describe() for r in outside if r.status != 200
    ][:5]

    records = assert_ledger(
        cluster,
        ws,
        key,
        results,
        spent_micro=None,
        budget_id=budget_id,
        exact_records=False,
    )
    # Records of 200 answers nobody received: at most the requests in flight at the kill.
    unseen = {r["request_id"] for r in records} - request_ids(r for r in results if r.status)
    assert len(unseen) <= LOAD_THREADS, f"{len(unseen)} records of unseen requests"
    assert len(records) == counts[200] + len(unseen), (len(records), counts, len(unseen))
    wait_until(
        lambda: _spooled_segments(cluster.data_dir(0)),
        lambda segments: not segments,
        timeout=RECOVERY_S,
        what="the dead process's spool committed and removed",
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("recovery", ["restart", "live-peer"])
def test_spooled_records_of_a_killed_gateway_reach_the_store(
    clusters: ClusterFactory, meter: UpstreamServer, backend: Backend, recovery: str
) -> None:
    server: RedisServer | None = clusters.redis() if backend == "redis" else None
    if recovery == "restart":
        # SQLite: one gateway of three workers (all killed together); Redis: one process.
        cluster = clusters(
            backend, meter, server=server, workers=TOPOLOGY[backend]["workers"], name="spool"
        )
    else:
        # Two gateways on one data directory; the second is killed, the first recovers it.
        cluster = clusters(backend, meter, server=server, count=2, shared_data=True, name="peer")
    victim = len(cluster.gateways) - 1
    ws, key, budget_id = _governed_workspace(cluster, f"spool-{recovery}-{backend}")
    store = cluster.store()
    requests = 24
    meter.set_default(Delay(1.0, Reply(text="1", prompt_tokens=7, completion_tokens=1)))

    outcome: list[list[Result]] = []
    sender = threading.Thread(
        target=lambda: outcome.append(
            fire([cluster.targets[victim]], key, meter_body(), requests, concurrency=requests)
        ),
        daemon=True,
    )
    sender.start()
    # Every request admitted (its reservation is in the store) and waiting on the upstream.
    wait_until(
        lambda: len(meter.chat_requests()),
        lambda n: n >= requests,
        timeout=20.0,
        what=f"{requests} requests at the upstream",
    )
    with frozen_store(cluster, server):
        frozen_at = time.monotonic()
        sender.join(timeout=20)
        assert outcome, "the requests did not finish while the store was frozen"
        results = outcome[0]
        assert_counts(results, {200: requests})
        early = [r.describe() for r in results if r.ended <= frozen_at]
        assert not early, f"answered before the store was frozen: {early}"
        if backend == "sqlite":  # readers still read while the write lock is held
            assert store.usage_records(ws) == [], "records committed through a frozen store?"
        cluster.kill(victim)
    spooled = _spooled_segments(cluster.data_dir(victim))
    assert spooled, "the killed gateway left nothing in its spool"
    # A second copy of every dead spool: as if a process had been killed after the store
    # acknowledged a segment but before deleting it. Replaying it must change nothing.
    for directory in {segment.parent for segment in spooled}:
        replay = directory.with_name(directory.name + "-replay")
        shutil.copytree(directory, replay)
        spooled += [replay / segment.name for segment in spooled if segment.parent == directory]
    if recovery == "restart":
        assert store.usage_records(ws) == [], "records reached the store with no one alive"
        cluster.restart(victim)
    recovering_since = time.monotonic()

    records = assert_ledger(
        cluster,
        ws,
        key,
        results,
        spent_micro=requests * REQUEST_COST_MICRO,
        budget_id=budget_id,
    )
    took = time.monotonic() - recovering_since
    assert took <= RECOVERY_S, f"records recovered after {took:.1f}s"
    assert len(records) == requests
    wait_until(
        lambda: [p for p in spooled if p.exists()],
        lambda left: not left,
        timeout=RECOVERY_S,
        what="the dead process's spool segments removed",
    )
