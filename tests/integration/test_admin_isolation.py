"""Cross-workspace isolation of the management API (SPEC §8): another workspace's ids answer
404 — never 403, never data — on every route, reads and writes alike, and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from support.admin import new_workspace, ok, wait_for_requests, ws_path
from support.checks import assert_error, chat_body
from support.gateway import GatewayProcess

# (method, path after /v1/workspaces/{id}, body); {key}, {budget}, {request} are the other
# workspace's resources.
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("PATCH", "", {"name": "hijacked", "rpm_limit": 1}),
    ("GET", "/keys", None),
    ("POST", "/keys", {"name": "planted", "scopes": ["admin"]}),
    ("GET", "/keys/{key}", None),
    ("DELETE", "/keys/{key}", None),
    ("POST", "/keys/{key}/rotate", {"grace_period_s": 0}),
    ("GET", "/keys/{key}/usage", None),
    ("GET", "/budgets", None),
    ("POST", "/budgets", {"period": "daily", "limit_usd": 1}),
    ("GET", "/budgets/{budget}", None),
    ("PATCH", "/budgets/{budget}", {"limit_usd": 999}),
    ("DELETE", "/budgets/{budget}", None),
    ("GET", "/billing", None),
    ("POST", "/billing/credits", {"amount_usd": 1000}),
    ("GET", "/usage", None),
    ("GET", "/usage/{request}", None),
    ("GET", "/latency", None),
    ("GET", "/audit", None),
]
WITH_IDS = [route for route in ROUTES if "{" in route[1]]


def _route_id(route: tuple[str, str, Any]) -> str:
    return f"{route[0]} {route[1] or '/'}"


@dataclass
class Tenants:
    """Workspace A (the default one) with a key, a budget and a usage record; workspace B
    with its own admin key, which must see none of A."""

    a: str
    b: str
    b_admin: str
    ids: dict[str, str]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, admin_key: str) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("gw-isolation"),
        config=None,
        admin_key=admin_key,
        name="gw-isolation",
    )
    with gateway:
        yield gateway
    assert "Traceback" not in gateway.log_text(), gateway.log_tail(80)


@pytest.fixture(scope="module")
def tenants(gw: GatewayProcess, admin_key: str) -> Tenants:
    a = gw.default_workspace_id()
    key = gw.create_key("tenant-a-key", mode="test", workspace_id=a)
    with gw.http(admin_key) as http:
        budget = ok(
            http.post(ws_path(a, "/budgets"), json={"period": "daily", "limit_usd": 1}), 201
        )
        ok(http.post(ws_path(a, "/billing/credits"), json={"amount_usd": 5}))
    with gw.http(key["key"]) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
        assert resp.status_code == 200, resp.text
    wait_for_requests(gw, admin_key, a, 1)
    b, b_admin = new_workspace(gw, admin_key, "tenant-b")
    ids = {"key": key["id"], "budget": budget["id"], "request": resp.headers["x-request-id"]}
    return Tenants(a=a, b=b, b_admin=b_admin, ids=ids)


def _snapshot(gw: GatewayProcess, admin_key: str, workspace_id: str) -> dict[str, Any]:
    with gw.http(admin_key) as http:
        return {
            suffix: ok(http.get(ws_path(workspace_id, suffix)))
            for suffix in ("", "/keys", "/budgets", "/billing")
        }


def _call(gw: GatewayProcess, key: str, method: str, path: str, body: Any) -> Any:
    with gw.http(key) as http:
        return http.request(method, path, json=body)


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_another_workspaces_path_is_404_and_changes_nothing(
    gw: GatewayProcess, admin_key: str, tenants: Tenants, route: tuple[str, str, Any]
):
    method, suffix, body = route
    before = _snapshot(gw, admin_key, tenants.a)
    path = ws_path(tenants.a, suffix.format(**tenants.ids))
    resp = _call(gw, tenants.b_admin, method, path, body)
    assert_error(resp, 404, "not_found", secrets=(tenants.b_admin,))
    assert "tenant-a-key" not in resp.text, "nothing of the other workspace shows"
    assert _snapshot(gw, admin_key, tenants.a) == before


@pytest.mark.parametrize("route", WITH_IDS, ids=_route_id)
def test_another_workspaces_ids_under_ones_own_path_are_404(
    gw: GatewayProcess, admin_key: str, tenants: Tenants, route: tuple[str, str, Any]
):
    method, suffix, body = route
    before = _snapshot(gw, admin_key, tenants.a)
    path = ws_path(tenants.b, suffix.format(**tenants.ids))
    assert_error(_call(gw, tenants.b_admin, method, path, body), 404, "not_found")
    assert _snapshot(gw, admin_key, tenants.a) == before


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_an_unknown_workspace_is_404_even_for_the_gateway_wide_key(
    gw: GatewayProcess, admin_key: str, tenants: Tenants, route: tuple[str, str, Any]
):
    method, suffix, body = route
    path = ws_path("ws_does_not_exist", suffix.format(**tenants.ids))
    assert_error(_call(gw, admin_key, method, path, body), 404, "not_found")


def test_the_workspace_admin_reaches_its_own_workspace(gw: GatewayProcess, tenants: Tenants):
    for method, suffix, _ in ROUTES:
        if method == "GET" and "{" not in suffix:
            resp = _call(gw, tenants.b_admin, method, ws_path(tenants.b, suffix), None)
            assert resp.status_code == 200, (suffix, resp.text)
    with gw.http(tenants.b_admin) as http:
        listed = ok(http.get("/v1/workspaces"))["data"]
    assert [w["id"] for w in listed] == [tenants.b]


def test_only_the_gateway_wide_key_creates_workspaces(
    gw: GatewayProcess, admin_key: str, tenants: Tenants
):
    resp = _call(gw, tenants.b_admin, "POST", "/v1/workspaces", {"name": "rogue"})
    assert_error(resp, 403, "forbidden")
    with gw.http(admin_key) as http:
        created = ok(http.post("/v1/workspaces", json={"name": "Ops Team", "slug": "ops"}), 201)
        assert created["slug"] == "ops" and created["id"].startswith("ws_")
        taken = http.post("/v1/workspaces", json={"name": "Other", "slug": "ops"})
        assert_error(taken, 409, "policy_conflict", param="slug")
        derived = ok(http.post("/v1/workspaces", json={"name": "Ops Team"}), 201)
        assert derived["slug"] == "ops-team"
        again = ok(http.post("/v1/workspaces", json={"name": "Ops Team"}), 201)
        assert again["slug"] == "ops-team-2"
        for bad, param in (
            ({}, "name"),
            ({"name": "x", "slug": "Bad Slug"}, "slug"),
            ({"name": "x", "slug": "-x"}, "slug"),
            ({"name": ""}, "name"),
            ({"name": "x", "id": "ws_mine"}, "id"),
        ):
            code = "missing_required_parameter" if not bad else "invalid_request"
            assert_error(http.post("/v1/workspaces", json=bad), 400, code, param=param)
        names = {w["slug"] for w in ok(http.get("/v1/workspaces"))["data"]}
    assert {"default", "ops", "ops-team", "ops-team-2"} <= names


def test_patch_workspace_sets_and_clears_limits(
    gw: GatewayProcess, admin_key: str, tenants: Tenants
):
    path = ws_path(tenants.b)
    with gw.http(tenants.b_admin) as http:
        updated = ok(
            http.patch(
                path,
                json={
                    "name": "Tenant B",
                    "rpm_limit": 600,
                    "tpm_limit": 100_000,
                    "max_cost_per_request": 0.5,
                },
            )
        )
        assert (updated["name"], updated["rpm_limit"], updated["tpm_limit"]) == (
            "Tenant B",
            600,
            100_000,
        )
        assert updated["max_cost_per_request"] == 0.5 and updated["slug"] == "tenant-b"
        cleared = ok(http.patch(path, json={"rpm_limit": None}))
        assert cleared["rpm_limit"] is None and cleared["tpm_limit"] == 100_000
        assert ok(http.get(path)) == cleared
        for bad, param in (
            ({"slug": "new"}, "slug"),
            ({"rpm_limit": 0}, "rpm_limit"),
            ({"max_cost_per_request": -1}, "max_cost_per_request"),
            ({"name": None}, "name"),
            ({"tpm_limit": "lots"}, "tpm_limit"),
        ):
            assert_error(http.patch(path, json=bad), 400, "invalid_request", param=param)
        ok(http.patch(path, json={"tpm_limit": None, "max_cost_per_request": None}))
