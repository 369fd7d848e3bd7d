"""Secrets never leak, secrets at rest are hashes or ciphertext, workspaces never mix
(SPEC §6, §7, §8), on both backends (each with its ``TOPOLOGY``).

``test_no_secret_anywhere`` runs one scenario through every route of the gateway's path table
(it fails if a route was not exercised) and keeps every response; the secrets are then
looked for in every response body and header, every log line of every gateway process, every
budget webhook the gateway sent, and everything the store holds (every SQLite cell, every
Redis key and value):

- the bootstrap admin key, the master key, the Redis password (in the store URL), the
  platform provider key, a workspace's BYOK provider key, every gateway key created (allowed
  only in the one response that creates it), a key that does not exist, a webhook's token;
- upstream errors that quote the key they were sent must not carry it to the client.

``test_keys_at_rest`` reads the store directly: gateway keys are keyed hashes (HMAC-SHA256
under the key derived from the master key, not a plain SHA-256), BYOK keys are AEAD
ciphertext. ``test_inference_isolation`` checks that one workspace's budget, wallet and usage
never touch another's (management routes' 404s are covered by the management suites).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from support.cluster import (
    BACKENDS,
    MICRO,
    REQUEST_COST_MICRO,
    Backend,
    Cluster,
    fire,
    meter_body,
    usage_summary,
    wait_until,
)
from support.gateway import new_secret
from support.upstream import Reply, Status, UpstreamServer

from .conftest import METER_REPLY, TOPOLOGY, ClusterFactory
from .expect import assert_counts, assert_refusal, settle_rules


@dataclass
class Call:
    method: str
    path: str
    status: int
    text: str
    headers: dict[str, str]
    reveals: tuple[str, ...] = ()


@dataclass
class Run:
    """Every response of the scenario, each with the secrets it is allowed to show."""

    base_url: str
    calls: list[Call] = field(default_factory=list)
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url, timeout=30.0, trust_env=False)

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None,
        expect: int | tuple[int, ...],
        json: Any = None,
        params: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        if stream:
            with self.http.stream(method, path, json=json, headers=headers) as resp:
                resp.read()
        else:
            resp = self.http.request(method, path, json=json, params=params, headers=headers)
        reveals: tuple[str, ...] = ()
        if resp.status_code == 201 and isinstance(_json(resp), dict) and "key" in resp.json():
            reveals = (resp.json()["key"],)  # a key is shown once, when it is created
        self.calls.append(
            Call(method, path, resp.status_code, resp.text, dict(resp.headers), reveals)
        )
        wanted = (expect,) if isinstance(expect, int) else expect
        assert resp.status_code in wanted, (
            f"{method} {path} -> {resp.status_code}: {resp.text[:600]}"
        )
        return resp

    def close(self) -> None:
        self.http.close()


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _route_table() -> list[tuple[str, str, re.Pattern[str] | None]]:
    """(method, path or pattern, compiled pattern) of every route the gateway serves."""
    from gateway.edge import app

    table: list[tuple[str, str, re.Pattern[str] | None]] = [
        (method, path, None) for method, path in app.ROUTES
    ]
    table += [(method, pattern.pattern, pattern) for method, pattern, _ in app.PATTERNS]
    return table


def _uncovered(calls: list[Call]) -> list[str]:
    missing = []
    for method, path, pattern in _route_table():
        hit = any(
            c.method == method
            and (c.path.split("?")[0] == path if pattern is None else pattern.match(c.path))
            and "Unknown path" not in c.text
            for c in calls
        )
        if not hit:
            missing.append(f"{method} {path}")
    return missing


@pytest.fixture(scope="module", params=BACKENDS)
def cluster(
    request: pytest.FixtureRequest, module_clusters: ClusterFactory, module_meter: UpstreamServer
) -> Iterator[Cluster]:
    backend: Backend = request.param
    yield module_clusters(
        backend,
        module_meter,
        name=f"sec-{backend}",
        defaults={"webhooks": {"allow_private_targets": True}},  # the receiver is on loopback
        **TOPOLOGY[backend],
    )


@pytest.fixture
def hooks() -> Iterator[UpstreamServer]:
    """Receives the budget alert webhooks."""
    with UpstreamServer("hooks") as up:
        yield up


@pytest.mark.timeout(120)
def test_no_secret_anywhere(
    cluster: Cluster,
    module_meter: UpstreamServer,
    module_clusters: ClusterFactory,
    hooks: UpstreamServer,
) -> None:
    meter = module_meter
    admin = cluster.admin_key
    byok_secret = new_secret("sk-byok-workspace-owned-")
    probe = new_secret("rg_live_")  # a key that does not exist
    webhook_token = new_secret("hook-token-")
    master_key, meter_key = module_clusters.master_key, module_clusters.meter_key
    never = [admin, master_key, meter_key, byok_secret, probe, webhook_token]
    if cluster.backend == "redis":
        never.append(module_clusters.redis_password)
    run = Run(cluster.targets[0])
    try:
        _scenario(
            run,
            cluster,
            meter,
            hooks,
            byok_secret=byok_secret,
            platform_secret=meter_key,
            probe=probe,
            token=webhook_token,
        )
    finally:
        run.close()
        meter.reset()
        meter.set_default(METER_REPLY)
    created = [s for c in run.calls for s in c.reveals]
    assert len(created) == 7, f"expected 7 created keys, got {len(created)}"
    module_clusters.secrets += [*created, byok_secret, probe, webhook_token]

    missing = _uncovered(run.calls)
    assert not missing, f"routes not exercised by the scenario: {missing}"
    statuses = {c.status for c in run.calls}
    assert 500 not in statuses, [c.text for c in run.calls if c.status == 500][:3]

    secrets = never + created
    for call in run.calls:
        allowed = set(call.reveals)
        blob = call.text + "\n" + "\n".join(f"{k}: {v}" for k, v in call.headers.items())
        for secret in secrets:
            if secret not in allowed:
                assert secret not in blob, (
                    f"{secret[:14]}… in the answer to {call.method} {call.path} "
                    f"({call.status}): {blob[:600]}"
                )
    cluster.assert_no_secrets(secrets)
    dump = cluster.store().dump()
    for secret in [s for s in secrets if s != webhook_token]:  # the URL is kept to call it
        assert secret not in dump, f"{secret[:14]}… stored in plain text"
    for hook in hooks.requests:
        sent = hook.raw_body.decode(errors="replace") + repr(hook.headers)
        for secret in secrets:
            assert secret not in sent, f"{secret[:14]}… in a budget webhook"


def _scenario(
    run: Run,
    cluster: Cluster,
    meter: UpstreamServer,
    hooks: UpstreamServer,
    *,
    byok_secret: str,
    platform_secret: str,
    probe: str,
    token: str,
) -> None:
    admin = cluster.admin_key
    # Workspaces.
    run.call("GET", "/v1/workspaces", key=admin, expect=200)
    ws_a = run.call("POST", "/v1/workspaces", key=admin, json={"name": "sec a"}, expect=201).json()[
        "id"
    ]
    ws_b = run.call("POST", "/v1/workspaces", key=admin, json={"name": "sec b"}, expect=201).json()[
        "id"
    ]
    a, b = f"/v1/workspaces/{ws_a}", f"/v1/workspaces/{ws_b}"
    run.call("GET", a, key=admin, expect=200)
    limits = {"rpm_limit": 10_000, "tpm_limit": 10_000_000, "max_cost_per_request": 5.0}
    run.call("PATCH", a, key=admin, json=limits, expect=200)

    # Keys: create, list, read, rotate (its successor is a created key too).
    def key(path: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(run.call("POST", f"{path}/keys", key=admin, json=body, expect=201).json())

    live_a = key(a, {"name": "live a"})
    admin_a = key(a, {"name": "admin a", "scopes": ["admin", "read"]})
    test_a = key(a, {"name": "test a", "mode": "test"})
    rotated = key(a, {"name": "rotated a"})
    live_b = key(b, {"name": "live b"})
    alerting = key(b, {"name": "alerting b"})
    run.call("GET", f"{a}/keys", key=admin_a["key"], expect=200)
    run.call("GET", f"{a}/keys/{live_a['id']}", key=admin, expect=200)
    successor = run.call(
        "POST",
        f"{a}/keys/{rotated['id']}/rotate",
        key=admin,
        json={"grace_period_s": 60},
        expect=201,
    ).json()
    assert successor["key"] != rotated["key"]

    # Routing settings.
    run.call("GET", f"{a}/routing-defaults", key=admin, expect=200)
    run.call("PATCH", f"{a}/routing-defaults", key=admin, json={"optimize": "balanced"}, expect=200)
    run.call("PUT", f"{a}/policies/frugal", key=admin, json={"optimize": "cheapest"}, expect=201)
    run.call("GET", f"{a}/policies", key=admin, expect=200)
    run.call("GET", f"{a}/policies/frugal", key=admin, expect=200)
    run.call("DELETE", f"{a}/policies/frugal", key=admin, expect=(200, 204))

    # BYOK: workspace A's own key for the meter provider.
    byok = run.call(
        "POST",
        f"{a}/provider-keys",
        key=admin,
        json={"provider": "meter", "key": byok_secret, "name": "own"},
        expect=201,
    ).json()
    run.call("GET", f"{a}/provider-keys", key=admin, expect=200)
    run.call("POST", f"{a}/provider-keys/{byok['id']}/validate", key=admin, expect=200)
    run.call("POST", f"{a}/provider-keys/{byok['id']}/set-default", key=admin, expect=200)

    # Budgets (B's alerting key: 50 % of $0.02 after one request sends the webhook).
    hook_url = f"http://127.0.0.1:{hooks.port}/hooks/{token}"
    budget = run.call(
        "POST",
        f"{b}/budgets",
        key=admin,
        json={
            "scope_type": "api_key",
            "scope_id": alerting["id"],
            "period": "daily",
            "limit_usd": 0.02,
            "alert_webhook": hook_url,
        },
        expect=201,
    ).json()
    run.call("GET", f"{b}/budgets", key=admin, expect=200)
    run.call("GET", f"{b}/budgets/{budget['id']}", key=admin, expect=200)
    run.call(
        "PATCH",
        f"{b}/budgets/{budget['id']}",
        key=admin,
        json={"alert_webhook": hook_url},
        expect=200,
    )
    spare = run.call(
        "POST", f"{a}/budgets", key=admin, json={"period": "monthly", "limit_usd": 50}, expect=201
    ).json()
    run.call("DELETE", f"{a}/budgets/{spare['id']}", key=admin, expect=200)
    run.call("GET", f"{a}/billing", key=admin, expect=200)
    run.call("POST", f"{a}/billing/credits", key=admin, json={"amount_usd": 25}, expect=200)
    settle_rules()

    # Inference, served with A's BYOK key.
    chat = meter_body()
    served = run.call("POST", "/v1/chat/completions", key=live_a["key"], json=chat, expect=200)
    assert served.headers.get("x-api-key-source") == "byok", dict(served.headers)
    assert meter.last_chat().header("authorization") == f"Bearer {byok_secret}"
    run.call(
        "POST",
        "/v1/chat/completions",
        key=live_a["key"],
        json={**chat, "stream": True},
        expect=200,
        stream=True,
    )
    run.call(
        "POST",
        "/v1/messages",
        key=live_a["key"],
        json={
            "model": "gpt-4o-mini",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "hi"}],
        },
        expect=200,
    )
    run.call(
        "POST",
        "/v1/embeddings",
        key=live_a["key"],
        json={"model": "text-embedding-3-small", "input": "x"},
        expect=(400, 404, 409, 503),
    )
    run.call("GET", "/v1/models", key=live_a["key"], expect=200)
    run.call("GET", "/v1/usage", key=live_a["key"], expect=200)
    run.call("POST", "/v1/chat/completions", key=test_a["key"], json=chat, expect=200)
    run.call("POST", "/v1/chat/completions", key=successor["key"], json=chat, expect=200)
    run.call("POST", "/v1/chat/completions", key=rotated["key"], json=chat, expect=200)  # grace

    # The alerting key: one request (50 % → webhook), then its budget's threshold refuses.
    run.call("POST", "/v1/chat/completions", key=alerting["key"], json=chat, expect=200)
    hooks.wait_for_requests(1, timeout=10.0)
    assert len(hooks.requests) == 1, "the 50 % budget alert webhook was not sent"
    assert hooks.requests[0].header("x-routegate-signature"), hooks.requests[0].headers
    refused = run.call("POST", "/v1/chat/completions", key=alerting["key"], json=chat, expect=402)
    assert refused.json()["error"]["code"] == "budget_exceeded"

    # Upstreams that quote the key they were sent, to the platform key (B) and the BYOK key (A).
    def quoting(secret: str, status: int) -> Status:
        return Status(status, message=f"Incorrect API key provided: {secret}. Bad key {secret}")

    meter.enqueue(quoting(platform_secret, 401))
    run.call("POST", "/v1/chat/completions", key=live_b["key"], json=chat, expect=401)
    meter.enqueue(quoting(platform_secret, 400))
    run.call("POST", "/v1/chat/completions", key=live_b["key"], json=chat, expect=400)
    meter.enqueue(quoting(platform_secret, 500), quoting(platform_secret, 500))  # + its retry
    run.call("POST", "/v1/chat/completions", key=live_b["key"], json=chat, expect=502)
    meter.enqueue(quoting(byok_secret, 401))
    run.call("POST", "/v1/chat/completions", key=live_a["key"], json=chat, expect=(200, 401))
    meter.set_default(Reply(text="1", prompt_tokens=7, completion_tokens=1))

    # Keys that do not work.
    run.call("POST", "/v1/chat/completions", key=probe, json=chat, expect=401)
    run.call("POST", "/v1/chat/completions", key=None, json=chat, expect=401)
    run.call("GET", f"{a}/billing", key=live_a["key"], expect=403)  # no admin scope

    # Usage, read back through the management API once the records are in.
    rid = served.headers["x-request-id"]
    wait_until(
        lambda: (
            run.http.get(
                f"{a}/usage/{rid}", headers={"Authorization": f"Bearer {admin}"}
            ).status_code
        ),
        lambda status: status == 200,
        timeout=10.0,
        what="the usage record",
    )
    run.call("GET", f"{a}/usage/{rid}", key=admin, expect=200)
    run.call("GET", f"{a}/usage", key=admin, params={"days": 1, "group_by": "key"}, expect=200)
    run.call("GET", f"{a}/latency", key=admin, params={"days": 1}, expect=200)
    run.call("GET", f"{a}/audit", key=admin, params={"days": 1}, expect=200)
    run.call("GET", f"{a}/keys/{live_a['id']}/usage", key=admin, expect=200)
    run.call("GET", "/health", key=None, expect=200)
    run.call("GET", "/ready", key=None, expect=200)

    # Clean-up writes.
    run.call("DELETE", f"{a}/provider-keys/{byok['id']}", key=admin, expect=200)
    run.call("DELETE", f"{a}/keys/{live_a['id']}", key=admin, expect=200)
    time.sleep(1.1)  # every process's key cache
    run.call("POST", "/v1/chat/completions", key=live_a["key"], json=chat, expect=401)


def test_keys_at_rest_are_hashes_and_ciphertext(
    cluster: Cluster, module_clusters: ClusterFactory, master_key: str
) -> None:
    from gateway.edge.auth import derive_hash_key, hash_secret
    from gateway.settings import load_master_key

    admin = cluster.admin
    ws = admin.create_workspace(f"at-rest-{cluster.backend}")
    keys = [admin.create_key(ws, f"k{i}", mode=mode) for i, mode in enumerate(("live", "test"))]
    byok_secret = new_secret("sk-byok-at-rest-")
    module_clusters.secrets.append(byok_secret)  # the teardown looks for it in every log
    created = admin.call(
        "POST",
        f"/v1/workspaces/{ws}/provider-keys",
        json={"provider": "meter", "key": byok_secret},
        expect=201,
    )
    assert byok_secret not in repr(created), created
    store = cluster.store()
    dump = store.dump()

    hash_key = derive_hash_key(
        load_master_key(cluster.data_dir(0), {"ROUTEGATE_MASTER_KEY": master_key})
    )
    rows = {row["id"]: row for row in store.api_key_rows()}
    for key in keys:
        secret = key["key"]
        assert secret not in dump, "a gateway key is stored in plain text"
        row = rows[key["id"]]
        stored = row["key_hash"]
        assert re.fullmatch(r"[0-9a-f]{64}", stored), row
        assert stored != hashlib.sha256(secret.encode()).hexdigest(), "an unkeyed hash"
        assert stored == hash_secret(hash_key, secret), "not the HMAC under the master-derived key"
        if cluster.backend == "sqlite":
            assert row["_column_hash"] == stored
        assert secret[len(key["prefix"].rstrip("…")) :] not in dump

    pkeys = [row for row in store.provider_key_rows() if row["id"] == created["id"]]
    assert len(pkeys) == 1, pkeys
    row = pkeys[0]
    assert byok_secret not in dump, "a BYOK key is stored in plain text"
    assert set(row) >= {"ciphertext", "masked"}, row
    try:
        sealed = base64.b64decode(row["ciphertext"], validate=True)
    except binascii.Error:
        sealed = base64.urlsafe_b64decode(row["ciphertext"] + "==")
    assert len(sealed) >= len(byok_secret) + 16, "too short for AEAD ciphertext with its tag"
    assert byok_secret.encode() not in sealed
    assert byok_secret[8:24].encode() not in sealed
    assert row["masked"] == created["masked"] and "…" in row["masked"], row
    # The same key stored twice never gives the same ciphertext (a fresh nonce each time).
    again = admin.call(
        "POST",
        f"/v1/workspaces/{ws}/provider-keys",
        json={"provider": "meter", "key": byok_secret},
        expect=201,
    )
    twins = {r["id"]: r["ciphertext"] for r in store.provider_key_rows()}
    assert twins[again["id"]] != twins[created["id"]]


def test_inference_isolation(cluster: Cluster) -> None:
    admin = cluster.admin
    ws_a = admin.create_workspace(f"iso-a-{cluster.backend}")
    ws_b = admin.create_workspace(f"iso-b-{cluster.backend}")
    key_a = admin.create_key(ws_a, "a")
    key_b = admin.create_key(ws_b, "b")
    admin_b = admin.create_key(ws_b, "b admin", scopes=["admin"])
    budget_a = admin.create_budget(ws_a, scope_type="workspace", period="daily", limit_usd=0.1)
    admin.add_credits(ws_b, 0.2)
    settle_rules()

    # A's budget (threshold $0.09) stops A at 9 requests; B, prepaid, is not touched by it.
    runs_a = fire(cluster.targets, key_a["key"], meter_body(), 15, concurrency=15)
    runs_b = fire(cluster.targets, key_b["key"], meter_body(), 15, concurrency=15)
    assert_counts(runs_a, {200: 9, 402: 6})
    assert_counts(runs_b, {200: 15})
    for result in runs_a:
        if result.status == 402:
            assert_refusal(result, 402, "budget_exceeded")

    store = cluster.store()
    records_a = store.wait_records(ws_a, 15)
    records_b = store.wait_records(ws_b, 15)
    assert {r["key_id"] for r in records_a} == {key_a["id"]}
    assert {r["key_id"] for r in records_b} == {key_b["id"]}
    ids_a = {r.request_id for r in runs_a}
    ids_b = {r.request_id for r in runs_b}
    assert {r["request_id"] for r in records_a} == ids_a
    assert {r["request_id"] for r in records_b} == ids_b

    usage_a = usage_summary(cluster.targets[-1], key_a["key"])
    usage_b = usage_summary(cluster.targets[-1], key_b["key"])
    assert (usage_a["requests"], round(usage_a["spend_usd"] * MICRO)) == (
        15,
        9 * REQUEST_COST_MICRO,
    )
    assert (usage_b["requests"], round(usage_b["spend_usd"] * MICRO)) == (
        15,
        15 * REQUEST_COST_MICRO,
    )
    assert admin.budget(ws_a, budget_a["id"])["spend_usd"] == 0.09
    billing_b = admin.billing(ws_b)
    assert billing_b["balance_microdollars"] == 200_000 - 15 * REQUEST_COST_MICRO, billing_b
    assert admin.billing(ws_a)["tier"] == "postpaid"

    # Through B's own workspace path, B's admin key finds B's records and none of A's.
    with httpx.Client(
        base_url=cluster.targets[0],
        headers={"Authorization": f"Bearer {admin_b['key']}"},
        timeout=30.0,
        trust_env=False,
    ) as http:
        mine = http.get(f"/v1/workspaces/{ws_b}/usage/{next(iter(ids_b))}")
        assert mine.status_code == 200, mine.text
        for rid in list(ids_a)[:5]:
            theirs = http.get(f"/v1/workspaces/{ws_b}/usage/{rid}")
            assert theirs.status_code == 404, theirs.text
            assert rid not in theirs.text or "No " in theirs.text
        audit = http.get(f"/v1/workspaces/{ws_b}/audit", params={"days": 1})
        assert audit.status_code == 200, audit.text
        assert not any(rid in audit.text for rid in ids_a)
        assert sum(1 for line in audit.text.splitlines() if line.strip()) == 15
        report = http.get(f"/v1/workspaces/{ws_b}/usage", params={"days": 1, "group_by": "key"})
        assert report.status_code == 200 and report.json()["requests"] == 15, report.text
        assert http.get(f"/v1/workspaces/{ws_b}/budgets/{budget_a['id']}").status_code == 404
