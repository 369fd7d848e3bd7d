"""Chat completions through the gateway to a real OpenAI-format upstream (SPEC §2, §4)."""

from __future__ import annotations

import math
import time
from typing import Any

from support.checks import chat_body, read_sse, sse_json_events
from support.configs import GPT4O_UP
from support.gateway import GatewayProcess
from support.upstream import DEFAULT_TEXT, Reply, UpstreamServer

EXTENSION_FIELDS = ("routing", "models", "gateway_metadata", "extensions")
TEXT = "Paris is the capital of France, and croissants are great."


def _meta(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("routing_metadata")
    assert isinstance(meta, dict), f"no routing_metadata in {body}"
    return meta


# --- non-streaming -------------------------------------------------------------------


def test_sdk_completion_content_equals_upstream(gateway: GatewayProcess, upstream_a, admin_key):
    upstream_a.set_default(Reply(text=TEXT, prompt_tokens=21, completion_tokens=13))
    with gateway.openai(admin_key) as client:
        resp = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}]
        )
    assert resp.choices[0].message.content == TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o", "model must be the canonical id, not the provider's id"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (21, 13)
    assert len(upstream_a.chat_requests()) == 1


def test_upstream_receives_provider_key_and_provider_model_id(
    gateway: GatewayProcess, upstream_a: UpstreamServer, admin_key: str, provider_key_a: str
):
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert resp.status_code == 200, resp.text
    req = upstream_a.last_chat()
    assert req.method == "POST"
    assert req.path == "/v1/chat/completions"
    assert req.header("authorization") == f"Bearer {provider_key_a}"
    assert req.json["model"] == GPT4O_UP
    assert req.json["messages"] == [{"role": "user", "content": "Say hello."}]
    for name, value in req.headers.items():
        assert admin_key not in value, f"gateway key forwarded upstream in header {name}"
    assert admin_key.encode() not in req.raw_body


def test_routing_metadata_non_streaming(gateway: GatewayProcess, upstream_a, admin_key):
    upstream_a.set_default(Reply(text=TEXT, prompt_tokens=1000, completion_tokens=500))
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert resp.status_code == 200, resp.text
    meta = _meta(resp.json())
    assert meta["provider"] == "upstream-a"
    assert meta["provider_model_id"] == GPT4O_UP
    assert meta["model_canonical"] == "gpt-4o"
    assert meta["region"] == "us-east-1"
    assert meta["key_source"] == "platform"
    assert meta["routing_strategy"] == "balanced"
    assert meta["candidates_viable"] == 1, meta
    assert meta["candidates_total"] >= meta["candidates_viable"]
    assert 0 <= meta["routing_decision_ms"] < 1000
    assert meta["total_latency_ms"] >= 0
    assert isinstance(meta["baseline"], str) and meta["baseline"]
    assert 0 <= meta["saved_pct"] <= 100
    cost = meta["cost"]
    assert cost["input_tokens"] == 1000
    assert cost["output_tokens"] == 500
    # price of the offer: 2.5 $/1M input, 10 $/1M output
    expected = (1000 * 2.5 + 500 * 10.0) / 1_000_000
    assert math.isclose(cost["provider_cost_usd"], expected, rel_tol=1e-6), cost
    assert cost["billable_cost_usd"] >= 0
    assert "fallback_chain" not in meta or not meta["fallback_chain"]


