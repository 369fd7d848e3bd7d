"""Stream deadlines say what happened: ``first_byte`` and ``stall`` are separate timers.

Two real OpenAI-format upstreams (``tests/support/faults.py``'s pair) with ``first_byte`` 2 s
and ``stall`` 1 s, deliberately different: a stall timer that also ran before the first byte
would fail a hanging upstream after 1 s while claiming "no first byte within 2 s". Timing
margins are generous (the machine is shared); what is asserted tightly is which side of the
other timer each failure lands on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.checks import assert_error_shape, chat_body
from support.faults import (
    B_TEXT,
    MODEL,
    NO_BREAKER,
    PRIMARY,
    SECONDARY,
    StreamResult,
    answer_events,
    deepen_backlog,
    pair_config,
    post_stream,
)
from support.gateway import GatewayProcess
from support.upstream import Hang, Reply, ScriptedStream, UpstreamServer

FIRST_BYTE_S = 2.0
STALL_S = 1.0
DEADLINES = {"first_byte": FIRST_BYTE_S, "total": 8.0, "stall": STALL_S}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[UpstreamServer, UpstreamServer]]:
    with UpstreamServer("deadline-a") as a, UpstreamServer("deadline-b") as b:
        deepen_backlog(a)
        deepen_backlog(b)
        yield a, b


@pytest.fixture
def gateway_and_key(
    make_gateway: Callable[..., GatewayProcess],
    pair: tuple[UpstreamServer, UpstreamServer],
    provider_key_a: str,
    provider_key_b: str,
) -> tuple[GatewayProcess, str]:
    a, b = pair
    for up in pair:
        up.reset()
    a.set_default(Reply(text="primary"))
    b.set_default(Reply(text=B_TEXT))
    config: dict[str, Any] = pair_config(a.base_url, b.base_url, health=NO_BREAKER)
    for provider in config["providers"]:
        provider["timeout_s"] = dict(DEADLINES)
    env = {"UPSTREAM_A_KEY": provider_key_a, "UPSTREAM_B_KEY": provider_key_b}
    gw = make_gateway(config, env, name="gw-deadlines")
    return gw, gw.create_key("deadlines")["key"]


def test_hang_before_first_byte_fails_over_after_first_byte_seconds(
    gateway_and_key: tuple[GatewayProcess, str], pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    gw, key = gateway_and_key
    primary, secondary = pair
    primary.enqueue(Hang(6.0))
    with gw.http(key, timeout=20.0) as http:
        streamed = post_stream(http, chat_body(model=MODEL))
    assert streamed.status == 200 and streamed.done, streamed.raw[-500:]
    assert streamed.headers["x-provider-used"] == SECONDARY
    assert streamed.text == B_TEXT
    # Past the first-byte deadline (2 s), and well past the stall deadline (1 s).
    assert 1.8 <= streamed.headers_after_s <= 3.5, (
        f"fell back after {streamed.headers_after_s:.2f} s; first_byte is {FIRST_BYTE_S} s"
    )
    chain = streamed.final["routing_metadata"]["fallback_chain"]
    assert [(c["provider"], c["status"]) for c in chain] == [
        (PRIMARY, "failed"),
        (SECONDARY, "success"),
    ]
    assert "timeout" in chain[0]["reason"], chain
    assert (len(primary.chat_requests()), len(secondary.chat_requests())) == (1, 1)


def _timed_out(streamed: StreamResult) -> str:
    """The 504 ``provider_timeout`` a stream gets when every attempt timed out; its message."""
    assert streamed.status == 504, streamed.raw[:500]
    error = assert_error_shape(json.loads(streamed.raw))
    assert error["code"] == "provider_timeout", error
    return str(error["message"])


def test_every_upstream_hangs_before_first_byte_each_gets_first_byte_seconds(
    gateway_and_key: tuple[GatewayProcess, str], pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    gw, key = gateway_and_key
    primary, secondary = pair
    primary.enqueue(Hang(8.0))
    secondary.enqueue(Hang(8.0))
    with gw.http(key, timeout=30.0) as http:
        streamed = post_stream(http, chat_body(model=MODEL))
    message = _timed_out(streamed)
    assert f"no first token within {FIRST_BYTE_S:g} s" in message, message
    # Two attempts of 2 s each; a stall timer before the first byte would make it 2 × 1 s.
    assert 3.7 <= streamed.elapsed_s <= 6.5, f"failed after {streamed.elapsed_s:.2f} s"
    assert (len(primary.chat_requests()), len(secondary.chat_requests())) == (1, 1)


def test_headers_then_silence_is_a_first_byte_timeout_not_a_stall(
    gateway_and_key: tuple[GatewayProcess, str], pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    """Headers at once, then no body byte: still the first-byte deadline (it covers the
    first body byte), so 2 s per attempt, not the 1 s stall."""
    gw, key = gateway_and_key
    primary, secondary = pair
    silent = ScriptedStream((), end="hang", hang_s=8.0)
    primary.enqueue(silent)
    secondary.enqueue(silent)
    with gw.http(key, timeout=30.0) as http:
        streamed = post_stream(http, chat_body(model=MODEL))
    message = _timed_out(streamed)
    assert f"no first token within {FIRST_BYTE_S:g} s" in message, message
    assert 3.7 <= streamed.elapsed_s <= 6.5, f"failed after {streamed.elapsed_s:.2f} s"


def test_hang_after_chunks_is_a_stall_after_stall_seconds(
    gateway_and_key: tuple[GatewayProcess, str], pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    gw, key = gateway_and_key
    primary, secondary = pair
    steps = answer_events(["Hello ", "wor"], finish_reason=None, done=False)
    primary.enqueue(ScriptedStream(tuple(steps), end="hang", hang_s=6.0))
    with gw.http(key, timeout=20.0) as http:
        streamed = post_stream(http, chat_body(model=MODEL))
    assert streamed.headers["x-provider-used"] == PRIMARY
    assert streamed.text == "Hello wor"
    errors = streamed.errors
    assert len(errors) == 1, streamed.raw[-800:]
    error = errors[0]["error"]
    assert error["code"] == "provider_timeout", error
    assert f"stalled for {STALL_S:g} s" in error["message"], error
    # After the stall deadline (1 s), and before the first-byte one would have fired again.
    assert 0.9 <= streamed.elapsed_s <= 1.9, f"stall noticed after {streamed.elapsed_s:.2f} s"
    assert (len(primary.chat_requests()), len(secondary.chat_requests())) == (1, 0)
