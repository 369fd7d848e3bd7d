"""Budget alert webhooks never go to the gateway's own network unless the config allows it
(docs/governance.md, "Alert webhooks"): loopback, private and link-local targets are a 400
naming ``alert_webhook`` at create and PATCH time, and are refused again at delivery (a
budget made while ``defaults.webhooks.allow_private_targets`` was on, then turned off)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import METER_KEY_ENV, meter_body, meter_config
from support.gateway import GatewayProcess, new_secret
from support.upstream import Reply, UpstreamServer

PRIVATE_TARGETS = [
    "http://127.0.0.1:9/hook",
    "http://localhost:8080/hook",
    "http://[::1]/hook",
    "https://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",
]
BUDGETS = "/v1/workspaces/ws_default/budgets"


def _config(url: str, allow_private: bool) -> dict[str, Any]:
    return meter_config(url, webhooks={"allow_private_targets": allow_private})


@pytest.fixture(scope="module")
def meter() -> Iterator[UpstreamServer]:
    with UpstreamServer("webhook-meter") as up:
        up.set_default(Reply(text="1", prompt_tokens=7, completion_tokens=1))  # $0.01 each
        yield up


@pytest.fixture(scope="module")
def hooks() -> Iterator[UpstreamServer]:
    with UpstreamServer("webhook-receiver") as up:
        yield up


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, meter: UpstreamServer, admin_key: str
) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("gw-hooks"),
        config=_config(meter.base_url, allow_private=False),
        env={METER_KEY_ENV: new_secret("sk-meter-")},
        admin_key=admin_key,
        name="gw-hooks",
    )
    with gateway:
        yield gateway


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_private_targets_are_refused_at_create_and_patch(
    gw: GatewayProcess, admin_key: str, target: str
) -> None:
    with gw.http(admin_key) as http:
        refused = http.post(
            BUDGETS, json={"period": "daily", "limit_usd": 5, "alert_webhook": target}
        )
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert (error["param"], error["code"]) == ("alert_webhook", "invalid_request"), error
        assert "public address" in error["message"]
        made = http.post(BUDGETS, json={"period": "daily", "limit_usd": 5})
        assert made.status_code == 201, made.text
        path = f"{BUDGETS}/{made.json()['id']}"
        patched = http.patch(path, json={"alert_webhook": target})
        assert patched.status_code == 400, patched.text
        assert patched.json()["error"]["param"] == "alert_webhook"
        assert http.get(path).json()["alert_webhook"] is None
        assert http.delete(path).status_code == 200


def test_a_public_address_is_accepted(gw: GatewayProcess, admin_key: str) -> None:
    with gw.http(admin_key) as http:
        made = http.post(
            BUDGETS,
            json={"period": "daily", "limit_usd": 5, "alert_webhook": "https://8.8.8.8/hook"},
        )
        assert made.status_code == 201, made.text
        assert http.delete(f"{BUDGETS}/{made.json()['id']}").status_code == 200


def _spend(gw: GatewayProcess, key: str, requests: int) -> None:
    with gw.http(key) as http:
        for _ in range(requests):
            resp = http.post("/v1/chat/completions", json=meter_body())
            assert resp.status_code == 200, resp.text


def test_delivery_rechecks_the_target(
    tmp_path: Path, meter: UpstreamServer, hooks: UpstreamServer, admin_key: str
) -> None:
    """Allowed: the 50 % alert reaches a loopback receiver. Switched off, the 75 % alert of
    the same budget (made while allowed) is refused at delivery and logged."""
    gateway = GatewayProcess(
        tmp_path / "gw",
        config=_config(meter.base_url, allow_private=True),
        env={METER_KEY_ENV: new_secret("sk-meter-")},
        admin_key=admin_key,
        name="gw-hooks-delivery",
    )
    token = new_secret("hook-token-")
    with gateway:
        key = gateway.create_key("spender")["key"]
        with gateway.http(admin_key) as http:
            made = http.post(
                BUDGETS,
                json={
                    "period": "daily",
                    "limit_usd": 0.04,
                    "enforce": False,
                    "alert_webhook": f"{hooks.base_url}/hooks/{token}",
                },
            )
            assert made.status_code == 201, made.text
        _spend(gateway, key, 2)  # 50 %
        assert len(hooks.wait_for_requests(1, timeout=10.0)) == 1
    gateway.config = _config(meter.base_url, allow_private=False)
    with gateway:
        _spend(gateway, key, 1)  # 75 %
        refusal = "budget alert webhook to http://127.0.0.1 failed: RefusedTarget"
        deadline = time.monotonic() + 10.0
        while refusal not in gateway.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert refusal in gateway.log_text(), gateway.log_tail(40)
    assert len(hooks.requests) == 1, [r.path for r in hooks.requests]
    assert token not in gateway.log_text()
