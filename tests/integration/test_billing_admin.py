"""Management API (SPEC §7, §8): the wallet — reading it, topping it up (exactly, even when
top-ups race), and live traffic debiting it once it is prepaid."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from support.admin import (
    new_workspace,
    ok,
    single_upstream_gateway,
    wait_for_requests,
    wait_until,
    ws_path,
)
from support.checks import assert_error, chat_body
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
        tmp_path_factory.mktemp("gw-billing"),
        upstream_a.base_url,
        provider_key_a,
        admin_key,
        "gw-billing",
    ) as gateway:
        yield gateway


def _billing(gw: GatewayProcess, key: str, ws: str) -> dict[str, Any]:
    with gw.http(key) as http:
        billing = ok(http.get(ws_path(ws, "/billing")))
    assert isinstance(billing, dict)
    return billing


def _top_up(gw: GatewayProcess, key: str, ws: str, body: dict[str, Any]) -> dict[str, Any]:
    with gw.http(key) as http:
        billing = ok(http.post(ws_path(ws, "/billing/credits"), json=body))
    assert isinstance(billing, dict)
    return billing


def test_a_new_workspace_has_an_empty_postpaid_wallet(gw: GatewayProcess, admin_key: str):
    ws, _ = new_workspace(gw, admin_key, "billing-empty")
    assert _billing(gw, admin_key, ws) == {
        "object": "billing",
        "workspace_id": ws,
        "tier": "postpaid",
        "balance_microdollars": 0,
        "balance_usd": 0,
        "reserved_microdollars": 0,
    }


def test_top_ups_add_exactly_and_make_the_wallet_prepaid(gw: GatewayProcess, admin_key: str):
    ws, _ = new_workspace(gw, admin_key, "billing-top-up")
    first = _top_up(gw, admin_key, ws, {"amount_usd": 12.5})
    assert first["tier"] == "prepaid" and first["balance_microdollars"] == 12_500_000
    assert first["balance_usd"] == 12.5
    second = _top_up(gw, admin_key, ws, {"amount_microdollars": 1})
    assert second["balance_microdollars"] == 12_500_001
    assert _billing(gw, admin_key, ws) == second


def test_concurrent_top_ups_all_count(gw: GatewayProcess, admin_key: str):
    ws, _ = new_workspace(gw, admin_key, "billing-race")
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(lambda _: _top_up(gw, admin_key, ws, {"amount_usd": 0.25}), range(40))
        )
    balances = sorted(a["balance_microdollars"] for a in answers)
    assert balances == [250_000 * n for n in range(1, 41)], "each top-up saw its own total"
    assert _billing(gw, admin_key, ws)["balance_microdollars"] == 10_000_000


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "amount_usd"),
        ({"amount_usd": 1, "amount_microdollars": 1_000_000}, "amount_usd"),
        ({"amount_usd": 0}, "amount_usd"),
        ({"amount_usd": -1}, "amount_usd"),
        ({"amount_usd": "5"}, "amount_usd"),
        ({"amount_usd": 1e-9}, "amount_usd"),
        ({"amount_usd": 1e12}, "amount_usd"),
        ({"amount_microdollars": 0}, "amount_microdollars"),
        ({"amount_microdollars": 2.5}, "amount_microdollars"),
        ({"amount": 5}, "amount"),
    ],
)
def test_bad_top_ups_are_400_naming_the_field(
    gw: GatewayProcess, admin_key: str, body: dict[str, Any], param: str
):
    ws = gw.default_workspace_id()
    before = _billing(gw, admin_key, ws)
    with gw.http(admin_key) as http:
        resp = http.post(ws_path(ws, "/billing/credits"), json=body)
    assert_error(resp, 400, "invalid_request", param=param)
    assert _billing(gw, admin_key, ws) == before


def test_workspace_admins_top_up_their_own_wallet_only(gw: GatewayProcess, admin_key: str):
    ws, own_admin = new_workspace(gw, admin_key, "billing-own-admin")
    assert _top_up(gw, own_admin, ws, {"amount_usd": 3})["balance_microdollars"] == 3_000_000
    reader = gw.create_key("billing-reader", scopes=["read", "inference"], workspace_id=ws)
    with gw.http(reader["key"]) as http:
        assert_error(http.get(ws_path(ws, "/billing")), 403, "forbidden")
        resp = http.post(ws_path(ws, "/billing/credits"), json={"amount_usd": 1})
        assert_error(resp, 403, "forbidden")
    assert _billing(gw, admin_key, ws)["balance_microdollars"] == 3_000_000


def test_live_traffic_debits_a_prepaid_wallet_by_its_exact_cost(
    gw: GatewayProcess, admin_key: str, upstream_a: UpstreamServer
):
    ws, _ = new_workspace(gw, admin_key, "billing-debit")
    _top_up(gw, admin_key, ws, {"amount_usd": 5})
    upstream_a.set_default(Reply(prompt_tokens=400, completion_tokens=100))
    live = gw.create_key("billing-live", workspace_id=ws)["key"]
    test = gw.create_key("billing-test", mode="test", workspace_id=ws)["key"]
    for key in (live, live, test):
        with gw.http(key) as http:
            assert http.post("/v1/chat/completions", json=chat_body(model="gpt-4o")).is_success
    wait_for_requests(gw, admin_key, ws, 3)
    cost = 2 * (400 * 2.5 + 100 * 10.0)  # micro-dollars; the test key is free
    billing = wait_until(
        lambda: (b := _billing(gw, admin_key, ws))["balance_microdollars"] < 5_000_000 and b,
        "the wallet debit",
    )
    assert billing["balance_microdollars"] == 5_000_000 - cost
    assert billing["reserved_microdollars"] == 0, "nothing is in flight any more"
