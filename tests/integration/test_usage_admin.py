"""Management API (SPEC §8): usage reports by group, one record, latency percentiles, and
the JSON Lines audit export — with no payload and no secret anywhere in them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from support.admin import (
    new_workspace,
    ok,
    single_upstream_gateway,
    usage_report,
    wait_for_requests,
    ws_path,
)
from support.checks import assert_error, chat_body
from support.gateway import GatewayProcess
from support.upstream import Reply, Status, UpstreamServer

PROMPT = "the-secret-prompt-text-7f3a"
LIVE = (300, 40)  # prompt, completion tokens of every upstream reply here


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: UpstreamServer,
    provider_key_a: str,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    with single_upstream_gateway(
        tmp_path_factory.mktemp("gw-usage-admin"),
        upstream_a.base_url,
        provider_key_a,
        admin_key,
        "gw-usage-admin",
    ) as gateway:
        yield gateway


class Traffic:
    """One workspace with known traffic: ids of its keys and of each request."""

    def __init__(self, ws: str, keys: dict[str, dict[str, Any]], request_ids: list[str]):
        self.ws = ws
        self.keys = keys
        self.request_ids = request_ids


@pytest.fixture(scope="module")
def traffic(gw: GatewayProcess, admin_key: str, upstream_a: UpstreamServer) -> Traffic:
    """live: 2 × gpt-4o and 1 streamed; test: 1 × gpt-4o-mini; one upstream failure (502)."""
    ws, _ = new_workspace(gw, admin_key, "usage-report")
    keys = {
        "live": gw.create_key("usage-live", workspace_id=ws),
        "test": gw.create_key("usage-test", mode="test", workspace_id=ws),
    }
    upstream_a.set_default(Reply(prompt_tokens=LIVE[0], completion_tokens=LIVE[1]))
    ids: list[str] = []
    with gw.http(keys["live"]["key"]) as http:
        for _ in range(2):
            resp = http.post("/v1/chat/completions", json=chat_body(PROMPT, model="gpt-4o"))
            assert resp.status_code == 200, resp.text
            ids.append(resp.headers["x-request-id"])
        body = chat_body(
            PROMPT, model="gpt-4o", stream=True, stream_options={"include_usage": True}
        )
        with http.stream("POST", "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            resp.read()
            ids.append(resp.headers["x-request-id"])
        upstream_a.enqueue(Status(500), Status(500), Status(500))
        failed = http.post("/v1/chat/completions", json=chat_body(PROMPT, model="gpt-4o"))
        assert failed.status_code == 502, failed.text
        ids.append(failed.headers["x-request-id"])
    with gw.http(keys["test"]["key"]) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(PROMPT, model="gpt-4o-mini"))
        assert resp.status_code == 200, resp.text
        ids.append(resp.headers["x-request-id"])
    upstream_a.reset()
    wait_for_requests(gw, admin_key, ws, 5)
    return Traffic(ws, keys, ids)


LIVE_COST = (LIVE[0] * 2.5 + LIVE[1] * 10.0) / 1e6


def test_totals_and_groups_by_model(gw: GatewayProcess, admin_key: str, traffic: Traffic):
    report = usage_report(gw, admin_key, traffic.ws, group_by="model")
    assert report["object"] == "usage_report" and report["workspace_id"] == traffic.ws
    assert report["days"] == 30 and report["group_by"] == "model"
    assert report["requests"] == 5
    assert report["spend_usd"] == pytest.approx(3 * LIVE_COST)
    groups = {g["group"]: g for g in report["data"]}
    assert groups["gpt-4o"]["requests"] == 3
    assert groups[None]["requests"] == 1, "the failure was served by no model"
    assert groups["gpt-4o"]["spend_usd"] == pytest.approx(3 * LIVE_COST)
    assert groups["gpt-4o-mini"] == {
        "group": "gpt-4o-mini",
        "spend_usd": 0,
        "requests": 1,
        "tokens": groups["gpt-4o-mini"]["tokens"],
    }
    assert report["data"][0]["group"] == "gpt-4o", "ordered by spend"
    assert sum(g["tokens"]["input"] for g in report["data"]) == report["tokens"]["input"]


def test_groups_by_provider_key_and_day(gw: GatewayProcess, admin_key: str, traffic: Traffic):
    by_provider = usage_report(gw, admin_key, traffic.ws, group_by="provider")
    providers = {g["group"]: g["requests"] for g in by_provider["data"]}
    assert providers.get("upstream-a", 0) + providers.get(None, 0) == 4
    assert providers["mock"] == 1
    by_key = usage_report(gw, admin_key, traffic.ws, group_by="key")
    keyed = {g["group"]: g for g in by_key["data"]}
    live, test = traffic.keys["live"], traffic.keys["test"]
    assert keyed[live["id"]]["requests"] == 4 and keyed[live["id"]]["name"] == "usage-live"
    assert keyed[test["id"]]["requests"] == 1 and keyed[test["id"]]["spend_usd"] == 0
    by_day = usage_report(gw, admin_key, traffic.ws, group_by="day", days=1)
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert [g["group"] for g in by_day["data"]] == [today]
    assert by_day["since"] == today + "T00:00:00.000Z"
    assert usage_report(gw, admin_key, traffic.ws)["group_by"] == "day", "the default"


def test_one_record_by_request_id(gw: GatewayProcess, admin_key: str, traffic: Traffic):
    with gw.http(admin_key) as http:
        record = ok(http.get(ws_path(traffic.ws, f"/usage/{traffic.request_ids[0]}")))
        failed = ok(http.get(ws_path(traffic.ws, f"/usage/{traffic.request_ids[3]}")))
        assert_error(http.get(ws_path(traffic.ws, "/usage/req_unknown")), 404, "not_found")
    assert record["object"] == "usage_record"
    assert record["request_id"] == traffic.request_ids[0]
    assert record["key_id"] == traffic.keys["live"]["id"]
    assert (record["model_served"], record["provider"], record["status"]) == (
        "gpt-4o",
        "upstream-a",
        200,
    )
    assert (record["input_tokens"], record["output_tokens"]) == LIVE
    assert record["cost_usd"] == pytest.approx(LIVE_COST)
    assert isinstance(record["fallback_chain"], list), "JSON text fields come back as JSON"
    assert failed["status"] == 502 and failed["error_code"]
    for text in (json.dumps(record), json.dumps(failed)):
        assert PROMPT not in text and traffic.keys["live"]["key"] not in text


def test_latency_percentiles_cover_successes_only(
    gw: GatewayProcess, admin_key: str, traffic: Traffic
):
    with gw.http(admin_key) as http:
        report = ok(http.get(ws_path(traffic.ws, "/latency"), params={"days": 7}))
    assert report["object"] == "latency_report" and report["days"] == 7
    rows = {(r["provider"], r["model"]): r for r in report["data"]}
    assert set(rows) == {("upstream-a", "gpt-4o"), ("mock", "gpt-4o-mini")}
    upstream = rows[("upstream-a", "gpt-4o")]
    assert upstream["requests"] == 3, "the 502 is not a latency sample"
    summary = upstream["latency_ms"]
    assert summary["count"] == 3 and 0 < summary["p50"] <= summary["p95"] <= summary["p99"]
    assert upstream["ttft_ms"]["count"] == 1, "one streamed request"
    assert rows[("mock", "gpt-4o-mini")]["ttft_ms"] is None


def test_audit_is_json_lines_without_payloads_or_secrets(
    gw: GatewayProcess, admin_key: str, traffic: Traffic
):
    with gw.http(admin_key) as http:
        resp = http.get(ws_path(traffic.ws, "/audit"), params={"days": 2})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in resp.headers.get("content-disposition", "")
    lines = resp.text.splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted(r["request_id"] for r in records) == sorted(traffic.request_ids)
    stamps = [r["created_at"] for r in records]
    assert stamps == sorted(stamps), "oldest first"
    assert all(r["workspace_id"] == traffic.ws for r in records)
    for secret in (PROMPT, admin_key, *(k["key"] for k in traffic.keys.values())):
        assert secret not in resp.text


@pytest.mark.parametrize(
    ("suffix", "params", "param"),
    [
        ("/usage", {"days": "0"}, "days"),
        ("/usage", {"days": "367"}, "days"),
        ("/usage", {"days": "week"}, "days"),
        ("/usage", {"group_by": "region"}, "group_by"),
        ("/latency", {"days": "-1"}, "days"),
        ("/audit", {"days": "1.5"}, "days"),
    ],
)
def test_bad_query_parameters_are_named(
    gw: GatewayProcess, admin_key: str, suffix: str, params: dict[str, str], param: str
):
    with gw.http(admin_key) as http:
        resp = http.get(ws_path(gw.default_workspace_id(), suffix), params=params)
    assert_error(resp, 400, "invalid_request", param=param)


def test_an_empty_workspace_reports_zeroes(gw: GatewayProcess, admin_key: str):
    ws, own_admin = new_workspace(gw, admin_key, "usage-empty")
    report = usage_report(gw, own_admin, ws, group_by="key")
    assert (report["requests"], report["spend_usd"], report["data"]) == (0, 0, [])
    with gw.http(own_admin) as http:
        assert ok(http.get(ws_path(ws, "/latency")))["data"] == []
        audit = http.get(ws_path(ws, "/audit"))
    assert audit.status_code == 200 and audit.text == ""
