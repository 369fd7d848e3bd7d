"""Management API (SPEC §8): workspace routing defaults and named routing policies.

One gateway for the module, with two config policies; each test uses its own policy names
and starts from cleared routing defaults, so the tests do not depend on each other's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.checks import assert_error, chat_body
from support.configs import single_upstream_config
from support.gateway import GatewayProcess
from support.upstream import UpstreamServer

ROUTING_FIELDS = {
    "optimize",
    "weights",
    "max_ttft_ms",
    "min_throughput_tps",
    "min_success_rate",
    "max_cost_per_1m",
    "providers",
    "exclude_providers",
    "regions",
    "data_policy",
    "only_byok",
    "only_platform",
    "allow_fallbacks",
    "max_fallback_attempts",
    "mode",
    "quality_floor",
}
CONFIG_POLICIES = {
    "cfg-cheap": {"optimize": "cheapest"},
    "cfg-shadowed": {"optimize": "speed", "max_fallback_attempts": 1},
}
EMPTY = dict.fromkeys(ROUTING_FIELDS)


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: UpstreamServer,
    provider_key_a: str,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    config = single_upstream_config(upstream_a.base_url)
    config["policies"] = CONFIG_POLICIES
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("gw-routing-admin"),
        config=config,
        env={"UPSTREAM_A_KEY": provider_key_a},
        admin_key=admin_key,
        name="gw-routing-admin",
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log_text(), gateway.log_tail(80)


@pytest.fixture
def ws(gw: GatewayProcess, admin_key: str) -> str:
    """The default workspace's id, with its routing defaults cleared."""
    workspace_id = gw.default_workspace_id()
    with gw.http(admin_key) as http:
        resp = http.patch(_defaults(workspace_id), json={})
    assert resp.status_code == 200, resp.text
    return workspace_id


def _defaults(workspace_id: str) -> str:
    return f"/v1/workspaces/{workspace_id}/routing-defaults"


def _policies(workspace_id: str) -> str:
    return f"/v1/workspaces/{workspace_id}/policies"


def _policy(workspace_id: str, name: str) -> str:
    return f"{_policies(workspace_id)}/{name}"


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url.path}: {resp.text}"
    return resp.json()


def _listed(http: httpx.Client, workspace_id: str) -> dict[str, dict[str, Any]]:
    body = _ok(http.get(_policies(workspace_id)))
    assert body["object"] == "list"
    names = [item["name"] for item in body["data"]]
    assert len(names) == len(set(names)), f"a name is listed twice: {names}"
    return {item["name"]: item for item in body["data"]}


# --- routing defaults -------------------------------------------------------------------


def test_routing_defaults_start_empty_with_every_field(gw: GatewayProcess, admin_key: str, ws):
    with gw.http(admin_key) as http:
        body = _ok(http.get(_defaults(ws)))
    assert body == EMPTY


def test_patch_updates_present_fields_null_clears_and_empty_clears_all(
    gw: GatewayProcess, admin_key: str, ws
):
    with gw.http(admin_key) as http:
        first = _ok(
            http.patch(
                _defaults(ws),
                json={"optimize": "cost", "regions": ["us-*"], "max_fallback_attempts": 2},
            )
        )
        assert first == {
            **EMPTY,
            "optimize": "cost",
            "regions": ["us-*"],
            "max_fallback_attempts": 2,
        }
        assert _ok(http.get(_defaults(ws))) == first

        weights = {"cost": 1, "ttft": 0.5}
        second = _ok(http.patch(_defaults(ws), json={"weights": weights, "optimize": "speed"}))
        full_weights = {"cost": 1.0, "ttft": 0.5, "throughput": 0.0, "reliability": 0.0}
        assert second == {
            **first,
            "optimize": "speed",
            "weights": {**full_weights, "quality": 0.0},
        }, "fields not in the body must keep their values"

        third = _ok(http.patch(_defaults(ws), json={"regions": None, "weights": None}))
        assert third == {**EMPTY, "optimize": "speed", "max_fallback_attempts": 2}
        assert _ok(http.get(_defaults(ws))) == third

        assert _ok(http.patch(_defaults(ws), json={})) == EMPTY
        assert _ok(http.get(_defaults(ws))) == EMPTY


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"weights": {"cost": -1}}, "weights.cost"),
        ({"weights": {"price": 1}}, "weights"),
        ({"optimize": "fastest-ever"}, "optimize"),
        ({"max_ttft_ms": 0}, "max_ttft_ms"),
        ({"min_success_rate": 1.5}, "min_success_rate"),
        ({"max_fallback_attempts": 11}, "max_fallback_attempts"),
        ({"data_policy": "strict"}, "data_policy"),
        ({"providers": "upstream-a"}, "providers"),
        ({"providers": ["upstream-a", "no-such-provider"]}, "providers"),
        ({"exclude_providers": ["no-such-provider"]}, "exclude_providers"),
        ({"only_byok": True, "only_platform": True}, "only_byok"),
        ({"not_a_routing_option": 1}, "not_a_routing_option"),
    ],
)
def test_patch_rejects_invalid_options_naming_the_param(
    gw: GatewayProcess, admin_key: str, ws, body: dict[str, Any], param: str
):
    with gw.http(admin_key) as http:
        before = _ok(http.patch(_defaults(ws), json={"optimize": "cost"}))
        resp = http.patch(_defaults(ws), json=body)
        assert_error(resp, 400, "invalid_request", param=param)
        assert _ok(http.get(_defaults(ws))) == before, "a rejected PATCH changed the defaults"


