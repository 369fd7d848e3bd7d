"""Fixtures of the governance suites: real gateway processes on a real shared store.

Every suite here runs on both backends (``backend`` is parametrised over ``sqlite`` and
``redis``), except the ones that kill ``redis-server`` itself. The topologies:

- concurrency (``TOPOLOGY``): SQLite is one gateway with three workers (three processes on one
  database file); Redis is three gateway processes sharing one ``redis-server``.
- every cluster shares one master key and one bootstrap admin key, and the ``meter`` provider
  (one upstream server) whose requests cost exactly $0.01 each (``support.cluster``).

Teardown stops every process by PID and then checks that no secret the run used (admin key,
master key, the platform provider key, every gateway key created, the Redis password) appears
in any gateway log. A machine without ``redis-server`` fails the Redis tests; none is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import (
    BACKENDS,
    METER_KEY_ENV,
    Backend,
    Cluster,
    meter_config,
    start_acl_redis,
)
from support.faults import deepen_backlog
from support.gateway import new_secret
from support.redis_cluster import RedisClusterServer
from support.redis_server import RedisServer, start_redis
from support.upstream import Delay, Reply, UpstreamServer

# A metered answer: one completion token (the $0.01), after a short wait so that many
# requests are in flight together.
METER_REPLY = Delay(0.05, Reply(text="1", prompt_tokens=7, completion_tokens=1))

TOPOLOGY: dict[Backend, dict[str, int]] = {
    "sqlite": {"count": 1, "workers": 3},
    "redis": {"count": 3, "workers": 1},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: kills and restarts processes (deselect with -m 'not slow')"
    )


@pytest.fixture(scope="session")
def master_key() -> str:
    return new_secret("mk-routegate-master-")


@pytest.fixture(scope="session")
def meter_key() -> str:
    """The ``meter`` provider's platform key (a provider secret)."""
    return new_secret("sk-meter-platform-")


@pytest.fixture(scope="session")
def redis_password() -> str:
    return new_secret("redis-pw-")


class ClusterFactory:
    """Starts clusters (and the ``redis-server``s they need); ``close`` stops them all and
    checks their logs for every secret used."""

    def __init__(
        self,
        tmp: pytest.TempPathFactory,
        *,
        admin_key: str,
        master_key: str,
        meter_key: str,
        redis_password: str,
    ) -> None:
        self.tmp = tmp
        self.admin_key = admin_key
        self.master_key = master_key
        self.meter_key = meter_key
        self.redis_password = redis_password
        self.clusters: list[Cluster] = []
        self.servers: list[RedisServer] = []
        self.secrets: list[str] = [admin_key, master_key, meter_key, redis_password]

    def redis(self, *, password: bool = True) -> RedisServer:
        """A fresh ``redis-server`` (by default one whose URL carries a password)."""
        data_dir: Path = self.tmp.mktemp("redis")
        server = (
            start_acl_redis(data_dir, self.redis_password) if password else start_redis(data_dir)
        )
        self.servers.append(server)
        return server

    def __call__(
        self,
        backend: Backend,
        upstream: UpstreamServer,
        *,
        count: int = 1,
        workers: int = 1,
        defaults: dict[str, Any] | None = None,
        server: RedisServer | RedisClusterServer | None = None,
        shared_data: bool = False,
        name: str = "gw",
        start: bool = True,
    ) -> Cluster:
        if backend == "redis" and server is None:
            server = self.redis()
        cluster = Cluster(
            root=self.tmp.mktemp(name),
            backend=backend,
            config=meter_config(upstream.base_url, **(defaults or {})),
            admin_key=self.admin_key,
            master_key=self.master_key,
            env={METER_KEY_ENV: self.meter_key},
            count=count,
            workers=workers,
            store_url=server.url if backend == "redis" and server is not None else None,
            name=name,
            shared_data=shared_data,
        )
        self.clusters.append(cluster)
        if start:
            cluster.start()
        return cluster

    def close(self) -> None:
        for cluster in self.clusters:
            if cluster._admin is not None:
                self.secrets += cluster._admin.secrets
            cluster.stop()
        for server in self.servers:
            server.stop()
        for cluster in self.clusters:
            cluster.assert_no_secrets(self.secrets)


def _factory(
    tmp: pytest.TempPathFactory,
    admin_key: str,
    master_key: str,
    meter_key: str,
    redis_password: str,
) -> ClusterFactory:
    return ClusterFactory(
        tmp,
        admin_key=admin_key,
        master_key=master_key,
        meter_key=meter_key,
        redis_password=redis_password,
    )


@pytest.fixture
def clusters(
    tmp_path_factory: pytest.TempPathFactory,
    admin_key: str,
    master_key: str,
    meter_key: str,
    redis_password: str,
) -> Iterator[ClusterFactory]:
    factory = _factory(tmp_path_factory, admin_key, master_key, meter_key, redis_password)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_clusters(
    tmp_path_factory: pytest.TempPathFactory,
    admin_key: str,
    master_key: str,
    meter_key: str,
    redis_password: str,
) -> Iterator[ClusterFactory]:
    factory = _factory(tmp_path_factory, admin_key, master_key, meter_key, redis_password)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    value: Backend = request.param
    return value


@pytest.fixture
def meter() -> Iterator[UpstreamServer]:
    """This test's own ``meter`` upstream: one completion token per answer."""
    with UpstreamServer("meter") as up:
        deepen_backlog(up)  # a burst of new connections must not wait for SYN retransmits
        up.set_default(METER_REPLY)
        yield up


@pytest.fixture(scope="module")
def module_meter() -> Iterator[UpstreamServer]:
    with UpstreamServer("meter") as up:
        deepen_backlog(up)  # a burst of new connections must not wait for SYN retransmits
        up.set_default(METER_REPLY)
        yield up