def test_response_headers_non_streaming(gateway: GatewayProcess, admin_key: str):
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert resp.status_code == 200, resp.text
    h = resp.headers
    assert h.get("x-request-id")
    assert h.get("x-provider-used") == "upstream-a"
    assert h.get("x-model-requested") == "gpt-4o"
    assert h.get("x-model-canonical") == "gpt-4o"
    assert h.get("x-model-used") in {"gpt-4o", GPT4O_UP}
    assert h.get("x-routing-strategy") == "balanced"
    assert float(h["x-routing-time-ms"]) >= 0
    assert h.get("x-api-key-source") == "platform"
    assert h.get("x-fallback-used") == "false"
    assert h.get("x-fallback-depth") == "0"
    cost = float(h["x-cost"])
    meta_cost = _meta(resp.json())["cost"]
    assert cost >= 0
    assert math.isclose(cost, meta_cost["billable_cost_usd"], rel_tol=1e-3, abs_tol=1e-9) or (
        math.isclose(cost, meta_cost["provider_cost_usd"], rel_tol=1e-3, abs_tol=1e-9)
    )


def test_extension_fields_are_stripped(gateway: GatewayProcess, upstream_a, admin_key):
    body = chat_body(
        model="gpt-4o",
        routing={"optimize": "cost", "max_fallback_attempts": 2},
        gateway_metadata={"tags": ["suite"], "user_id": "u-42", "custom_fields": {"a": "b"}},
        extensions={"anthropic": {"top_k": 5}},
    )
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert _meta(resp.json())["routing_strategy"] == "cost"
    sent = upstream_a.last_chat().json
    for field in EXTENSION_FIELDS:
        assert field not in sent, f"gateway extension {field!r} forwarded upstream: {sent}"
    assert "top_k" not in sent, "anthropic passthrough merged into an openai-format request"
    assert sent["model"] == GPT4O_UP


def test_models_list_field_is_stripped(gateway: GatewayProcess, upstream_a, admin_key):
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(models=["gpt-4o"]))
    assert resp.status_code == 200, resp.text
    sent = upstream_a.last_chat().json
    assert "models" not in sent
    assert sent["model"] == GPT4O_UP


def test_openai_fields_are_forwarded(gateway: GatewayProcess, upstream_a, admin_key):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    fields: dict[str, Any] = {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": ["\n\n"],
        "seed": 7,
        "user": "end-user-1",
        "presence_penalty": 0.1,
        "tools": tools,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
    }
    with gateway.openai(admin_key) as client:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Weather in Paris as JSON"}],
            **fields,
        )
    sent = upstream_a.last_chat().json
    for name, value in fields.items():
        assert sent.get(name) == value, f"{name}: sent {sent.get(name)!r}, expected {value!r}"


def test_unknown_top_level_field_forwarded_to_openai_format(
    gateway: GatewayProcess, upstream_a, admin_key
):
    with gateway.openai(admin_key) as client:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"x_vendor_flag": {"level": 3}},
        )
    assert upstream_a.last_chat().json.get("x_vendor_flag") == {"level": 3}


def test_live_key_with_auto_reaches_upstream_not_mock(
    gateway: GatewayProcess, upstream_a, admin_key
):
    with gateway.openai(admin_key) as client:
        resp = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hello there"}]
        )
    assert resp.choices[0].message.content == DEFAULT_TEXT
    meta = resp.model_extra["routing_metadata"]
    assert meta["provider"] == "upstream-a"
    assert resp.model in {"gpt-4o", "gpt-4o-mini"}
    assert len(upstream_a.chat_requests()) == 1


# --- streaming -----------------------------------------------------------------------


def test_sdk_stream_content_equals_upstream(gateway: GatewayProcess, upstream_a, admin_key):
    upstream_a.set_default(Reply(text=TEXT, prompt_tokens=17, completion_tokens=11))
    with gateway.openai(admin_key) as client:
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Capital of France?"}],
            stream=True,
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert "stop" in finish
    last = chunks[-1]
    assert last.choices == [], "the last chunk must have choices: []"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (17, 11)
    meta = last.model_extra.get("routing_metadata")
    assert isinstance(meta, dict), "final chunk lacks routing_metadata"
    assert meta["provider"] == "upstream-a"
    assert meta["provider_model_id"] == GPT4O_UP
    assert meta["model_canonical"] == "gpt-4o"
    assert meta["ttft_ms"] >= 0
    assert meta["cost"]["output_tokens"] == 11


