"""Every error row of SPEC §6, each checked for status, shape, code, headers and secrets."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from support.checks import (
    assert_error,
    assert_error_shape,
    assert_provider_error_headers,
    chat_body,
    sse_json_events,
)
from support.configs import MAX_BODY_BYTES, single_upstream_config
from support.gateway import GatewayProcess, new_secret
from support.upstream import (
    CutStream,
    Hang,
    Reply,
    Status,
    UpstreamServer,
    closed_port,
    iter_sse,
)

# --- request validation and auth (shared gateway) ------------------------------------


@pytest.fixture
def secrets(provider_key_a: str, admin_key: str) -> tuple[str, ...]:
    return (provider_key_a, admin_key)


def test_missing_key_is_401(gateway: GatewayProcess, secrets):
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert_error(resp, 401, "invalid_api_key", secrets=secrets)


def test_unknown_key_is_401(gateway: GatewayProcess, upstream_a, secrets):
    with gateway.http(new_secret("rg_live_")) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert_error(resp, 401, "invalid_api_key", secrets=secrets)
    assert upstream_a.chat_requests() == []


def test_invalid_json_is_400(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            content=b'{"model": "gpt-4o", "messages": [',
            headers={"Content-Type": "application/json"},
        )
    assert_error(resp, 400, "invalid_request", secrets=secrets)


def test_missing_messages_is_400(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json={"model": "gpt-4o"})
    assert_error(resp, 400, "missing_required_parameter", param="messages", secrets=secrets)


def test_wrong_field_type_names_param(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o", temperature="hot"))
    assert_error(resp, 400, "invalid_request", param="temperature", secrets=secrets)


def test_model_and_models_both_is_400(gateway: GatewayProcess, admin_key, upstream_a, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json=chat_body(model="gpt-4o", models=["gpt-4o", "gpt-4o-mini"]),
        )
    err = assert_error(resp, 400, "invalid_request", secrets=secrets)
    assert err["param"] in {"model", "models"}, err
    assert upstream_a.chat_requests() == []


def test_bad_routing_field_names_param(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json=chat_body(model="gpt-4o", routing={"max_fallback_attempts": 99}),
        )
    assert_error(
        resp, 400, "invalid_request", param="routing.max_fallback_attempts", secrets=secrets
    )


def test_unknown_routing_policy_header_is_400(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json=chat_body(model="gpt-4o"),
            headers={"X-Routing-Policy": "no-such-policy"},
        )
    assert_error(resp, 400, "invalid_request", param="X-Routing-Policy", secrets=secrets)


def test_only_byok_and_only_platform_is_400(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json=chat_body(model="gpt-4o", routing={"only_byok": True, "only_platform": True}),
        )
    assert_error(resp, 400, "invalid_request", param="routing.only_byok", secrets=secrets)


def test_gateway_metadata_violation_names_param(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json=chat_body(model="gpt-4o", gateway_metadata={"user_id": "u" * 300}),
        )
    assert_error(resp, 400, "invalid_request", param="gateway_metadata.user_id", secrets=secrets)


def test_unknown_model_is_404(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="no-such-model-20991231"))
    assert_error(resp, 404, "model_not_found", secrets=secrets)


def test_unknown_path_is_404(gateway: GatewayProcess, admin_key, secrets):
    with gateway.http(admin_key) as http:
        resp = http.get("/v1/this-path-does-not-exist")
    assert_error(resp, 404, "not_found", secrets=secrets)


def test_body_over_limit_is_413(gateway: GatewayProcess, admin_key, upstream_a, secrets):
    big = "a" * (MAX_BODY_BYTES + 1024)
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(big, model="gpt-4o"))
    assert_error(resp, 413, "request_too_large", secrets=secrets)
    assert upstream_a.chat_requests() == []


def test_key_without_inference_scope_is_403(gateway: GatewayProcess, upstream_a, secrets):
    key = gateway.create_key("read-only", scopes=["read"])["key"]
    with gateway.http(key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert_error(resp, 403, "forbidden", secrets=(*secrets, key))
    assert upstream_a.chat_requests() == []


def test_model_outside_key_allow_list_is_403(gateway: GatewayProcess, upstream_a, secrets):
    key = gateway.create_key("mini-only", allowed_models=["gpt-4o-mini"])["key"]
    with gateway.http(key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
        assert_error(resp, 403, "model_not_allowed", secrets=(*secrets, key))
        ok = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o-mini"))
    assert ok.status_code == 200, ok.text
    assert len(upstream_a.chat_requests()) == 1


def test_image_without_vision_offer_is_409(gateway: GatewayProcess, admin_key, secrets):
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    with gateway.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}]},
        )
    err = assert_error(resp, 409, "policy_conflict", secrets=secrets)
    message = err["message"].lower()
    assert "vision" in message or "capabilit" in message, err["message"]


def test_prompt_over_context_window_is_400(gateway: GatewayProcess, admin_key, secrets):
    # gpt-4o-mini's only live offer has a 2,000-token window; ~6,000 tokens of prompt.
    prompt = "The quick brown fox jumps over the lazy dog. " * 600
    with gateway.http(admin_key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(prompt, model="gpt-4o-mini"))
    assert_error(resp, 400, "context_length_exceeded", secrets=secrets)


# --- upstream failures (fresh gateway per test: no shared health/breaker state) ----------


@pytest.fixture
def fresh(make_gateway, upstream_a: UpstreamServer, provider_key_a: str) -> GatewayProcess:
    return make_gateway(
        single_upstream_config(upstream_a.base_url),
        {"UPSTREAM_A_KEY": provider_key_a},
        name="gw-errors",
    )


def _post(gw: GatewayProcess, key: str, **body) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    with gw.http(key, timeout=30) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o", **body))
    return resp, time.monotonic() - t0


def test_upstream_400_is_400_not_retried(fresh, upstream_a, admin_key, secrets):
    upstream_a.set_default(
        Status(400, message="Invalid value for 'logit_bias': token 99999999 out of range.")
    )
    resp, _ = _post(fresh, admin_key)
    err = assert_error(resp, 400, "invalid_request", secrets=secrets)
    assert "token 99999999 out of range" in err["message"], "provider message not propagated"
    assert len(upstream_a.chat_requests()) == 1, "an upstream 400 must not be retried"
    assert_provider_error_headers(resp, "upstream-a", retryable=False)


def test_upstream_401_is_provider_auth_error(fresh, upstream_a, admin_key, secrets):
    upstream_a.set_default(Status(401, message="Incorrect API key provided."))
    resp, _ = _post(fresh, admin_key)
    assert_error(resp, 401, "provider_auth_error", secrets=secrets)
    assert_provider_error_headers(resp, "upstream-a")


def test_upstream_429_is_429_with_retry_after(fresh, upstream_a, admin_key, secrets):
    upstream_a.set_default(
        Status(429, message="Rate limit reached", headers=(("Retry-After", "7"),))
    )
    resp, _ = _post(fresh, admin_key)
    assert_error(resp, 429, "rate_limit_exceeded", secrets=secrets)
    retry_after = resp.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, (
        f"Retry-After: {retry_after!r}"
    )
    assert_provider_error_headers(resp, "upstream-a", retryable=True)


@pytest.mark.parametrize("upstream_status", [500, 503])
def test_upstream_5xx_is_502(fresh, upstream_a, admin_key, secrets, upstream_status):
    upstream_a.set_default(Status(upstream_status, message="The server had an error"))
    resp, _ = _post(fresh, admin_key)
    assert_error(resp, 502, "provider_error", secrets=secrets)
    assert_provider_error_headers(resp, "upstream-a", retryable=True)
    assert len(upstream_a.chat_requests()) >= 1


def test_upstream_other_4xx_is_502(fresh, upstream_a, admin_key, secrets):
    upstream_a.set_default(Status(404, message="The model does not exist"))
    resp, _ = _post(fresh, admin_key)
    assert_error(resp, 502, "provider_error", secrets=secrets)
    assert_provider_error_headers(resp, "upstream-a")


def test_upstream_hang_is_504_within_timeout(fresh, upstream_a, admin_key, secrets):
    upstream_a.set_default(Hang(20))
    resp, elapsed = _post(fresh, admin_key)
    assert_error(resp, 504, "provider_timeout", secrets=secrets)
    assert_provider_error_headers(resp, "upstream-a")
    # provider timeouts: first_byte 1.5 s, total 3 s
    assert elapsed < 6.0, f"504 took {elapsed:.1f}s"


def test_streaming_upstream_hang_is_504_within_first_byte_timeout(
    fresh, upstream_a, admin_key, secrets
):
    upstream_a.set_default(Hang(20))
    t0 = time.monotonic()
    with (
        fresh.http(admin_key, timeout=30) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=chat_body(model="gpt-4o", stream=True)
        ) as resp,
    ):
        resp.read()
    elapsed = time.monotonic() - t0
    assert_error(resp, 504, "provider_timeout", secrets=secrets)
    assert elapsed < 5.0, f"504 took {elapsed:.1f}s (first_byte timeout is 1.5 s)"


def test_upstream_closed_port_is_502(make_gateway, provider_key_a, admin_key, secrets):
    config = single_upstream_config(f"http://127.0.0.1:{closed_port()}/v1")
    gw = make_gateway(config, {"UPSTREAM_A_KEY": provider_key_a}, name="gw-closed")
    resp, elapsed = _post(gw, admin_key)
    assert_error(resp, 502, "provider_error", secrets=secrets)
    assert_provider_error_headers(resp, "upstream-a", retryable=True)
    assert elapsed < 5.0


def test_stream_cut_mid_answer_sends_error_event_and_no_done(fresh, upstream_a, admin_key, secrets):
    # role chunk + 3 content pieces, then the upstream drops the connection
    upstream_a.set_default(CutStream(after_chunks=4, reply=Reply(text="one two three four five")))
    with (
        fresh.http(admin_key, timeout=30) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=chat_body(model="gpt-4o", stream=True)
        ) as resp,
    ):
        assert resp.status_code == 200
        raw = resp.read().decode()
    for secret in secrets:
        assert secret not in raw
    events = list(iter_sse(iter(raw.splitlines())))
    assert (None, "[DONE]") not in events, "a failed stream must not end with [DONE]"
    errors = [data for ev, data in events if ev == "error"]
    assert len(errors) == 1, f"expected one SSE error event, got events: {events[-3:]}"
    err = assert_error_shape(json.loads(errors[0]))
    assert err["type"] == "provider_error", err
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in sse_json_events([e for e in events if e[0] is None])
        if c.get("choices")
    )
    assert text == "one two three ", f"partial text relayed: {text!r}"


def test_sdk_raises_on_stream_cut(fresh, upstream_a, admin_key):
    import openai

    upstream_a.set_default(CutStream(after_chunks=3))
    with fresh.openai(admin_key) as client:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass


# --- secrets -------------------------------------------------------------------------


def test_upstream_error_echoing_provider_key_is_redacted(
    fresh, upstream_a, admin_key, provider_key_a
):
    upstream_a.set_default(
        Status(400, message=f"Invalid request made with key {provider_key_a} (model gpt-4o)")
    )
    resp, _ = _post(fresh, admin_key)
    assert resp.status_code == 400, resp.text
    assert provider_key_a not in resp.text, "provider key echoed by upstream leaked to client"


def test_logs_contain_no_secrets(make_gateway, upstream_a, provider_key_a, admin_key: str):
    gw = make_gateway(
        single_upstream_config(upstream_a.base_url),
        {"UPSTREAM_A_KEY": provider_key_a},
        name="gw-secrets",
    )
    created = gw.create_key("log-probe")
    key = created["key"]
    upstream_a.enqueue(Status(401, message="Incorrect API key provided"), Status(500))
    with gw.http(key) as http:
        for _ in range(3):
            http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
        http.post("/v1/chat/completions", json=chat_body(model="gpt-4o", stream=True))
        http.post("/v1/chat/completions", json=chat_body(model="nope-model"))
    with gw.http(new_secret("rg_live_")) as http:
        bogus = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert bogus.status_code == 401
    gw.stop()
    assert len(upstream_a.chat_requests()) >= 4
    gw.assert_no_secrets(provider_key_a, admin_key, key)


def test_error_responses_never_leak_secrets_across_rows(
    gateway: GatewayProcess, admin_key, provider_key_a
):
    bodies = []
    with gateway.http(admin_key) as http:
        bodies.append(http.post("/v1/chat/completions", json={"model": "gpt-4o"}))
        bodies.append(http.post("/v1/chat/completions", content=b"not json"))
        bodies.append(http.get("/v1/nope"))
        bodies.append(
            http.post("/v1/chat/completions", json=chat_body(model="gpt-4o", temperature="x"))
        )
    assert all(b.status_code >= 400 for b in bodies)
    for b in bodies:
        assert provider_key_a not in b.text and admin_key not in b.text
