"""What only the Redis backend has: a URL, a network, a server that restarts, a key layout
that must stay Redis-Cluster safe, and credentials that must never reach an error message."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from gateway.store import open_store
from gateway.store.ledger import RateHold, StoreBusy, StoreFault, StoreUnavailable, TokenActual
from gateway.store.redis import RedisStore
from gateway.store.redis_keys import prefix
from store.factories import (
    api_key,
    budget,
    debit,
    hold,
    new_id,
    provider_key,
    reservation,
    settlement,
    workspace,
)
from support.redis_cluster import RedisClusterServer
from support.redis_server import RedisServer, start_redis

DOLLAR = 1_000_000
GLOBAL_KEYS = ("rg:meta", "rg:slug:", "rg:workspaces", "rg:keyhash:")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server this test may stop, kill and restart without disturbing the others."""
    server = start_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_store(own_redis: RedisServer, loop: asyncio.AbstractEventLoop) -> Iterator[RedisStore]:
    store = RedisStore(own_redis.url)
    try:
        yield store
    finally:
        store.close()


def test_open_store_accepts_redis_urls(tmp_path: Path) -> None:
    for url in ["redis://127.0.0.1:1/0", "rediss://user:pw@127.0.0.1:1/2"]:
        store = open_store(url, tmp_path)
        assert isinstance(store, RedisStore)
        store.close()
    with pytest.raises(ValueError, match="redis://"):
        open_store("memcached://127.0.0.1", tmp_path)


def test_every_workspace_key_shares_one_cluster_slot(
    clean_redis: RedisServer, loop: asyncio.AbstractEventLoop
) -> None:
    store = RedisStore(clean_redis.url)
    w = workspace()
    store.create_workspace(w)
    store.set_meta("schema", "1")
    key = api_key(w.id)
    store.create_key(key)
    bid = new_id("bud")
    store.create_budget(budget(w.id, id=bid))
    store.create_provider_key(provider_key(w.id))
    store.add_credits(w.id, DOLLAR)
    limits = (RateHold(limiter=f"key:{key.id}", rpm=5, tpm=500, tokens=9),)
    r = reservation(w.id, budgets=(hold(bid, 10, limit=DOLLAR),), wallet=10, limits=limits)
    assert loop.run_until_complete(store.reserve(r)).granted
    store.commit(
        [
            settlement(
                w.id,
                r.id,
                debits=(debit(bid, 5, limit=DOLLAR),),
                wallet=5,
                tokens=(TokenActual(limiter=f"key:{key.id}", tokens=3),),
            )
        ]
    )
    store.close()
    with redis.Redis.from_url(clean_redis.url) as client:
        names = [k.decode() for k in client.scan_iter(count=1000)]
        scoped = [n for n in names if not n.startswith(GLOBAL_KEYS)]
        assert len(scoped) > 10, names
        assert all(n.startswith(prefix(w.id)) for n in scoped), names
        assert {key_slot(n.encode()) for n in scoped} == {key_slot(prefix(w.id).encode())}
        windows = [n for n in scoped if ":win:" in n or ":wtok:" in n or ":wsum:" in n]
        assert len(windows) == 3
        assert all(0 < client.pttl(n) <= 61_000 for n in windows), "windows age out by TTL"


def test_scripts_reload_after_the_server_forgets_them(
    own_store: RedisStore, own_redis: RedisServer, loop: asyncio.AbstractEventLoop
) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    budgets = (hold(bid, 10, limit=DOLLAR),)
    assert loop.run_until_complete(own_store.reserve(reservation(ws, budgets=budgets))).granted
    own_store.commit([settlement(ws, None, debits=(debit(bid, 1, limit=DOLLAR),))])
    with redis.Redis.from_url(own_redis.url) as client:
        client.script_flush()
    assert loop.run_until_complete(own_store.reserve(reservation(ws, budgets=budgets))).granted
    own_store.commit([settlement(ws, None, debits=(debit(bid, 1, limit=DOLLAR),))])
    assert own_store.budget_spend(ws, [f"{bid}@2026-01"]) == [2]


