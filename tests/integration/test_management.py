"""Management API (SPEC §7, §8): workspaces, keys, scopes, and the model list."""

from __future__ import annotations

import time
from datetime import datetime

from support.checks import assert_error, chat_body
from support.configs import GPT4O_UP
from support.gateway import GatewayProcess


def _model_ids(gateway: GatewayProcess, key: str) -> set[str]:
    with gateway.http(key) as http:
        resp = http.get("/v1/models")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    for item in body["data"]:
        assert item["object"] == "model"
        assert isinstance(item["id"], str) and item["id"]
    return {item["id"] for item in body["data"]}


def test_workspaces_list_has_default(gateway: GatewayProcess, admin_key: str):
    with gateway.http(admin_key) as http:
        resp = http.get("/v1/workspaces")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    default = [ws for ws in body["data"] if ws.get("slug") == "default"]
    assert len(default) == 1, body
    assert isinstance(default[0]["id"], str) and default[0]["id"]
    assert isinstance(default[0]["name"], str) and default[0]["name"]


def test_management_requires_a_key(gateway: GatewayProcess):
    with gateway.http() as http:
        resp = http.get("/v1/workspaces")
    assert_error(resp, 401, "invalid_api_key")


def test_management_requires_admin_scope(gateway: GatewayProcess):
    key = gateway.create_key("inference-only", scopes=["inference"])["key"]
    with gateway.http(key) as http:
        resp = http.get("/v1/workspaces")
        create = http.post(
            f"/v1/workspaces/{gateway.default_workspace_id()}/keys", json={"name": "evil"}
        )
    assert_error(resp, 403, "forbidden", secrets=(key,))
    assert_error(create, 403, "forbidden", secrets=(key,))


def test_create_live_key_defaults_and_use(gateway: GatewayProcess, upstream_a):
    created = gateway.create_key("live-default")
    key = created["key"]
    assert key.startswith("rg_live_")
    assert len(key) >= len("rg_live_") + 43, "key must carry at least 32 bytes of entropy"
    assert created["mode"] == "live"
    assert created["name"] == "live-default"
    assert created["scopes"] == ["inference"]
    assert isinstance(created["id"], str) and created["id"]
    assert key.startswith(created["prefix"].rstrip(".…")) and len(created["prefix"]) < len(key)
    stamp = created["created_at"]
    if isinstance(stamp, str):
        datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    else:
        assert isinstance(stamp, int | float) and stamp > 1.6e9, stamp
    with gateway.openai(key) as client:
        resp = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert resp.model_extra["routing_metadata"]["provider"] == "upstream-a"
    assert upstream_a.last_chat().json["model"] == GPT4O_UP


def test_keys_are_unique(gateway: GatewayProcess):
    a = gateway.create_key("uniq-1")
    b = gateway.create_key("uniq-2")
    assert a["key"] != b["key"] and a["id"] != b["id"]


def test_key_listing_never_shows_plaintext(gateway: GatewayProcess, admin_key: str):
    created = gateway.create_key("listed")
    ws = gateway.default_workspace_id()
    with gateway.http(admin_key) as http:
        resp = http.get(f"/v1/workspaces/{ws}/keys")
    assert resp.status_code == 200, resp.text
    assert created["key"] not in resp.text
    assert created["id"] in resp.text


def test_test_key_is_served_by_mock_deterministically(gateway: GatewayProcess, upstream_a):
    created = gateway.create_key("test-mode", mode="test")
    key = created["key"]
    assert key.startswith("rg_test_")
    assert created["mode"] == "test"
    messages = [{"role": "user", "content": "Tell me about routing."}]
    with gateway.openai(key) as client:
        first = client.chat.completions.create(model="gpt-4o", messages=messages)
        second = client.chat.completions.create(model="gpt-4o", messages=messages)
        chunks = list(
            client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        )
    assert first.model_extra["routing_metadata"]["provider"] == "mock"
    assert first.choices[0].message.content
    assert first.choices[0].message.content == second.choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == first.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert upstream_a.chat_requests() == [], "a test key reached a real upstream"


def test_revoked_key_is_rejected(gateway: GatewayProcess, admin_key: str):
    created = gateway.create_key("to-revoke")
    ws = gateway.default_workspace_id()
    with gateway.http(created["key"]) as http:
        assert http.get("/v1/models").status_code == 200
    with gateway.http(admin_key) as http:
        resp = http.delete(f"/v1/workspaces/{ws}/keys/{created['id']}")
    assert resp.status_code in {200, 204}, resp.text
    time.sleep(1.0)
    with gateway.http(created["key"]) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
    assert_error(resp, 401, "invalid_api_key", secrets=(created["key"],))


def test_models_list_for_live_key(gateway: GatewayProcess, admin_key: str):
    ids = _model_ids(gateway, admin_key)
    assert {"gpt-4o", "gpt-4o-mini"} <= ids, ids


