"""The ``store`` fixture: every test here runs on SQLite, on Redis and on a Redis Cluster.

SQLite gets a fresh file per test. Redis is one real ``redis-server`` for the session
(``support.redis_server``), flushed before each test; the cluster is one real 6-node Redis
Cluster for the session (``support.redis_cluster``), flushed before each test too. Each test
gets its own event loop, closed after the store, so the Redis store's asyncio connections
close on the loop that opened them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from gateway.store import Store
from gateway.store.ledger import Reservation, ReserveOutcome
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SqliteStore
from support.redis_cluster import RedisClusterServer
from support.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

T = TypeVar("T")
Reserve = Callable[[Reservation], ReserveOutcome]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    """The session server, emptied: a test sees only what it wrote."""
    if redis_server.proc is None:  # a test stopped it and did not restart it
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server


@pytest.fixture
def clean_cluster(redis_cluster: RedisClusterServer) -> RedisClusterServer:
    """The session's Redis Cluster, every master emptied."""
    redis_cluster.flush()
    return redis_cluster


def backend_url(kind: str, request: pytest.FixtureRequest) -> str:
    """The (emptied) Redis server's or cluster's URL for a ``store`` parameter."""
    if kind == "cluster":
        cluster: RedisClusterServer = request.getfixturevalue("clean_cluster")
        return cluster.url
    server: RedisServer = request.getfixturevalue("clean_redis")
    return server.url


def open_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "store.db")
    return RedisStore(backend_url(kind, request))


@pytest.fixture(params=["sqlite", "redis", "cluster"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> Iterator[Store]:
    backend = open_backend(request.param, request, tmp_path)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on the test's loop."""
    return loop.run_until_complete


@pytest.fixture
def reserve(store: Store, loop: asyncio.AbstractEventLoop) -> Reserve:
    """``store.reserve`` as a plain call, on the test's loop."""
    return lambda reservation: loop.run_until_complete(store.reserve(reservation))