def test_a_dead_server_is_store_unavailable_without_credentials(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    server = start_redis(tmp_path / "redis")
    port = server.port
    server.stop()
    secret = "hunter2-s3cret"
    store = RedisStore(f"redis://gateway:{secret}@127.0.0.1:{port}/0")
    try:
        assert store.ping() is False
        calls = [
            lambda: store.get_workspace("ws_x"),
            lambda: store.list_usage("ws_x", ""),
            lambda: store.commit([settlement("ws_x", None)]),
            lambda: store.add_credits("ws_x", 5),
            lambda: loop.run_until_complete(store.reserve(reservation("ws_x", wallet=1))),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable) as caught:
                call()
            message = str(caught.value)
            assert f"127.0.0.1:{port}" in message
            assert secret not in message
            assert "gateway:" not in message
            assert caught.value.__cause__ is None
            assert caught.value.__suppress_context__
    finally:
        store.close()


def test_wrong_credentials_are_store_unavailable_without_them(
    own_redis: RedisServer, loop: asyncio.AbstractEventLoop
) -> None:
    with redis.Redis.from_url(own_redis.url) as client:
        client.config_set("requirepass", "the-right-one")
    secret = "wrong-pass-9f3e"
    store = RedisStore(f"redis://:{secret}@127.0.0.1:{own_redis.port}/0")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.get_meta("x")
        assert secret not in str(caught.value)
        with pytest.raises(StoreUnavailable) as caught:
            loop.run_until_complete(store.reserve(reservation("ws_x", wallet=1)))
        assert secret not in str(caught.value)
        assert "AuthenticationError" in str(caught.value)
    finally:
        store.close()
    right = RedisStore(f"redis://:the-right-one@127.0.0.1:{own_redis.port}/0")
    try:
        assert right.ping() is True
    finally:
        right.close()


def test_reconnects_after_a_restart_and_keeps_the_data(
    own_store: RedisStore, own_redis: RedisServer, loop: asyncio.AbstractEventLoop
) -> None:
    ws, bid = new_id("ws"), new_id("bud")
    budgets = (hold(bid, 400_000, limit=DOLLAR),)
    held = reservation(ws, budgets=budgets)
    assert loop.run_until_complete(own_store.reserve(held)).granted
    own_store.add_credits(ws, 1234)
    own_redis.restart()
    assert own_store.get_billing(ws).balance_microdollars == 1234
    # A serving gateway's loop runs all along and sees the old sockets close; let it.
    loop.run_until_complete(asyncio.sleep(0.05))
    second = loop.run_until_complete(own_store.reserve(reservation(ws, budgets=budgets)))
    assert second.granted, "the first hold survived; 800 000 ≤ 900 000"
    third = loop.run_until_complete(own_store.reserve(reservation(ws, budgets=budgets)))
    assert not third.granted


def test_a_committed_record_survives_a_crash(
    own_store: RedisStore, own_redis: RedisServer, loop: asyncio.AbstractEventLoop
) -> None:
    """``appendfsync always``: what a commit acknowledged is on disk before the reply."""
    ws, bid = new_id("ws"), new_id("bud")
    done = settlement(ws, None, debits=(debit(bid, 777, limit=DOLLAR),))
    own_store.commit([done])
    own_redis.kill()
    with pytest.raises(StoreUnavailable):
        own_store.get_usage(ws, done.record.request_id)
    with pytest.raises(StoreUnavailable):
        loop.run_until_complete(own_store.reserve(reservation(ws, wallet=1)))
    own_redis.start()
    assert own_store.get_usage(ws, done.record.request_id) == done.record
    assert loop.run_until_complete(own_store.reserve(reservation(ws, wallet=1))).granted
    assert own_store.budget_spend(ws, [f"{bid}@2026-01"]) == [777]


def test_close_inside_the_running_loop_leaves_no_open_sockets(clean_redis: RedisServer) -> None:
    """A lifespan shutdown calls the sync ``close()`` from inside the event loop."""
    loop = asyncio.new_event_loop()
    store = RedisStore(clean_redis.url)

    async def serve_then_shut_down() -> None:
        assert (await store.reserve(reservation(new_id("ws"), wallet=1))).granted
        store.close()
        await asyncio.sleep(0.05)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loop.run_until_complete(serve_then_shut_down())
        loop.close()
        gc.collect()
    assert [w for w in seen if issubclass(w.category, ResourceWarning)] == []


def test_each_event_loop_gets_its_own_connections(clean_redis: RedisServer) -> None:
    """Two loops take turns (two threads' loops, or successive ``asyncio.run`` calls):
    neither uses the other's sockets, and ``close()`` closes both on their own loops."""
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]
    store = RedisStore(clean_redis.url)
    ws = new_id("ws")
    limits = (RateHold(limiter=f"workspace:{ws}", rpm=5),)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        outcomes = [
            loops[n % 2].run_until_complete(store.reserve(reservation(ws, limits=limits)))
            for n in range(6)
        ]
        store.close()
        for loop in loops:
            loop.close()
        gc.collect()
    assert [o.granted for o in outcomes] == [True] * 5 + [False]
    assert [w for w in seen if issubclass(w.category, ResourceWarning)] == []


