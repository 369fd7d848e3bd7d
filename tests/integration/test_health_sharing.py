"""Open circuits are shared between gateway processes through the store: a provider that
said "wait" (429 + Retry-After) to one gateway gets no traffic from another either.

Two real gateway processes on one real ``redis-server``; two real upstreams offering the
same model, the cheaper one preferred (``optimize: cheapest``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from support.gateway import GatewayProcess, gateway_config, new_secret, offer, openai_provider
from support.redis_server import RedisServer, redis_server
from support.upstream import Reply, Status, UpstreamServer

__all__ = ["redis_server"]


@pytest.fixture
def upstreams() -> Iterator[tuple[UpstreamServer, UpstreamServer]]:
    with UpstreamServer("cheap") as cheap, UpstreamServer("dear") as dear:
        yield cheap, dear


def test_a_provider_that_said_wait_is_avoided_by_every_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    upstreams: tuple[UpstreamServer, UpstreamServer],
    admin_key: str,
) -> None:
    cheap, dear = upstreams
    config = gateway_config(
        [
            openai_provider("cheap", cheap.base_url, "CHEAP_KEY"),
            openai_provider("dear", dear.base_url, "DEAR_KEY"),
        ],
        [
            offer("gpt-4o-mini", "cheap", "cheap-mini", price_in=0.1, price_out=0.4),
            offer("gpt-4o-mini", "dear", "dear-mini", price_in=1.0, price_out=4.0),
        ],
        routing={"optimize": "cheapest"},
    )
    env = {
        "CHEAP_KEY": "sk-cheap",
        "DEAR_KEY": "sk-dear",
        "ROUTEGATE_STORE": redis_server.url.rsplit("/", 1)[0] + "/5",
        "ROUTEGATE_MASTER_KEY": new_secret("master-"),
    }
    gateways = [
        GatewayProcess(
            tmp_path_factory.mktemp(f"share-{name}"),
            config=config,
            env=env,
            admin_key=admin_key,
            name=f"gw-{name}",
        )
        for name in ("a", "b")
    ]
    for gateway in gateways:
        gateway.start()
    try:
        first, second = gateways
        key = first.create_key("shared")["key"]
        cheap.enqueue(Status(429, headers=(("retry-after", "30"),)))
        with first.openai(key) as client:
            served = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert served.headers["x-provider-used"] == "dear"  # fell back after the 429
        assert len(cheap.chat_requests()) == 1
        time.sleep(2.5)  # one exchange interval each, with margin
        with second.openai(key) as client:
            for _ in range(3):
                answer = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
                assert answer.headers["x-provider-used"] == "dear"
                assert answer.headers["x-fallback-used"] == "false"
        assert len(cheap.chat_requests()) == 1, "the other gateway never called the provider"
        cheap.set_default(Reply())
    finally:
        for gateway in gateways:
            gateway.stop()
