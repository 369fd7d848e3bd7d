"""GET /v1/usage (SPEC §1, §7): the calling key's workspace, metered per request.

Usage records reach the store from a background writer shortly after each response, so the
tests poll until the expected count shows up, then check once more that nothing else arrives.
Each counting test runs on its own gateway so that no other test's traffic lands in its
workspace.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from support.checks import assert_error, chat_body
from support.configs import single_upstream_config
from support.gateway import GatewayProcess
from support.upstream import Reply, UpstreamServer

SETTLE_S = 0.3
POLL_TIMEOUT_S = 5.0


def _usage(gw: GatewayProcess, key: str, period: str | None = "day") -> dict[str, Any]:
    params = {"period": period} if period is not None else {}
    with gw.http(key) as http:
        resp = http.get("/v1/usage", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body, dict)
    return body


def _usage_once_counted(gw: GatewayProcess, key: str, requests: int) -> dict[str, Any]:
    """Poll until ``requests`` are counted, then check that the count holds still."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    body = _usage(gw, key)
    while body["requests"] < requests and time.monotonic() < deadline:
        time.sleep(0.05)
        body = _usage(gw, key)
    time.sleep(SETTLE_S)
    settled = _usage(gw, key)
    assert settled == body, f"usage still changing: {body} -> {settled}"
    assert body["requests"] == requests, body
    return body


@pytest.fixture
def fresh_gateway(make_gateway, upstream_a: UpstreamServer, provider_key_a: str) -> GatewayProcess:
    return make_gateway(
        single_upstream_config(upstream_a.base_url),
        {"UPSTREAM_A_KEY": provider_key_a},
        name="gw-usage",
    )


def test_usage_counts_exactly_the_test_key_requests(fresh_gateway: GatewayProcess):
    key = fresh_gateway.create_key("usage-test-key", mode="test")["key"]
    assert key.startswith("rg_test_")
    input_tokens = output_tokens = 0
    with fresh_gateway.openai(key) as client:
        for content in ("one", "two, a little longer", "three"):
            resp = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": content}]
            )
            assert resp.model_extra["routing_metadata"]["provider"] == "mock"
            assert resp.usage is not None
            input_tokens += resp.usage.prompt_tokens
            output_tokens += resp.usage.completion_tokens
    body = _usage_once_counted(fresh_gateway, key, 3)
    assert body["object"] == "usage"
    assert body["period"] == "day"
    assert body["spend_usd"] == 0, "test keys are never billed"
    assert body["tokens"]["input"] == input_tokens
    assert body["tokens"]["output"] == output_tokens
    assert body["tokens"]["cached"] == 0 and body["tokens"]["reasoning"] == 0
    assert body["by_model"] == {"gpt-4o": {"spend_usd": 0, "requests": 3}}
    assert body["by_provider"] == {"mock": {"spend_usd": 0, "requests": 3}}
    assert body["saved_usd"] >= 0


def test_usage_spend_and_failures_for_a_live_key(
    fresh_gateway: GatewayProcess, upstream_a: UpstreamServer
):
    upstream_a.set_default(Reply(prompt_tokens=21, completion_tokens=13))
    key = fresh_gateway.create_key("usage-live-key")["key"]
    with fresh_gateway.http(key) as http:
        ok = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
        assert ok.status_code == 200, ok.text
        bad = http.post("/v1/chat/completions", json=chat_body(model="no-such-model-xyz"))
        assert bad.status_code == 404, bad.text
    body = _usage_once_counted(fresh_gateway, key, 2)
    expected_spend = (21 * 2.5 + 13 * 10.0) / 1e6  # single_upstream_config's gpt-4o price
    assert body["spend_usd"] == pytest.approx(expected_spend)
    assert body["tokens"]["input"] == 21 and body["tokens"]["output"] == 13
    assert body["by_provider"] == {
        "upstream-a": {"spend_usd": pytest.approx(expected_spend), "requests": 1}
    }
    assert set(body["by_model"]) == {"gpt-4o"}, "the unrouted failure names no served model"
    assert body["saved_usd"] == pytest.approx(0.0), "served by the baseline model itself"


def _period_starts() -> dict[str, datetime]:
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "day": today,
        "week": today - timedelta(days=today.weekday()),
        "month": today.replace(day=1),
    }


def test_usage_periods_start_at_midnight_utc(gateway: GatewayProcess, admin_key: str):
    before = _period_starts()
    answers = {period: _usage(gateway, admin_key, period) for period in before}
    after = _period_starts()  # a run across midnight UTC may see either start
    for period, body in answers.items():
        assert body["period"] == period
        assert body["since"].endswith("Z"), body
        since = datetime.fromisoformat(body["since"].replace("Z", "+00:00"))
        assert since in {before[period], after[period]}, body
    assert _usage(gateway, admin_key, None)["period"] == "day"


def test_usage_rejects_an_unknown_period(gateway: GatewayProcess, admin_key: str):
    with gateway.http(admin_key) as http:
        resp = http.get("/v1/usage", params={"period": "year"})
    assert_error(resp, 400, "invalid_request", param="period")


def test_usage_scopes(gateway: GatewayProcess):
    read_key = gateway.create_key("usage-read", scopes=["read"])["key"]
    admin_only = gateway.create_key("usage-admin-only", scopes=["admin"])["key"]
    assert _usage(gateway, read_key)["object"] == "usage"
    with gateway.http(admin_only) as http:
        assert_error(http.get("/v1/usage"), 403, "forbidden", secrets=(admin_only,))
    with gateway.http() as http:
        assert_error(http.get("/v1/usage"), 401, "invalid_api_key")
    with gateway.http("rg_live_not-a-real-key") as http:
        assert_error(http.get("/v1/usage"), 401, "invalid_api_key")