def test_a_busy_pool_waits_for_a_connection_then_says_busy_not_unavailable(
    own_redis: RedisServer, loop: asyncio.AbstractEventLoop
) -> None:
    """Back-pressure is not an outage: with every connection taken, a reservation waits up
    to the pool's wait timeout for one (and is served when one comes free in time), and only
    then fails, as ``StoreBusy``, which no fail mode treats as the store being down."""
    store = RedisStore(own_redis.url, max_connections=2, wait_timeout_s=0.3)
    ws = new_id("ws")

    async def burst(count: int) -> list[bool]:
        outcomes = await asyncio.gather(
            *(store.reserve(reservation(ws, wallet=1)) for _ in range(count))
        )
        return [o.granted for o in outcomes]

    try:
        assert loop.run_until_complete(burst(50)) == [True] * 50  # 50 on 2 connections
        assert own_redis.proc is not None
        os.kill(own_redis.proc.pid, signal.SIGSTOP)  # both connections now hang in a read
        try:

            async def stalled() -> list[BaseException | object]:
                first = [asyncio.ensure_future(store.reserve(reservation(ws))) for _ in range(2)]
                await asyncio.sleep(0.05)
                waiting = await asyncio.gather(
                    store.reserve(reservation(ws)), return_exceptions=True
                )
                return [*waiting, *(await asyncio.gather(*first, return_exceptions=True))]

            errors = loop.run_until_complete(stalled())
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        assert isinstance(errors[0], StoreBusy), errors
        assert "max_connections" in str(errors[0])
        assert all(isinstance(e, StoreUnavailable) for e in errors[1:]), errors  # read timeouts
    finally:
        store.close()


def test_an_error_the_server_answers_is_a_fault_not_an_outage(
    clean_redis: RedisServer, loop: asyncio.AbstractEventLoop
) -> None:
    """A command the server refuses (here: a counter of the wrong type) is ``StoreFault``:
    the ``open`` fail mode must not admit ungoverned traffic because of a bug."""
    store = RedisStore(clean_redis.url)
    ws = new_id("ws")
    try:
        redis.Redis.from_url(clean_redis.url).set(prefix(ws) + "wallet", "not a hash")
        with pytest.raises(StoreFault, match="WRONGTYPE") as caught:
            loop.run_until_complete(store.reserve(reservation(ws, wallet=1)))
        assert not isinstance(caught.value, StoreUnavailable)
        with pytest.raises(StoreFault):
            store.get_billing(ws)
    finally:
        store.close()


def test_one_node_of_a_cluster_is_enough_to_start(
    clean_cluster: RedisClusterServer, loop: asyncio.AbstractEventLoop
) -> None:
    """``redis+cluster://<any one node>``: the client finds the other masters itself, and
    every workspace's writes and reservations go to the master serving its slot."""
    store = open_store(clean_cluster.seed_url, Path("."))
    try:
        assert isinstance(store, RedisStore)
        spread = [workspace() for _ in range(12)]  # hash tags over several masters
        for w in spread:
            store.create_workspace(w)
            outcome = loop.run_until_complete(store.reserve(reservation(w.id, wallet=1)))
            assert outcome.granted
            store.commit([settlement(w.id, None)])
        assert {w.id for w in store.list_workspaces()} >= {w.id for w in spread}
        slots = {key_slot(prefix(w.id).encode()) // 5462 for w in spread}
        assert len(slots) > 1, "the workspaces all landed on one master"
    finally:
        store.close()