def test_models_list_for_test_key_covers_catalog(gateway: GatewayProcess):
    key = gateway.create_key("test-models", mode="test")["key"]
    ids = _model_ids(gateway, key)
    # the mock offers every catalog model
    assert {"gpt-4o", "gpt-4o-mini"} <= ids, ids
    assert len(ids) > 2


def test_models_list_filtered_by_key_allow_list(gateway: GatewayProcess):
    key = gateway.create_key("only-mini", allowed_models=["gpt-4o-mini"])["key"]
    ids = _model_ids(gateway, key)
    assert ids == {"gpt-4o-mini"}, ids


# --- single keys: view and revoke ----------------------------------------------------


def _key_path(workspace_id: str, key_id: str) -> str:
    return f"/v1/workspaces/{workspace_id}/keys/{key_id}"


def test_get_key_shows_the_listed_view(gateway: GatewayProcess, admin_key: str):
    created = gateway.create_key("viewed")
    ws = gateway.default_workspace_id()
    with gateway.http(admin_key) as http:
        resp = http.get(_key_path(ws, created["id"]))
        listed = http.get(f"/v1/workspaces/{ws}/keys").json()["data"]
    assert resp.status_code == 200, resp.text
    view = resp.json()
    assert view == next(k for k in listed if k["id"] == created["id"])
    assert view["status"] == "active" and view["object"] == "api_key"
    assert created["key"] not in resp.text and "key_hash" not in view


def test_revoke_answers_the_revoked_view_and_stops_the_key_within_1s(
    gateway: GatewayProcess, admin_key: str
):
    created = gateway.create_key("revoke-fast")
    key, ws = created["key"], gateway.default_workspace_id()
    with gateway.http(key) as http:  # warm this process's key cache
        assert http.post("/v1/chat/completions", json=chat_body(model="gpt-4o")).status_code == 200
    with gateway.http(admin_key) as http:
        resp = http.delete(_key_path(ws, created["id"]))
    revoked_at = time.monotonic()
    assert resp.status_code == 200, resp.text
    view = resp.json()
    assert view["id"] == created["id"] and view["status"] == "revoked"
    assert key not in resp.text
    with gateway.http(key) as http:
        while True:
            answer = http.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))
            elapsed = time.monotonic() - revoked_at
            if answer.status_code == 401 or elapsed > 1.0:
                break
            time.sleep(0.05)
    assert elapsed <= 1.0, f"revoked key still served {elapsed:.2f}s after revocation"
    assert_error(answer, 401, "invalid_api_key", secrets=(key,))
    with gateway.http(admin_key) as http:
        again = http.delete(_key_path(ws, created["id"]))
        shown = http.get(_key_path(ws, created["id"]))
        listed = http.get(f"/v1/workspaces/{ws}/keys").json()["data"]
    assert again.status_code == 200 and again.json()["status"] == "revoked", "not idempotent"
    assert shown.json()["status"] == "revoked"
    assert next(k for k in listed if k["id"] == created["id"])["status"] == "revoked"


def test_single_key_routes_answer_404_outside_the_callers_reach(
    gateway: GatewayProcess, admin_key: str
):
    created = gateway.create_key("not-reachable")
    ws = gateway.default_workspace_id()
    paths = [
        _key_path("ws_made_up_elsewhere", created["id"]),
        _key_path(ws, "key_does_not_exist"),
    ]
    with gateway.http(admin_key) as http:
        for path in paths:
            assert_error(http.get(path), 404, "not_found")
            assert_error(http.delete(path), 404, "not_found")
        assert http.get(_key_path(ws, created["id"])).json()["status"] == "active"


def test_single_key_routes_require_admin_scope(gateway: GatewayProcess):
    inference = gateway.create_key("no-admin", scopes=["inference", "read"])
    path = _key_path(gateway.default_workspace_id(), inference["id"])
    with gateway.http(inference["key"]) as http:
        assert_error(http.get(path), 403, "forbidden")
        assert_error(http.delete(path), 403, "forbidden")
        assert http.get("/v1/models").status_code == 200, "the key must still work"


def test_workspace_admin_revokes_its_keys_but_not_the_gateway_wide_key(
    make_gateway, admin_key: str
):
    gw = make_gateway(None, name="gw-revoke")  # own gateway: the bootstrap key is at stake
    ws = gw.default_workspace_id()
    workspace_admin = gw.create_key("ws-admin", scopes=["admin"])
    victim = gw.create_key("victim")
    with gw.http(admin_key) as http:
        listed = http.get(f"/v1/workspaces/{ws}/keys").json()["data"]
    bootstrap = next(k for k in listed if k["name"] == "bootstrap admin")
    with gw.http(workspace_admin["key"]) as http:
        resp = http.delete(_key_path(ws, victim["id"]))
        assert resp.status_code == 200 and resp.json()["status"] == "revoked", resp.text
        assert_error(http.delete(_key_path(ws, bootstrap["id"])), 403, "forbidden")
    time.sleep(0.6)
    with gw.http(admin_key) as http:
        assert http.get(f"/v1/workspaces/{ws}").status_code == 200