def test_patch_checks_the_merged_result_and_bodies(gw: GatewayProcess, admin_key: str, ws):
    with gw.http(admin_key) as http:
        _ok(http.patch(_defaults(ws), json={"only_byok": True}))
        conflict = http.patch(_defaults(ws), json={"only_platform": True})
        assert_error(conflict, 400, "invalid_request", param="only_byok")
        switched = _ok(http.patch(_defaults(ws), json={"only_byok": None, "only_platform": True}))
        assert switched["only_platform"] is True and switched["only_byok"] is None
        for raw in (b"[]", b"not json", b'"x"'):
            resp = http.patch(
                _defaults(ws), content=raw, headers={"content-type": "application/json"}
            )
            assert_error(resp, 400, "invalid_request")
        aliased = _ok(http.patch(_defaults(ws), json={"providers": ["UPSTREAM-A"]}))
        assert aliased["providers"] == ["UPSTREAM-A"], "provider names are case-insensitive"


# --- named policies ---------------------------------------------------------------------


def test_policy_crud(gw: GatewayProcess, admin_key: str, ws):
    options = {"optimize": "cheapest", "max_cost_per_1m": 5, "exclude_providers": ["mock"]}
    with gw.http(admin_key) as http:
        created = _ok(http.put(_policy(ws, "crud-1"), json=options), 201)
        assert created["name"] == "crud-1" and created["source"] == "workspace"
        assert created["options"] == {**EMPTY, **options, "max_cost_per_1m": 5.0}
        assert _ok(http.get(_policy(ws, "crud-1"))) == created

        replaced = _ok(http.put(_policy(ws, "crud-1"), json={"optimize": "speed"}), 200)
        assert replaced["options"] == {**EMPTY, "optimize": "speed"}, "PUT replaces, not merges"
        listed = _listed(http, ws)
        assert listed["crud-1"]["options"] == replaced["options"]
        assert listed["crud-1"]["source"] == "workspace"
        for name, config_options in CONFIG_POLICIES.items():
            assert listed[name]["source"] == "config"
            for field, value in config_options.items():
                assert listed[name]["options"][field] == value

        deleted = _ok(http.delete(_policy(ws, "crud-1")))
        assert deleted["deleted"] is True and deleted["name"] == "crud-1"
        assert_error(http.get(_policy(ws, "crud-1")), 404, "not_found")
        assert_error(http.delete(_policy(ws, "crud-1")), 404, "not_found")
        assert "crud-1" not in _listed(http, ws)


def test_workspace_policy_shadows_the_config_policy(gw: GatewayProcess, admin_key: str, ws):
    with gw.http(admin_key) as http:
        shown = _ok(http.get(_policy(ws, "cfg-shadowed")))
        assert shown["source"] == "config" and shown["options"]["optimize"] == "speed"
        own = _ok(http.put(_policy(ws, "cfg-shadowed"), json={"optimize": "ttft"}), 201)
        assert own["source"] == "workspace"
        assert _ok(http.get(_policy(ws, "cfg-shadowed"))) == own
        listed = _listed(http, ws)
        assert listed["cfg-shadowed"] == own, "the list must show only the shadowing policy"

        _ok(http.delete(_policy(ws, "cfg-shadowed")))
        assert _ok(http.get(_policy(ws, "cfg-shadowed"))) == shown, "config policy shows again"
        config_only = http.delete(_policy(ws, "cfg-shadowed"))
        assert_error(config_only, 400, "invalid_request", param="name")
        assert _ok(http.get(_policy(ws, "cfg-shadowed"))) == shown


@pytest.mark.parametrize("name", ["Upper", "dot.name", "a" * 65, "sp%20ace"])
def test_put_rejects_bad_policy_names(gw: GatewayProcess, admin_key: str, ws, name: str):
    with gw.http(admin_key) as http:
        resp = http.put(_policy(ws, name), json={"optimize": "cost"})
        assert_error(resp, 400, "invalid_request", param="name")
        assert_error(http.get(_policy(ws, name)), 404, "not_found")