def test_stream_forces_include_usage_upstream(gateway: GatewayProcess, upstream_a, admin_key):
    with gateway.openai(admin_key) as client:
        list(
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    sent = upstream_a.last_chat().json
    assert sent["stream"] is True
    assert sent.get("stream_options", {}).get("include_usage") is True, sent
    assert sent["model"] == GPT4O_UP


def test_raw_stream_sse_framing_and_headers(gateway: GatewayProcess, upstream_a, admin_key):
    upstream_a.set_default(Reply(text=TEXT))
    with (
        gateway.http(admin_key) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=chat_body(model="gpt-4o", stream=True)
        ) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        h = resp.headers
        assert h.get("x-request-id")
        assert h.get("x-provider-used") == "upstream-a"
        assert h.get("x-model-requested") == "gpt-4o"
        assert h.get("x-model-canonical") == "gpt-4o"
        assert h.get("x-routing-strategy") == "balanced"
        assert h.get("x-api-key-source") == "platform"
        assert h.get("x-fallback-used") == "false"
        events = read_sse(resp)
    assert events[-1] == (None, "[DONE]"), events[-3:]
    assert all(ev is None for ev, _ in events), "unexpected named SSE events"
    chunks = sse_json_events(events)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    final = chunks[-1]
    assert final["choices"] == []
    assert (
        final["usage"]["total_tokens"]
        == final["usage"]["prompt_tokens"] + (final["usage"]["completion_tokens"])
    )
    assert final["routing_metadata"]["provider"] == "upstream-a"
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"]
    )
    assert text == TEXT


def test_stream_chunks_report_canonical_model(gateway: GatewayProcess, admin_key: str):
    with (
        gateway.http(admin_key) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=chat_body(model="gpt-4o", stream=True)
        ) as resp,
    ):
        assert resp.status_code == 200
        chunks = sse_json_events(read_sse(resp))
    models = {c.get("model") for c in chunks}
    assert models == {"gpt-4o"}, f"chunk models: {models}"


def test_stream_client_usage_opt_out_still_ends_with_usage_chunk(
    gateway: GatewayProcess, upstream_a, admin_key
):
    body = chat_body(model="gpt-4o", stream=True, stream_options={"include_usage": False})
    with (
        gateway.http(admin_key) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200
        events = read_sse(resp)
    assert upstream_a.last_chat().json["stream_options"]["include_usage"] is True
    final = sse_json_events(events)[-1]
    assert final["choices"] == [] and "usage" in final and "routing_metadata" in final
    assert events[-1] == (None, "[DONE]")


# --- metering (optional endpoint) ----------------------------------------------------


def _usage_requests(gateway: GatewayProcess, key: str) -> int:
    with gateway.http(key) as http:
        resp = http.get("/v1/usage", params={"period": "day"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body.get("requests"), int), body
    return int(body["requests"])


def _settled_usage_requests(gateway: GatewayProcess, key: str, at_least: int = 0) -> int:
    """Records land from a background writer (and earlier tests share this workspace):
    wait until the count reaches ``at_least`` and then holds still for a moment."""
    deadline = time.monotonic() + 5.0
    count = _usage_requests(gateway, key)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = _usage_requests(gateway, key)
        if again == count and count >= at_least:
            break
        count = again
    return count


def test_one_usage_record_per_request(gateway: GatewayProcess, admin_key: str):
    created = gateway.create_key("usage-probe")
    key = created["key"]
    before = _settled_usage_requests(gateway, key)
    with gateway.http(key) as http:
        ok = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
        assert ok.status_code == 200, ok.text
        bad = http.post("/v1/chat/completions", json=chat_body(model="no-such-model-xyz"))
        assert bad.status_code == 404
    after = _settled_usage_requests(gateway, key, at_least=before + 2)
    # one success + one failure, each metered exactly once
    assert after - before == 2, f"usage requests went {before} -> {after}"
