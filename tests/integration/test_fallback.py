"""Fallback between two providers of the same model (SPEC §3 step 6, §4)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from support.checks import assert_error, chat_body, read_sse, sse_json_events
from support.faults import MOVE_ON
from support.gateway import GatewayProcess, gateway_config, offer, openai_provider
from support.upstream import CutStream, Hang, Reply, Status, UpstreamServer, closed_port

A_TEXT = "served by provider A"
B_TEXT = "served by provider B, the fallback"


def two_provider_config(a_url: str, b_url: str) -> dict[str, Any]:
    # A is much cheaper, so it ranks first under every strategy that weighs cost.
    return gateway_config(
        [
            openai_provider("upstream-a", a_url, "UPSTREAM_A_KEY"),
            openai_provider("upstream-b", b_url, "UPSTREAM_B_KEY"),
        ],
        [
            offer("gpt-4o", "upstream-a", "a-gpt-4o", price_in=0.5, price_out=1.0),
            offer("gpt-4o", "upstream-b", "b-gpt-4o", price_in=5.0, price_out=20.0),
        ],
        failover=MOVE_ON,  # moving on is the point here; retrying in place has its own suite
    )


@pytest.fixture
def env(provider_key_a: str, provider_key_b: str) -> dict[str, str]:
    return {"UPSTREAM_A_KEY": provider_key_a, "UPSTREAM_B_KEY": provider_key_b}


@pytest.fixture
def pair(make_gateway, upstream_a: UpstreamServer, upstream_b: UpstreamServer, env):
    upstream_a.set_default(Reply(text=A_TEXT))
    upstream_b.set_default(Reply(text=B_TEXT))
    return make_gateway(
        two_provider_config(upstream_a.base_url, upstream_b.base_url), env, name="gw-pair"
    )


def _chat(gw: GatewayProcess, key: str, **body: Any) -> httpx.Response:
    with gw.http(key, timeout=30) as http:
        return http.post("/v1/chat/completions", json=chat_body(model="gpt-4o", **body))


def _assert_served_by_b_after_a_failed(resp: httpx.Response, provider_key_b: str, upstream_b):
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["choices"][0]["message"]["content"] == B_TEXT
    assert body["model"] == "gpt-4o"
    h = resp.headers
    assert h.get("x-provider-used") == "upstream-b"
    assert h.get("x-fallback-used") == "true"
    assert h.get("x-fallback-depth") == "1"
    attempted = h.get("x-fallback-attempted-providers") or ""
    assert "upstream-a" in attempted, f"X-Fallback-Attempted-Providers: {attempted!r}"
    meta = body["routing_metadata"]
    assert meta["provider"] == "upstream-b"
    assert meta["candidates_viable"] == 2
    chain = meta.get("fallback_chain")
    assert isinstance(chain, list) and len(chain) == 2, chain
    assert chain[0]["provider"] == "upstream-a" and chain[0]["status"] == "failed"
    assert chain[0].get("reason")
    assert chain[1]["provider"] == "upstream-b" and chain[1]["status"] == "success"
    req_b = upstream_b.last_chat()
    assert req_b.header("authorization") == f"Bearer {provider_key_b}"
    assert req_b.json["model"] == "b-gpt-4o"


def test_healthy_primary_serves_without_fallback(pair, upstream_a, upstream_b, admin_key):
    resp = _chat(pair, admin_key)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == A_TEXT
    assert resp.headers.get("x-fallback-used") == "false"
    assert resp.headers.get("x-fallback-depth") == "0"
    assert len(upstream_a.chat_requests()) == 1 and upstream_b.chat_requests() == []


def test_500_on_primary_is_served_by_second(pair, upstream_a, upstream_b, admin_key, env):
    provider_key_a, provider_key_b = env["UPSTREAM_A_KEY"], env["UPSTREAM_B_KEY"]
    upstream_a.enqueue(Status(500, message="boom"))
    resp = _chat(pair, admin_key)
    _assert_served_by_b_after_a_failed(resp, provider_key_b, upstream_b)
    assert len(upstream_a.chat_requests()) == 1
    assert upstream_a.last_chat().header("authorization") == f"Bearer {provider_key_a}"
    assert provider_key_a not in resp.text and provider_key_b not in resp.text


def test_429_on_primary_is_served_by_second(pair, upstream_a, upstream_b, admin_key, env):
    upstream_a.enqueue(Status(429, headers=(("Retry-After", "30"),)))
    resp = _chat(pair, admin_key)
    _assert_served_by_b_after_a_failed(resp, env["UPSTREAM_B_KEY"], upstream_b)


def test_timeout_on_primary_is_served_by_second(pair, upstream_a, upstream_b, admin_key, env):
    upstream_a.enqueue(Hang(20))
    t0 = time.monotonic()
    resp = _chat(pair, admin_key)
    elapsed = time.monotonic() - t0
    _assert_served_by_b_after_a_failed(resp, env["UPSTREAM_B_KEY"], upstream_b)
    assert elapsed < 6.0, f"fallback after timeout took {elapsed:.1f}s"


def test_connect_error_on_primary_is_served_by_second(make_gateway, upstream_b, env, admin_key):
    upstream_b.set_default(Reply(text=B_TEXT))
    gw = make_gateway(
        two_provider_config(f"http://127.0.0.1:{closed_port()}/v1", upstream_b.base_url),
        env,
        name="gw-pair-closed",
    )
    resp = _chat(gw, admin_key)
    _assert_served_by_b_after_a_failed(resp, env["UPSTREAM_B_KEY"], upstream_b)


def test_400_on_primary_is_not_failed_over(pair, upstream_a, upstream_b, admin_key):
    upstream_a.enqueue(Status(400, message="bad 'tools' schema"))
    resp = _chat(pair, admin_key)
    err = assert_error(resp, 400, "invalid_request")
    assert "bad 'tools' schema" in err["message"]
    assert upstream_b.chat_requests() == [], "a 400 must not be failed over"


def test_allow_fallbacks_false_returns_the_error(pair, upstream_a, upstream_b, admin_key):
    upstream_a.enqueue(Status(500))
    resp = _chat(pair, admin_key, routing={"allow_fallbacks": False})
    assert_error(resp, 502, "provider_error")
    assert upstream_b.chat_requests() == []


def test_max_fallback_attempts_zero_returns_the_error(pair, upstream_a, upstream_b, admin_key):
    upstream_a.enqueue(Status(503))
    resp = _chat(pair, admin_key, routing={"max_fallback_attempts": 0})
    assert_error(resp, 502, "provider_error")
    assert upstream_b.chat_requests() == []


def test_both_failing_is_502_after_two_attempts(pair, upstream_a, upstream_b, admin_key):
    upstream_a.set_default(Status(500))
    upstream_b.set_default(Status(502))
    resp = _chat(pair, admin_key)
    assert_error(resp, 502, "provider_error")
    assert len(upstream_a.chat_requests()) == 1
    assert len(upstream_b.chat_requests()) == 1


def test_stream_falls_back_before_first_byte(pair, upstream_a, upstream_b, admin_key):
    upstream_a.enqueue(Status(500))
    with (
        pair.http(admin_key, timeout=30) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=chat_body(model="gpt-4o", stream=True)
        ) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers.get("x-provider-used") == "upstream-b"
        assert resp.headers.get("x-fallback-used") == "true"
        events = read_sse(resp)
    assert events[-1] == (None, "[DONE]")
    chunks = sse_json_events(events)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == B_TEXT
    chain = chunks[-1]["routing_metadata"]["fallback_chain"]
    assert [c["provider"] for c in chain] == ["upstream-a", "upstream-b"]


def test_stream_never_falls_back_after_first_byte(pair, upstream_a, upstream_b, admin_key):
    upstream_a.enqueue(CutStream(after_chunks=3, reply=Reply(text=A_TEXT)))
    with (
        pair.http(admin_key, timeout=30) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=chat_body(model="gpt-4o", stream=True)
        ) as resp,
    ):
        assert resp.status_code == 200
        events = read_sse(resp)
    assert (None, "[DONE]") not in events
    assert any(ev == "error" for ev, _ in events), events[-3:]
    assert upstream_b.chat_requests() == [], "fell back after bytes reached the client"
