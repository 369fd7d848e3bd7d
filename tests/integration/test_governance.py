"""Governance on the request path, one real gateway on SQLite in front of a real upstream:
per-request ceilings, TPM, budget and rate-limit headers, test keys, release on failure,
streams settled on what was delivered, and non-enforcing budgets.

Every request to ``meter`` costs exactly $0.01 when it asks for one output token: input is
free and output costs $10,000 per million tokens. (Concurrency and the Redis backend are in
``tests/governance``.)
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.checks import assert_error
from support.gateway import GatewayProcess, gateway_config, offer, openai_provider
from support.upstream import Delay, Reply, Status, UpstreamServer

RULES_TTL_S = 1.2  # governance rules are cached per process for 1 s


@pytest.fixture(scope="module")
def meter() -> Iterator[UpstreamServer]:
    with UpstreamServer("meter") as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(meter: UpstreamServer) -> None:
    meter.reset()
    meter.set_default(Reply(prompt_tokens=7, completion_tokens=1))


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, meter: UpstreamServer, admin_key: str
) -> Iterator[GatewayProcess]:
    config = gateway_config(
        [openai_provider("meter", meter.base_url, "METER_KEY")],
        [offer("gpt-4o-mini", "meter", "meter-mini", price_in=0.0, price_out=10000.0)],
    )
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("gov"),
        config=config,
        env={"METER_KEY": "sk-meter-secret-0001"},
        admin_key=admin_key,
        name="gw-gov",
    )
    with gateway:
        yield gateway
    gateway.assert_no_secrets("sk-meter-secret-0001", admin_key)


def _workspace(gw: GatewayProcess, **limits: Any) -> str:
    with gw.http(gw.admin_key) as http:
        created = http.post("/v1/workspaces", json={"name": f"gov-{time.monotonic_ns()}"})
        assert created.status_code == 201, created.text
        workspace = str(created.json()["id"])
        if limits:
            patched = http.patch(f"/v1/workspaces/{workspace}", json=limits)
            assert patched.status_code == 200, patched.text
    return workspace


def _budget(gw: GatewayProcess, workspace: str, **fields: Any) -> dict[str, Any]:
    body = {"scope_type": "workspace", "period": "monthly", "limit_usd": 1.0, **fields}
    with gw.http(gw.admin_key) as http:
        resp = http.post(f"/v1/workspaces/{workspace}/budgets", json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def _get_budget(gw: GatewayProcess, workspace: str, budget_id: str) -> dict[str, Any]:
    with gw.http(gw.admin_key) as http:
        resp = http.get(f"/v1/workspaces/{workspace}/budgets/{budget_id}")
    assert resp.status_code == 200, resp.text
    view: dict[str, Any] = resp.json()
    return view


def _chat(gw: GatewayProcess, key: str, **extra: Any) -> httpx.Response:
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    with gw.http(key) as http:
        return http.post("/v1/chat/completions", json=body)


def _usage_records(gw: GatewayProcess, workspace: str, count: int) -> list[dict[str, Any]]:
    """The workspace's audit export, once it holds ``count`` records (they land in ms)."""
    deadline = time.monotonic() + 10
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with gw.http(gw.admin_key) as http:
            resp = http.get(f"/v1/workspaces/{workspace}/audit", params={"days": 1})
        assert resp.status_code == 200, resp.text
        records = [httpx.Response(200, content=line).json() for line in resp.text.splitlines()]
        if len(records) >= count:
            return records
        time.sleep(0.05)
    raise AssertionError(f"expected {count} usage records, found {len(records)}")


def test_the_per_request_ceiling_refuses_an_estimate_above_it(gw: GatewayProcess) -> None:
    workspace = _workspace(gw, max_cost_per_request=0.05)
    key = gw.create_key("ceiling", workspace_id=workspace)["key"]
    time.sleep(RULES_TTL_S)
    assert _chat(gw, key, max_tokens=5).status_code == 200  # $0.05: at the ceiling
    refused = _chat(gw, key, max_tokens=6)  # $0.06
    assert_error(refused, 403, "cost_limit_exceeded")
    # No max_tokens: the estimate is the offer's whole max_output, far above the ceiling.
    assert_error(_chat(gw, key, max_tokens=None), 403, "cost_limit_exceeded")
    key_ceiling = gw.create_key("key-ceiling", workspace_id=workspace, max_cost_per_request=0.01)
    assert_error(_chat(gw, key_ceiling["key"], max_tokens=2), 403, "cost_limit_exceeded")


def test_tpm_counts_reserved_then_actual_tokens(gw: GatewayProcess, meter: UpstreamServer) -> None:
    """TPM 100, each request reserving its prompt + 60: while the first (slow upstream) holds
    its reservation a second is refused, with Retry-After and the token headers; once the
    first settles to its actual 8 tokens, another 68-token request fits again."""
    key = gw.create_key("tpm", tpm_limit=100)["key"]
    meter.enqueue(Delay(0.8, Reply(prompt_tokens=7, completion_tokens=1)))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_chat, gw, key, max_tokens=60)
        time.sleep(0.3)
        refused = _chat(gw, key, max_tokens=60)
        first = slow.result()
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert 0 <= int(first.headers["x-ratelimit-remaining-tokens"]) < 40
    assert_error(refused, 429, "rate_limit_exceeded")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-tokens"] == "100"
    time.sleep(0.3)  # the first request's settlement reaches the store
    again = _chat(gw, key, max_tokens=60)
    assert again.status_code == 200, again.text


