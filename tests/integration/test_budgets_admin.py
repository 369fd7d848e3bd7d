"""Management API (SPEC §7, §8): budgets — create, read with the period's spend, change,
delete, and a 400 naming the field for every bad one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from support.admin import ok, single_upstream_gateway, wait_for_requests, wait_until, ws_path
from support.checks import assert_error, chat_body
from support.configs import single_upstream_config
from support.gateway import GatewayProcess
from support.upstream import Reply, UpstreamServer


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: UpstreamServer,
    provider_key_a: str,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    with single_upstream_gateway(
        tmp_path_factory.mktemp("gw-budgets"),
        upstream_a.base_url,
        provider_key_a,
        admin_key,
        "gw-budgets",
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def ws(gw: GatewayProcess) -> str:
    return gw.default_workspace_id()


def _create(gw: GatewayProcess, key: str, ws: str, body: dict[str, Any]) -> dict[str, Any]:
    with gw.http(key) as http:
        created = ok(http.post(ws_path(ws, "/budgets"), json=body), 201)
    assert isinstance(created, dict)
    return created


def _month_bounds() -> tuple[str, str]:
    now = datetime.now(timezone.utc)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return (
        start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        end.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )


def test_create_defaults_and_the_period_view(gw: GatewayProcess, admin_key: str, ws: str):
    created = _create(gw, admin_key, ws, {"period": "monthly", "limit_usd": 100})
    assert created["object"] == "budget" and created["id"].startswith("bud_")
    assert created["scope_type"] == "workspace" and created["scope_id"] is None
    assert created["enforce"] is True and created["include_byok"] is False
    assert created["limit_usd"] == 100 and created["threshold_usd"] == 90
    assert created["spend_usd"] == 0 and created["percent_used"] == 0
    assert (created["period_start"], created["resets_at"]) == _month_bounds()
    with gw.http(admin_key) as http:
        shown = ok(http.get(ws_path(ws, f"/budgets/{created['id']}")))
        listed = ok(http.get(ws_path(ws, "/budgets")))
    assert shown == created
    assert listed["object"] == "list" and created in listed["data"]


@pytest.mark.parametrize(("limit", "threshold"), [(5, 4.5), (100, 90), (1000, 990), (0.5, 0.45)])
def test_threshold_is_limit_minus_the_smaller_of_10_usd_and_10_percent(
    gw: GatewayProcess, admin_key: str, ws: str, limit: float, threshold: float
):
    created = _create(gw, admin_key, ws, {"period": "daily", "limit_usd": limit})
    assert created["threshold_usd"] == pytest.approx(threshold)
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert created["period_start"].startswith(today)


def test_weekly_budgets_reset_on_monday(gw: GatewayProcess, admin_key: str, ws: str):
    created = _create(gw, admin_key, ws, {"period": "weekly", "limit_usd": 20})
    start = datetime.fromisoformat(created["period_start"].replace("Z", "+00:00"))
    resets = datetime.fromisoformat(created["resets_at"].replace("Z", "+00:00"))
    assert start.weekday() == 0 and resets - start == timedelta(days=7)
    assert start <= datetime.now(timezone.utc) < resets


def test_api_key_and_byok_provider_scopes(gw: GatewayProcess, admin_key: str, ws: str):
    key = gw.create_key("budgeted")
    scoped = _create(
        gw,
        admin_key,
        ws,
        {"scope_type": "api_key", "scope_id": key["id"], "period": "daily", "limit_usd": 3},
    )
    assert scoped["scope_id"] == key["id"] and scoped["scope_provider"] is None
    byok = _create(
        gw,
        admin_key,
        ws,
        {
            "scope_type": "byok_provider",
            "scope_provider": "UPSTREAM-A",
            "period": "monthly",
            "limit_usd": 50,
            "include_byok": True,
        },
    )
    assert byok["scope_provider"] == "upstream-a", "stored as the provider's id"


DAILY = {"period": "daily", "limit_usd": 1}
MISSING = "missing_required_parameter"
BAD_BODIES = [
    ({"period": "yearly", "limit_usd": 1}, "period"),
    ({"limit_usd": 1}, "period", MISSING),
    ({"period": "daily"}, "limit_usd", MISSING),
    ({**DAILY, "limit_usd": 0}, "limit_usd"),
    ({**DAILY, "limit_usd": -3}, "limit_usd"),
    ({**DAILY, "limit_usd": "10"}, "limit_usd"),
    ({**DAILY, "limit_usd": 2e9}, "limit_usd"),
    ({**DAILY, "enforce": "yes"}, "enforce"),
    ({**DAILY, "include_byok": 1}, "include_byok"),
    ({**DAILY, "scope_type": "team"}, "scope_type"),
    ({**DAILY, "scope_type": "api_key"}, "scope_id", MISSING),
    ({**DAILY, "scope_type": "api_key", "scope_id": "key_nope"}, "scope_id"),
    ({**DAILY, "scope_id": "key_x"}, "scope_id"),
    ({**DAILY, "scope_type": "byok_provider"}, "scope_provider", MISSING),
    ({**DAILY, "scope_type": "byok_provider", "scope_provider": "nope"}, "scope_provider"),
    ({**DAILY, "scope_provider": "upstream-a"}, "scope_provider"),
    ({**DAILY, "alert_webhook": "ftp://example.com/x"}, "alert_webhook"),
    ({**DAILY, "alert_webhook": "hooks.example.com"}, "alert_webhook"),
    ({**DAILY, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize("case", BAD_BODIES, ids=lambda case: f"{case[1]}-{len(case[0])}")
def test_every_bad_field_is_a_400_naming_it(
    gw: GatewayProcess, admin_key: str, ws: str, case: tuple[Any, ...]
):
    body, param, code = (*case, "invalid_request")[:3]
    with gw.http(admin_key) as http:
        resp = http.post(ws_path(ws, "/budgets"), json=body)
    assert_error(resp, 400, code, param=param)


def test_a_body_that_is_not_an_object_is_refused(gw: GatewayProcess, admin_key: str, ws: str):
    with gw.http(admin_key) as http:
        assert_error(http.post(ws_path(ws, "/budgets"), content=b"[1]"), 400, "invalid_request")
        assert_error(http.post(ws_path(ws, "/budgets"), content=b"{"), 400, "invalid_request")


def test_patch_changes_limits_and_keeps_scope_fixed(gw: GatewayProcess, admin_key: str, ws: str):
    secret_path = "/services/T000/B000/very-secret-token"
    created = _create(
        gw,
        admin_key,
        ws,
        {
            "period": "monthly",
            "limit_usd": 10,
            "alert_webhook": "https://hooks.example.com" + secret_path,
        },
    )
    assert "very-secret-token" not in str(created), "webhook paths are masked in views"
    assert created["alert_webhook"].startswith("https://hooks.example.com")
    path = ws_path(ws, f"/budgets/{created['id']}")
    with gw.http(admin_key) as http:
        updated = ok(http.patch(path, json={"limit_usd": 200, "enforce": False}))
        assert updated["limit_usd"] == 200 and updated["enforce"] is False
        assert updated["threshold_usd"] == 190
        assert updated["alert_webhook"] == created["alert_webhook"], "absent field kept"
        cleared = ok(http.patch(path, json={"alert_webhook": None}))
        assert cleared["alert_webhook"] is None
        for field, value in (("period", "daily"), ("scope_type", "api_key")):
            assert_error(http.patch(path, json={field: value}), 400, "invalid_request", param=field)
        assert_error(
            http.patch(path, json={"limit_usd": 0}), 400, "invalid_request", param="limit_usd"
        )
        assert_error(
            http.patch(path, json={"limit_usd": None}), 400, "invalid_request", param="limit_usd"
        )
        assert ok(http.get(path))["limit_usd"] == 200, "a refused PATCH changes nothing"
        assert_error(http.patch(ws_path(ws, "/budgets/bud_nope"), json={}), 404, "not_found")


def test_delete_then_gone(gw: GatewayProcess, admin_key: str, ws: str):
    created = _create(gw, admin_key, ws, {"period": "daily", "limit_usd": 1})
    path = ws_path(ws, f"/budgets/{created['id']}")
    with gw.http(admin_key) as http:
        deleted = ok(http.delete(path))
        assert deleted == {"id": created["id"], "object": "budget", "deleted": True}
        assert_error(http.get(path), 404, "not_found")
        assert_error(http.delete(path), 404, "not_found")
        listed = ok(http.get(ws_path(ws, "/budgets")))["data"]
    assert created["id"] not in {b["id"] for b in listed}


def test_budgets_need_the_admin_scope(gw: GatewayProcess, ws: str):
    key = gw.create_key("no-admin-budgets", scopes=["inference", "read"])["key"]
    with gw.http(key) as http:
        assert_error(http.get(ws_path(ws, "/budgets")), 403, "forbidden")
        resp = http.post(ws_path(ws, "/budgets"), json={"period": "daily", "limit_usd": 1})
        assert_error(resp, 403, "forbidden")


def test_spend_is_the_periods_settled_cost(
    make_gateway, upstream_a: UpstreamServer, provider_key_a: str, admin_key: str
):
    gateway = make_gateway(
        single_upstream_config(upstream_a.base_url),
        {"UPSTREAM_A_KEY": provider_key_a},
        name="gw-budget-spend",
    )
    ws = gateway.default_workspace_id()
    upstream_a.set_default(Reply(prompt_tokens=1000, completion_tokens=500))
    spender, bystander = gateway.create_key("spender"), gateway.create_key("bystander")
    whole = _create(gateway, admin_key, ws, {"period": "daily", "limit_usd": 1})
    mine = _create(
        gateway,
        admin_key,
        ws,
        {"period": "monthly", "limit_usd": 2, "scope_type": "api_key", "scope_id": spender["id"]},
    )
    other = _create(
        gateway,
        admin_key,
        ws,
        {"period": "monthly", "limit_usd": 2, "scope_type": "api_key", "scope_id": bystander["id"]},
    )
    with gateway.http(spender["key"]) as http:
        for _ in range(3):
            assert http.post("/v1/chat/completions", json=chat_body(model="gpt-4o")).is_success
    report = wait_for_requests(gateway, admin_key, ws, 3)
    expected = 3 * (1000 * 2.5 + 500 * 10.0) / 1e6
    assert report["spend_usd"] == pytest.approx(expected)

    def budget(view: dict[str, Any]) -> dict[str, Any]:
        with gateway.http(admin_key) as http:
            return ok(http.get(ws_path(ws, f"/budgets/{view['id']}")))

    settled = wait_until(lambda: (b := budget(whole))["spend_usd"] > 0 and b, "budget spend")
    assert settled["spend_usd"] == pytest.approx(expected)
    assert settled["percent_used"] == pytest.approx(100 * expected / 1, abs=0.01)
    assert budget(mine)["spend_usd"] == pytest.approx(expected)
    assert budget(other)["spend_usd"] == 0
