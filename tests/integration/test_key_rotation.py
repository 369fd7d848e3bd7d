"""Key rotation and expiry (SPEC §7, §8): the successor works at once, the old key until its
grace period ends; expired keys list as ``expired`` and answer 401; per-key usage."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from support.admin import new_workspace, ok, usage_report, wait_for_requests, ws_path
from support.checks import assert_error, chat_body
from support.gateway import GatewayProcess


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _rotate(
    gw: GatewayProcess, admin_key: str, ws: str, key_id: str, body: Any = None
) -> dict[str, Any]:
    with gw.http(admin_key) as http:
        path = ws_path(ws, f"/keys/{key_id}/rotate")
        resp = http.post(path) if body is None else http.post(path, json=body)
    rotated = ok(resp, 201)
    assert isinstance(rotated, dict)
    return rotated


def _works(gw: GatewayProcess, key: str) -> int:
    with gw.http(key) as http:
        return http.get("/v1/models").status_code


def _wait_status(gw: GatewayProcess, key: str, status: int, timeout: float) -> float:
    start = time.monotonic()
    while _works(gw, key) != status:
        assert time.monotonic() - start < timeout, f"key never answered {status}"
        time.sleep(0.05)
    return time.monotonic() - start


def test_rotation_keeps_options_and_both_keys_work_during_grace(
    gateway: GatewayProcess, admin_key: str
):
    ws = gateway.default_workspace_id()
    old = gateway.create_key(
        "rotating",
        scopes=["inference", "read"],
        allowed_models=["gpt-4o"],
        ip_allowlist=["127.0.0.0/8"],
        rpm_limit=1000,
        max_cost_per_request=2.5,
    )
    started = datetime.now(timezone.utc)
    rotated = _rotate(gateway, admin_key, ws, old["id"], {"grace_period_s": 2})
    new_key = rotated["key"]
    assert new_key.startswith("rg_live_") and new_key != old["key"]
    assert rotated["id"] != old["id"] and rotated["rotated_from"] == old["id"]
    for field in (
        "name",
        "mode",
        "scopes",
        "allowed_models",
        "ip_allowlist",
        "rpm_limit",
        "max_cost_per_request",
        "expires_at",
    ):
        assert rotated[field] == old[field], field
    previous = rotated["previous_key"]
    assert previous["id"] == old["id"] and previous["status"] == "active"
    grace_end = _parse(previous["expires_at"]) - started
    assert timedelta(seconds=1.5) < grace_end < timedelta(seconds=3)
    assert _works(gateway, new_key) == 200 and _works(gateway, old["key"]) == 200
    _wait_status(gateway, old["key"], 401, timeout=5)
    assert _works(gateway, new_key) == 200
    with gateway.http(admin_key) as http:
        listed = {k["id"]: k for k in ok(http.get(ws_path(ws, "/keys")))["data"]}
        text = http.get(ws_path(ws, "/keys")).text
    assert listed[old["id"]]["status"] == "expired"
    assert listed[rotated["id"]]["status"] == "active"
    assert new_key not in text and old["key"] not in text


def test_default_grace_is_an_hour_and_an_earlier_expiry_is_kept(
    gateway: GatewayProcess, admin_key: str
):
    ws = gateway.default_workspace_id()
    plain = gateway.create_key("rotate-default")
    rotated = _rotate(gateway, admin_key, ws, plain["id"])
    left = _parse(rotated["previous_key"]["expires_at"]) - datetime.now(timezone.utc)
    assert timedelta(minutes=59) < left <= timedelta(hours=1)
    soon = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
    expiring = gateway.create_key("rotate-expiring", expires_at=soon)
    again = _rotate(gateway, admin_key, ws, expiring["id"], {"grace_period_s": 86_400})
    assert again["previous_key"]["expires_at"] == expiring["expires_at"]
    assert again["expires_at"] == expiring["expires_at"], "the successor keeps the expiry"


def test_zero_grace_retires_the_old_key_within_a_second(gateway: GatewayProcess, admin_key: str):
    old = gateway.create_key("rotate-now")
    assert _works(gateway, old["key"]) == 200  # warm the key cache
    rotated = _rotate(gateway, admin_key, gateway.default_workspace_id(), old["id"], {})
    assert _works(gateway, rotated["key"]) == 200
    rotated_now = _rotate(
        gateway, admin_key, gateway.default_workspace_id(), rotated["id"], {"grace_period_s": 0}
    )
    assert _wait_status(gateway, rotated["key"], 401, timeout=2) <= 1.0
    assert _works(gateway, rotated_now["key"]) == 200


@pytest.mark.parametrize(
    "body",
    [{"grace_period_s": -1}, {"grace_period_s": "60"}, {"grace_period_s": 31 * 86_400}, {"x": 1}],
)
def test_bad_rotation_bodies_are_400(gateway: GatewayProcess, admin_key: str, body: Any):
    key = gateway.create_key("rotate-bad-body")
    with gateway.http(admin_key) as http:
        resp = http.post(
            ws_path(gateway.default_workspace_id(), f"/keys/{key['id']}/rotate"), json=body
        )
    assert_error(resp, 400, "invalid_request", param=next(iter(body)))
    assert _works(gateway, key["key"]) == 200, "a refused rotation leaves the key alone"


def test_only_active_keys_rotate(gateway: GatewayProcess, admin_key: str):
    ws = gateway.default_workspace_id()
    key = gateway.create_key("rotate-revoked")
    with gateway.http(admin_key) as http:
        ok(http.delete(ws_path(ws, f"/keys/{key['id']}")))
        assert_error(http.post(ws_path(ws, f"/keys/{key['id']}/rotate")), 400, "invalid_request")
        assert_error(http.post(ws_path(ws, "/keys/key_nope/rotate")), 404, "not_found")


def test_a_workspace_admin_cannot_rotate_the_gateway_wide_key(make_gateway, admin_key: str):
    gw = make_gateway(None, name="gw-rotate-bootstrap")
    ws = gw.default_workspace_id()
    workspace_admin = gw.create_key("ws-admin", scopes=["admin"])["key"]
    with gw.http(admin_key) as http:
        listed = ok(http.get(ws_path(ws, "/keys")))["data"]
    bootstrap = next(k for k in listed if k["gateway_wide"])
    with gw.http(workspace_admin) as http:
        resp = http.post(ws_path(ws, f"/keys/{bootstrap['id']}/rotate"))
    assert_error(resp, 403, "forbidden")
    assert _works(gw, admin_key) == 200


def test_key_budgets_follow_the_rotated_key(gateway: GatewayProcess, admin_key: str):
    ws, own_admin = new_workspace(gateway, admin_key, "rotate-budget")
    key = gateway.create_key("rotate-budgeted", workspace_id=ws)
    with gateway.http(own_admin) as http:
        budget = ok(
            http.post(
                ws_path(ws, "/budgets"),
                json={
                    "scope_type": "api_key",
                    "scope_id": key["id"],
                    "period": "daily",
                    "limit_usd": 5,
                },
            ),
            201,
        )
    rotated = _rotate(gateway, own_admin, ws, key["id"], {"grace_period_s": 60})
    with gateway.http(own_admin) as http:
        moved = ok(http.get(ws_path(ws, f"/budgets/{budget['id']}")))
    assert moved["scope_id"] == rotated["id"]


def test_per_key_usage_counts_that_key_only(gateway: GatewayProcess, admin_key: str):
    ws, own_admin = new_workspace(gateway, admin_key, "rotate-usage")
    first = gateway.create_key("usage-first", mode="test", workspace_id=ws)
    second = gateway.create_key("usage-second", mode="test", workspace_id=ws)
    for key, count in ((first, 2), (second, 1)):
        with gateway.http(key["key"]) as http:
            for _ in range(count):
                assert http.post("/v1/chat/completions", json=chat_body(model="gpt-4o")).is_success
    wait_for_requests(gateway, own_admin, ws, 3)
    with gateway.http(own_admin) as http:
        mine = ok(http.get(ws_path(ws, f"/keys/{first['id']}/usage"), params={"group_by": "model"}))
        assert_error(http.get(ws_path(ws, "/keys/key_nope/usage")), 404, "not_found")
        assert_error(
            http.get(ws_path(ws, f"/keys/{first['id']}/usage"), params={"days": "0"}),
            400,
            "invalid_request",
            param="days",
        )
    assert mine["key_id"] == first["id"] and mine["requests"] == 2
    assert mine["data"] == [
        {"group": "gpt-4o", "spend_usd": 0, "requests": 2, "tokens": mine["tokens"]}
    ]
    assert usage_report(gateway, own_admin, ws)["requests"] == 3


def test_expiry_on_create_is_validated_and_enforced(gateway: GatewayProcess, admin_key: str):
    ws = gateway.default_workspace_id()
    with gateway.http(admin_key) as http:
        for bad in ("next week", "2020-01-01T00:00:00Z", 12345, "2026-02-30"):
            resp = http.post(ws_path(ws, "/keys"), json={"name": "bad-expiry", "expires_at": bad})
            assert_error(resp, 400, "invalid_request", param="expires_at")
    soon = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    key = gateway.create_key("short-lived", expires_at=soon.replace(tzinfo=None).isoformat())
    assert key["expires_at"].endswith("Z") and key["status"] == "active"
    assert _works(gateway, key["key"]) == 200
    _wait_status(gateway, key["key"], 401, timeout=5)
    with gateway.http(admin_key) as http:
        assert ok(http.get(ws_path(ws, f"/keys/{key['id']}")))["status"] == "expired"