def test_put_accepts_the_longest_name_and_validates_the_body(
    gw: GatewayProcess, admin_key: str, ws
):
    name = "a-b_" + "9" * 60
    with gw.http(admin_key) as http:
        _ok(http.put(_policy(ws, name), json={}), 201)
        bad = [
            ({"providers": ["no-such-provider"]}, "providers"),
            ({"weights": {"quality": "high"}}, "weights.quality"),
            ({"only_byok": True, "only_platform": True}, "only_byok"),
            ({"zdr": True}, "zdr"),
        ]
        for body, param in bad:
            assert_error(
                http.put(_policy(ws, "bad-body"), json=body), 400, "invalid_request", param=param
            )
        assert_error(http.get(_policy(ws, "bad-body")), 404, "not_found")
        _ok(http.delete(_policy(ws, name)))


# --- ownership and scope ----------------------------------------------------------------


def _all_routes(workspace_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", _defaults(workspace_id), None),
        ("PATCH", _defaults(workspace_id), {"optimize": "cost"}),
        ("GET", _policies(workspace_id), None),
        ("GET", _policy(workspace_id, "cfg-cheap"), None),
        ("PUT", _policy(workspace_id, "scoped"), {"optimize": "cost"}),
        ("DELETE", _policy(workspace_id, "scoped"), None),
    ]


def test_other_workspace_ids_answer_404(gw: GatewayProcess, admin_key: str, ws):
    workspace_admin = gw.create_key("routing-ws-admin", scopes=["admin"])["key"]
    for key in (admin_key, workspace_admin):
        with gw.http(key) as http:
            for method, path, body in _all_routes("ws_made_up_elsewhere"):
                resp = http.request(method, path, json=body)
                assert_error(resp, 404, "not_found", secrets=(key,))
    with gw.http(workspace_admin) as http:  # its own workspace is fine
        assert _ok(http.patch(_defaults(ws), json={"optimize": "cost"}))["optimize"] == "cost"
        assert _ok(http.put(_policy(ws, "by-ws-admin"), json={}), 201)["source"] == "workspace"
        _ok(http.delete(_policy(ws, "by-ws-admin")))


def test_routing_admin_requires_the_admin_scope(gw: GatewayProcess, ws):
    key = gw.create_key("routing-no-admin", scopes=["inference", "read"])["key"]
    with gw.http(key) as http:
        for method, path, body in _all_routes(ws):
            assert_error(http.request(method, path, json=body), 403, "forbidden", secrets=(key,))
    with gw.http() as http:
        for method, path, body in _all_routes(ws):
            assert_error(http.request(method, path, json=body), 401, "invalid_api_key")


# --- use by requests --------------------------------------------------------------------


def _chat(gw: GatewayProcess, key: str, **headers: str) -> httpx.Response:
    with gw.http(key) as http:
        return http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"), headers=headers)


def test_x_routing_policy_selects_a_workspace_policy(gw: GatewayProcess, admin_key: str, ws):
    with gw.http(admin_key) as http:
        _ok(http.put(_policy(ws, "ws-header"), json={"optimize": "cost"}), 201)
    answer = _ok(_chat(gw, admin_key, **{"X-Routing-Policy": "ws-header"}))
    assert answer["routing_metadata"]["policy"] == "ws-header"
    config = _ok(_chat(gw, admin_key, **{"X-Routing-Policy": "cfg-cheap"}))
    assert config["routing_metadata"]["policy"] == "cfg-cheap"
    with gw.http(admin_key) as http:
        _ok(http.delete(_policy(ws, "ws-header")))
    unknown = _chat(gw, admin_key, **{"X-Routing-Policy": "ws-header"})
    assert_error(unknown, 400, "invalid_request", param="X-Routing-Policy")


def test_workspace_defaults_apply_to_requests(gw: GatewayProcess, admin_key: str, ws):
    with gw.http(admin_key) as http:
        _ok(http.patch(_defaults(ws), json={"exclude_providers": ["upstream-a"]}))
    assert_error(_chat(gw, admin_key), 409, "policy_conflict")
    with gw.http(admin_key) as http:
        _ok(http.patch(_defaults(ws), json={"exclude_providers": None}))
    assert _chat(gw, admin_key).status_code == 200


def test_key_default_policy_may_name_a_workspace_policy(gw: GatewayProcess, admin_key: str, ws):
    with gw.http(admin_key) as http:
        _ok(http.put(_policy(ws, "key-default"), json={"optimize": "cost"}), 201)
    created = gw.create_key("with-ws-policy", default_policy="key-default")
    answer = _ok(_chat(gw, created["key"]))
    assert answer["routing_metadata"]["policy"] == "key-default"
    with gw.http(admin_key) as http:
        in_use = http.delete(_policy(ws, "key-default"))
        assert_error(in_use, 409, "policy_conflict", param="name")
        _ok(http.delete(f"/v1/workspaces/{ws}/keys/{created['id']}"))
        _ok(http.delete(_policy(ws, "key-default")))
        unknown = http.post(
            f"/v1/workspaces/{ws}/keys", json={"name": "x", "default_policy": "key-default"}
        )
        assert_error(unknown, 400, "invalid_request", param="default_policy")
