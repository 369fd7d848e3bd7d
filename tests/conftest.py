"""Shared fixtures: real upstream servers and real gateway processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.configs import single_upstream_config
from support.gateway import GatewayProcess, new_secret
from support.redis_cluster import redis_cluster
from support.upstream import UpstreamServer

__all__ = ["redis_cluster"]  # one real Redis Cluster per session, for every suite


@pytest.fixture(scope="session")
def provider_key_a() -> str:
    return new_secret("sk-upstream-secret-a-")


@pytest.fixture(scope="session")
def provider_key_b() -> str:
    return new_secret("sk-upstream-secret-b-")


@pytest.fixture(scope="session")
def upstream_a() -> Iterator[UpstreamServer]:
    with UpstreamServer("upstream-a") as up:
        yield up


@pytest.fixture(scope="session")
def upstream_b() -> Iterator[UpstreamServer]:
    with UpstreamServer("upstream-b") as up:
        yield up


@pytest.fixture(scope="session")
def admin_key() -> str:
    return new_secret("rg_live_")


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: UpstreamServer,
    provider_key_a: str,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    """The shared gateway: one provider (upstream-a) in front of the session upstream."""
    gw = GatewayProcess(
        tmp_path_factory.mktemp("gw-shared"),
        config=single_upstream_config(upstream_a.base_url),
        env={"UPSTREAM_A_KEY": provider_key_a},
        admin_key=admin_key,
        name="gw-shared",
    )
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
    # After the whole session: no secret and no crash in the shared gateway's logs.
    gw.assert_no_secrets(provider_key_a, admin_key)
    assert "Traceback" not in gw.log_text(), "the shared gateway logged a traceback\n" + (
        gw.log_tail(80)
    )


GatewayFactory = Callable[..., GatewayProcess]


@pytest.fixture
def make_gateway(
    tmp_path_factory: pytest.TempPathFactory, admin_key: str
) -> Iterator[GatewayFactory]:
    """Start a fresh gateway (own data dir) for one test; stopped at teardown."""
    started: list[GatewayProcess] = []

    def make(
        config: dict[str, Any] | None,
        env: dict[str, str] | None = None,
        *,
        with_admin_key: bool = True,
        name: str = "gw",
    ) -> GatewayProcess:
        data_dir: Path = tmp_path_factory.mktemp(name)
        gw = GatewayProcess(
            data_dir,
            config=config,
            env=env,
            admin_key=admin_key if with_admin_key else None,
            name=name,
        )
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop()
