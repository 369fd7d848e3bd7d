"""Key IP allow-lists (SPEC §6, §7): a key used from outside its list gets 403
``ip_not_allowed`` on every authenticated route; the list is validated at creation.

The gateway listens on 127.0.0.1; clients connect from other loopback addresses
(127.0.0.2, 127.0.0.5) by binding their side of the socket, which Linux allows for the
whole of 127.0.0.0/8.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.admin import ok, ws_path
from support.checks import assert_error, chat_body
from support.gateway import GatewayProcess


def _client(gw: GatewayProcess, key: str, source: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(
        base_url=gw.base_url,
        headers={"Authorization": f"Bearer {key}"},
        transport=httpx.HTTPTransport(local_address=source),
        timeout=20.0,
        trust_env=False,
    )


def _key(gw: GatewayProcess, entries: list[str], **extra: Any) -> dict[str, Any]:
    return gw.create_key(f"ip-{'-'.join(entries)}", mode="test", ip_allowlist=entries, **extra)


INFERENCE_ROUTES = [
    ("POST", "/v1/chat/completions", chat_body(model="gpt-4o")),
    (
        "POST",
        "/v1/messages",
        {"model": "gpt-4o", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/usage", None),
]


@pytest.mark.parametrize(("method", "path", "body"), INFERENCE_ROUTES)
def test_outside_the_list_every_route_is_403(
    gateway: GatewayProcess, method: str, path: str, body: Any
):
    created = _key(gateway, ["10.0.0.0/8"], scopes=["inference", "read"])
    with _client(gateway, created["key"]) as http:
        resp = http.request(method, path, json=body)
    err = assert_error(resp, 403, "ip_not_allowed", secrets=(created["key"],))
    assert "127.0.0.1" in err["message"]


@pytest.mark.parametrize(("method", "path", "body"), INFERENCE_ROUTES)
def test_inside_the_list_every_route_works(
    gateway: GatewayProcess, method: str, path: str, body: Any
):
    created = _key(gateway, ["127.0.0.1"], scopes=["inference", "read"])
    with _client(gateway, created["key"]) as http:
        resp = http.request(method, path, json=body)
    assert resp.status_code == 200, resp.text


def test_cidr_membership_is_by_the_connections_address(gateway: GatewayProcess):
    created = _key(gateway, ["127.0.0.0/30"])
    for source, allowed in (("127.0.0.1", True), ("127.0.0.2", True), ("127.0.0.5", False)):
        with _client(gateway, created["key"], source) as http:
            resp = http.get("/v1/models")
        if allowed:
            assert resp.status_code == 200, (source, resp.text)
        else:
            assert_error(resp, 403, "ip_not_allowed")


def test_forwarded_headers_are_not_trusted(gateway: GatewayProcess):
    created = _key(gateway, ["10.0.0.0/8"])
    spoofed = {"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3", "Forwarded": "for=10.1.2.3"}
    with _client(gateway, created["key"]) as http:
        resp = http.get("/v1/models", headers=spoofed)
    assert_error(resp, 403, "ip_not_allowed")


def test_an_admin_key_with_a_list_is_held_to_it_on_the_management_api(
    gateway: GatewayProcess,
):
    admin = gateway.create_key("ip-admin", scopes=["admin"], ip_allowlist=["127.0.0.2"])
    ws = gateway.default_workspace_id()
    with _client(gateway, admin["key"], "127.0.0.1") as http:
        assert_error(http.get(ws_path(ws, "/keys")), 403, "ip_not_allowed")
        assert_error(http.get(ws_path(ws, "/budgets")), 403, "ip_not_allowed")
    with _client(gateway, admin["key"], "127.0.0.2") as http:
        assert ok(http.get(ws_path(ws, "/keys")))["object"] == "list"


def test_entries_are_validated_and_listed_canonically(gateway: GatewayProcess, admin_key: str):
    ws = gateway.default_workspace_id()
    created = _key(gateway, ["10.0.0.7/24", "2001:DB8::1", "::ffff:192.0.2.1"])
    assert created["ip_allowlist"] == ["10.0.0.0/24", "2001:db8::1", "192.0.2.1"]
    with gateway.http(admin_key) as http:
        shown = ok(http.get(ws_path(ws, f"/keys/{created['id']}")))
        assert shown["ip_allowlist"] == created["ip_allowlist"]
        for bad in (["10.0.0.256"], ["example.com"], [], ["10.0.0.0/40"], [""], "10.0.0.1"):
            resp = http.post(ws_path(ws, "/keys"), json={"name": "bad-ip", "ip_allowlist": bad})
            assert_error(resp, 400, "invalid_request", param="ip_allowlist")