def test_success_carries_rate_limit_and_budget_headers(gw: GatewayProcess) -> None:
    workspace = _workspace(gw, rpm_limit=50)
    _budget(gw, workspace, period="daily", limit_usd=2.0)
    key = gw.create_key("headers", workspace_id=workspace, rpm_limit=10)["key"]
    time.sleep(RULES_TTL_S)
    answers = [_chat(gw, key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    last = answers[-1].headers
    assert last["x-ratelimit-limit-requests"] == "10"  # the key's limit is the tighter one
    assert last["x-ratelimit-remaining-requests"] == "7"
    assert last["x-ratelimit-reset-requests"].endswith("s")
    assert last["x-budget-daily-limit"] == "2.000000"
    assert float(last["x-budget-daily-spend"]) <= 0.03


def test_test_keys_never_spend_but_are_rate_limited(gw: GatewayProcess) -> None:
    workspace = _workspace(gw)
    budget = _budget(gw, workspace, limit_usd=0.02)
    key = gw.create_key("test-key", mode="test", workspace_id=workspace, rpm_limit=3)["key"]
    time.sleep(RULES_TTL_S)
    statuses = [_chat(gw, key).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    records = _usage_records(gw, workspace, 4)
    assert sum(r["cost_microdollars"] for r in records) == 0
    assert _get_budget(gw, workspace, budget["id"])["spend_usd"] == 0


def test_a_failed_request_releases_its_reservation(
    gw: GatewayProcess, meter: UpstreamServer
) -> None:
    """$0.10 budget (threshold $0.09): failures are never billed, and their holds return."""
    workspace = _workspace(gw)
    budget = _budget(gw, workspace, limit_usd=0.10)
    key = gw.create_key("release", workspace_id=workspace)["key"]
    time.sleep(RULES_TTL_S)
    meter.set_default(Status(500))
    # Each is retried once in place: 4 failures, under the circuit breaker's threshold of 5.
    for _ in range(2):
        assert _chat(gw, key).status_code == 502
    meter.set_default(Reply(prompt_tokens=7, completion_tokens=1))
    statuses = [_chat(gw, key).status_code for _ in range(10)]
    assert statuses == [200] * 9 + [402]
    _usage_records(gw, workspace, 12)
    view = _get_budget(gw, workspace, budget["id"])
    assert view["spend_usd"] == pytest.approx(0.09, abs=1e-9)


def test_a_cut_stream_is_settled_on_what_was_delivered(
    gw: GatewayProcess, meter: UpstreamServer
) -> None:
    workspace = _workspace(gw)
    budget = _budget(gw, workspace, limit_usd=5.0)
    key = gw.create_key("stream", workspace_id=workspace)["key"]
    time.sleep(RULES_TTL_S)
    meter.set_default(Reply(text="one two three four", prompt_tokens=7, completion_tokens=4))
    with (
        gw.http(key) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "count"}],
            },
        ) as resp,
    ):
        assert resp.status_code == 200
        body = resp.read().decode()
    assert "data: [DONE]" in body
    (record,) = _usage_records(gw, workspace, 1)
    assert record["output_tokens"] == 4
    assert record["cost_microdollars"] == 40_000
    assert _get_budget(gw, workspace, budget["id"])["spend_usd"] == pytest.approx(0.04)


def test_a_budget_that_does_not_enforce_never_refuses(gw: GatewayProcess) -> None:
    workspace = _workspace(gw)
    budget = _budget(gw, workspace, limit_usd=0.02, enforce=False)
    key = gw.create_key("observe", workspace_id=workspace)["key"]
    time.sleep(RULES_TTL_S)
    assert [_chat(gw, key).status_code for _ in range(4)] == [200] * 4
    _usage_records(gw, workspace, 4)
    view = _get_budget(gw, workspace, budget["id"])
    assert view["spend_usd"] == pytest.approx(0.04)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "reached 100%" not in gw.log_text():
        time.sleep(0.05)
    alerts = [line for line in gw.log_text().splitlines() if budget["id"] in line]
    assert [a.split("reached ")[1][:4] for a in alerts] == ["50% ", "75% ", "90% ", "100%"]


def test_a_rotated_keys_grace_traffic_still_counts_toward_its_budget(gw: GatewayProcess) -> None:
    """Rotation moves key-scoped budgets to the successor; the old key, still valid during
    its grace period, keeps spending from the same budget instead of escaping it."""
    workspace = _workspace(gw)
    old = gw.create_key("rotating", workspace_id=workspace)
    budget = _budget(gw, workspace, scope_type="api_key", scope_id=old["id"], limit_usd=0.05)
    with gw.http(gw.admin_key) as http:
        rotated = http.post(
            f"/v1/workspaces/{workspace}/keys/{old['id']}/rotate", json={"grace_period_s": 600}
        )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    time.sleep(RULES_TTL_S)
    statuses = [_chat(gw, old["key"]).status_code for _ in range(3)]
    statuses += [_chat(gw, new["key"]).status_code for _ in range(3)]
    assert statuses == [200, 200, 200, 200, 402, 402]  # threshold $0.045: four fit
    _usage_records(gw, workspace, 6)
    view = _get_budget(gw, workspace, budget["id"])
    assert view["scope_id"] == new["id"]
    assert view["spend_usd"] == pytest.approx(0.04)
