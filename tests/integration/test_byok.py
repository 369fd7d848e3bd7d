"""BYOK: workspaces' own provider keys, end to end (SPEC §3 step 3, §4, §6, §8).

One gateway for the module in front of two key-checking upstreams (real HTTP servers on
loopback that answer only the keys they know, and quote any other key in their 401, as
OpenAI does):

- ``byok-a`` has a platform key in the environment and offers gpt-4o;
- ``byok-b`` has no platform key at all and offers gpt-4o-mini, so only a workspace that
  brought its own key can use it.

Each test makes its own workspace (and its own provider key values), so tests do not depend on
each other's order. At the end, no provider key may appear in the gateway's output.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.checks import assert_error, chat_body, read_sse, sse_json_events
from support.gateway import GatewayProcess, gateway_config, new_secret, offer, openai_provider
from support.keyed_upstream import KeyedUpstream
from support.upstream import Status

PLATFORM_A = new_secret("sk-platform-a-")
ALL_SECRETS: list[str] = [PLATFORM_A]


def _secret(label: str) -> str:
    """A fresh provider key, remembered for the final no-secrets-in-logs check."""
    value = new_secret(f"sk-byok-{label}-")
    ALL_SECRETS.append(value)
    return value


@pytest.fixture(scope="module")
def up_a() -> Iterator[KeyedUpstream]:
    with KeyedUpstream("byok-a", {PLATFORM_A: None}) as up:
        yield up


@pytest.fixture(scope="module")
def up_b() -> Iterator[KeyedUpstream]:
    with KeyedUpstream("byok-b") as up:
        yield up


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    up_a: KeyedUpstream,
    up_b: KeyedUpstream,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    config = gateway_config(
        [
            openai_provider("byok-a", up_a.base_url, "BYOK_A_PLATFORM_KEY"),
            openai_provider("byok-b", up_b.base_url, "BYOK_B_PLATFORM_KEY"),
        ],
        [
            offer("gpt-4o", "byok-a", "a-gpt-4o"),
            offer("gpt-4o-mini", "byok-b", "b-gpt-4o-mini", price_in=0.15, price_out=0.6),
        ],
    )
    config["providers"][0]["aliases"] = ["provider-a"]
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("gw-byok"),
        config=config,
        env={"BYOK_A_PLATFORM_KEY": PLATFORM_A},  # byok-b: no platform key
        admin_key=admin_key,
        name="gw-byok",
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
    gateway.assert_no_secrets(*ALL_SECRETS, admin_key)
    assert "Traceback" not in gateway.log_text(), gateway.log_tail(80)


@dataclass
class Tenant:
    """A workspace of its own and a key of it that may both call models and manage it."""

    gw: GatewayProcess
    id: str
    key: str

    def http(self) -> httpx.Client:
        return self.gw.http(self.key, timeout=30)

    def path(self, suffix: str = "") -> str:
        return f"/v1/workspaces/{self.id}/provider-keys{suffix}"

    def add_key(self, provider: str, key: str, **extra: Any) -> dict[str, Any]:
        with self.http() as http:
            resp = http.post(self.path(), json={"provider": provider, "key": key, **extra})
        assert resp.status_code == 201, resp.text
        created = resp.json()
        assert isinstance(created, dict)
        return created

    def chat(self, model: str = "gpt-4o", **body: Any) -> httpx.Response:
        with self.http() as http:
            return http.post("/v1/chat/completions", json=chat_body(model=model, **body))


@pytest.fixture
def tenant(gw: GatewayProcess, admin_key: str, request: pytest.FixtureRequest) -> Tenant:
    return _tenant(gw, admin_key, request.node.name)


def _tenant(gw: GatewayProcess, admin_key: str, name: str) -> Tenant:
    with gw.http(admin_key) as http:
        resp = http.post("/v1/workspaces", json={"name": f"byok {name}"[:200]})
        assert resp.status_code == 201, resp.text
        workspace_id = resp.json()["id"]
    key = gw.create_key("tenant", scopes=["inference", "admin"], workspace_id=workspace_id)
    return Tenant(gw, workspace_id, key["key"])


def _served(resp: httpx.Response, provider: str, key_source: str) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    meta = body["routing_metadata"]
    assert (meta["provider"], meta["key_source"]) == (provider, key_source), meta
    assert resp.headers["x-provider-used"] == provider
    assert resp.headers["x-api-key-source"] == key_source
    assert isinstance(body, dict)
    return body


def _usage_record(tenant: Tenant, request_id: str) -> dict[str, Any]:
    """The request's usage record (written off the hot path, so wait for it briefly)."""
    deadline = time.monotonic() + 10
    with tenant.http() as http:
        while True:
            resp = http.get(f"/v1/workspaces/{tenant.id}/usage/{request_id}")
            if resp.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert resp.status_code == 200, resp.text
    record = resp.json()
    assert isinstance(record, dict)
    return record


# --- management -------------------------------------------------------------------------


def test_create_list_set_default_delete(tenant: Tenant) -> None:
    first, second = _secret("crud-1"), _secret("crud-2")
    created = tenant.add_key("Provider-A", first, name="primary")  # an alias, any case
    assert set(created) == {
        "id",
        "object",
        "provider",
        "name",
        "masked",
        "is_default",
        "status",
        "created_at",
        "last_validated_at",
    }
    assert created["object"] == "provider_key" and created["provider"] == "byok-a"
    assert created["name"] == "primary" and created["status"] == "active"
    assert created["is_default"] is True  # the provider's first key
    assert created["last_validated_at"] is None
    assert created["masked"] == f"sk-byok-{first[8:12]}…{first[-4:]}"
    spare = tenant.add_key("byok-a", second)
    assert spare["is_default"] is False and spare["name"] is None

    with tenant.http() as http:
        listed = http.get(tenant.path())
        assert listed.status_code == 200
        assert [k["id"] for k in listed.json()["data"]] == [created["id"], spare["id"]]
        assert first not in listed.text and second not in listed.text
        assert "ciphertext" not in listed.text

        moved = http.post(tenant.path(f"/{spare['id']}/set-default"))
        assert moved.status_code == 200, moved.text
        assert moved.json()["is_default"] is True
        flags = {k["id"]: k["is_default"] for k in http.get(tenant.path()).json()["data"]}
        assert flags == {created["id"]: False, spare["id"]: True}

        deleted = http.delete(tenant.path(f"/{created['id']}"))
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"id": created["id"], "object": "provider_key", "deleted": True}
        assert [k["id"] for k in http.get(tenant.path()).json()["data"]] == [spare["id"]]
        assert_error(http.delete(tenant.path(f"/{created['id']}")), 404, "not_found")
        assert_error(http.post(tenant.path("/pk_nope/set-default")), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"provider": "nope", "key": "sk-whatever-long-enough"}, "provider"),
        ({"provider": "mock", "key": "sk-whatever-long-enough"}, "provider"),
        ({"provider": "byok-a"}, "key"),
        ({"provider": "byok-a", "key": ""}, "key"),
        ({"provider": "byok-a", "key": "sk-with space-inside"}, "key"),
        ({"provider": "byok-a", "key": "sk-line\nbreak"}, "key"),
        ({"key": "sk-whatever-long-enough"}, "provider"),
        ({"provider": "byok-a", "key": "sk-x", "extra": 1}, "extra"),
    ],
)
def test_create_is_validated(tenant: Tenant, body: dict[str, Any], param: str) -> None:
    with tenant.http() as http:
        resp = http.post(tenant.path(), json=body)
    err = assert_error(resp, 400, resp.json()["error"]["code"], param=param)
    assert err["code"] in {"invalid_request", "missing_required_parameter"}
    if body.get("key"):
        assert body["key"] not in resp.text


def test_another_workspace_sees_nothing(gw: GatewayProcess, admin_key: str) -> None:
    owner, other = _tenant(gw, admin_key, "owner"), _tenant(gw, admin_key, "other")
    key = owner.add_key("byok-a", _secret("isolation"))
    with other.http() as http:
        assert_error(http.get(owner.path()), 404, "not_found")
        assert_error(
            http.post(owner.path(), json={"provider": "byok-a", "key": "sk-x"}), 404, "not_found"
        )
        for method, suffix in (
            ("DELETE", f"/{key['id']}"),
            ("POST", f"/{key['id']}/validate"),
            ("POST", f"/{key['id']}/set-default"),
        ):
            # Through the owner's path and through its own: 404 either way.
            assert_error(http.request(method, owner.path(suffix)), 404, "not_found")
            assert_error(http.request(method, other.path(suffix)), 404, "not_found")
        assert http.get(other.path()).json()["data"] == []
    with owner.http() as http:
        assert [k["id"] for k in http.get(owner.path()).json()["data"]] == [key["id"]]


def test_validate_marks_the_key_and_only_active_keys_serve(
    tenant: Tenant, up_a: KeyedUpstream
) -> None:
    good, bad = _secret("valid"), _secret("revoked")
    up_a.set_key(good)
    checked = tenant.add_key("byok-a", good)
    rejected = tenant.add_key("byok-a", bad)  # upstream does not know it
    with tenant.http() as http:
        ok = http.post(tenant.path(f"/{checked['id']}/validate"))
        assert ok.status_code == 200, ok.text
        assert ok.json()["valid"] is True and ok.json()["status"] == "active"
        assert ok.json()["checked_at"]
        no = http.post(tenant.path(f"/{rejected['id']}/validate"))
        assert no.status_code == 200, no.text
        assert (no.json()["valid"], no.json()["status"]) == (False, "invalid")
        assert bad not in no.text
        listed = {k["id"]: k for k in http.get(tenant.path()).json()["data"]}
        assert listed[rejected["id"]]["status"] == "invalid"
        assert listed[rejected["id"]]["last_validated_at"] == no.json()["checked_at"]
        models_calls = [r for r in up_a.requests if r.path.endswith("/models")]
        assert {r.header("authorization") for r in models_calls[-2:]} == {
            f"Bearer {good}",
            f"Bearer {bad}",
        }
        # The invalid key is the default; being invalid, it never serves: the spare does.
        http.post(tenant.path(f"/{rejected['id']}/set-default"))
    _served(tenant.chat(), "byok-a", "byok")
    assert up_a.last_chat().header("authorization") == f"Bearer {good}"


# --- routing and dispatch ---------------------------------------------------------------


def test_own_key_serves_its_workspace_and_others_use_the_platform_key(
    gw: GatewayProcess, admin_key: str, up_a: KeyedUpstream
) -> None:
    mine, theirs = _tenant(gw, admin_key, "byok-user"), _tenant(gw, admin_key, "platform-user")
    own = _secret("serving")
    up_a.set_key(own)
    mine.add_key("byok-a", own)

    resp = mine.chat()
    body = _served(resp, "byok-a", "byok")
    assert up_a.last_chat().header("authorization") == f"Bearer {own}"
    assert body["routing_metadata"]["candidates_viable"] == 2  # BYOK row, then its platform twin
    assert resp.headers["x-fallback-used"] == "false"
    assert _usage_record(mine, resp.headers["x-request-id"])["key_source"] == "byok"

    resp = theirs.chat()
    _served(resp, "byok-a", "platform")
    assert up_a.last_chat().header("authorization") == f"Bearer {PLATFORM_A}"
    assert resp.json()["routing_metadata"]["candidates_viable"] == 1
    assert _usage_record(theirs, resp.headers["x-request-id"])["key_source"] == "platform"

    # Streaming goes the same way, with the same key.
    with (
        mine.http() as http,
        http.stream(
            "POST", "/v1/chat/completions", json=chat_body(model="gpt-4o", stream=True)
        ) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["x-api-key-source"] == "byok"
        events = sse_json_events(read_sse(stream))
    assert events[-1]["routing_metadata"]["key_source"] == "byok"
    assert up_a.last_chat().header("authorization") == f"Bearer {own}"


def test_a_provider_without_platform_key_serves_only_workspaces_with_their_own(
    gw: GatewayProcess, admin_key: str, up_b: KeyedUpstream
) -> None:
    mine, theirs = _tenant(gw, admin_key, "b-owner"), _tenant(gw, admin_key, "b-stranger")
    own = _secret("only-b")
    up_b.set_key(own)
    mine.add_key("byok-b", own)
    _served(mine.chat("gpt-4o-mini"), "byok-b", "byok")
    assert up_b.last_chat().header("authorization") == f"Bearer {own}"
    assert up_b.last_chat().json["model"] == "b-gpt-4o-mini"
    assert_error(theirs.chat("gpt-4o-mini"), 409, "policy_conflict")
    with mine.http() as http:
        listed = {m["id"] for m in http.get("/v1/models").json()["data"]}
    with theirs.http() as http:
        elsewhere = {m["id"] for m in http.get("/v1/models").json()["data"]}
    assert "gpt-4o-mini" in listed and "gpt-4o-mini" not in elsewhere


def test_rejected_own_key_falls_back_to_the_platform_twin(
    tenant: Tenant, up_a: KeyedUpstream
) -> None:
    own = _secret("rejected-with-twin")
    up_a.set_key(own, Status(401, message=f"Incorrect API key provided: {own}"))
    tenant.add_key("byok-a", own)
    resp = tenant.chat()
    body = _served(resp, "byok-a", "platform")
    assert [r for r in up_a.keys_seen()[-2:]] == [own, PLATFORM_A]
    chain = body["routing_metadata"]["fallback_chain"]
    assert [(a["key_source"], a["status"], a["reason"]) for a in chain] == [
        ("byok", "failed", "auth_error"),
        ("platform", "success", None),
    ]
    assert own not in resp.text
    record = _usage_record(tenant, resp.headers["x-request-id"])
    assert record["key_source"] == "platform"
    assert own not in str(record)


def test_rejected_own_key_without_a_twin_is_provider_auth_error(
    tenant: Tenant, up_b: KeyedUpstream
) -> None:
    own = _secret("rejected-alone")
    up_b.set_key(own, Status(403, message=f"Key {own} is not allowed to use this model"))
    tenant.add_key("byok-b", own)
    resp = tenant.chat("gpt-4o-mini")
    assert_error(resp, 401, "provider_auth_error", secrets=(own,))
    assert resp.headers["x-error-provider"] == "byok-b"
    assert up_b.keys_seen()[-1] == own
    record = _usage_record(tenant, resp.headers["x-request-id"])
    assert record["error_code"] == "provider_auth_error"


def test_rate_limited_own_key_falls_back_to_the_platform_key(
    tenant: Tenant, up_a: KeyedUpstream
) -> None:
    own = _secret("rate-limited")
    up_a.set_key(own, Status(429, headers=(("retry-after", "30"),)))
    tenant.add_key("byok-a", own)
    resp = tenant.chat()
    body = _served(resp, "byok-a", "platform")
    assert up_a.keys_seen()[-2:] == [own, PLATFORM_A]
    chain = body["routing_metadata"]["fallback_chain"]
    assert [(a["key_source"], a["reason"]) for a in chain] == [
        ("byok", "rate_limited"),
        ("platform", None),
    ]
    # While the workspace's key cools, the platform key serves it directly...
    before = len(up_a.chat_requests())
    resp = tenant.chat()
    _served(resp, "byok-a", "platform")
    assert "fallback_chain" not in resp.json()["routing_metadata"]
    assert up_a.keys_seen()[before:] == [PLATFORM_A]
    # ...and a request that insists on the workspace's key is told to wait.
    err = tenant.chat(routing={"only_byok": True})
    assert_error(err, 429, "rate_limit_exceeded", secrets=(own,))
    assert int(err.headers["retry-after"]) >= 1


def test_a_short_retry_after_on_the_own_key_is_waited_on_the_own_key(
    tenant: Tenant, up_a: KeyedUpstream
) -> None:
    """A 429 to the workspace's key with ``Retry-After: 1`` (within ``retry_after_max_s``) is
    retried in place, with the same workspace key, after that second (docs/behaviour.md,
    "Failover"): not moved to the platform key."""
    own = _secret("briefly-limited")
    up_a.set_key(own, Status(429, headers=(("retry-after", "1"),)))
    tenant.add_key("byok-a", own)
    before = len(up_a.chat_requests())

    def heal() -> None:  # the key serves again once it has been told to wait
        deadline = time.monotonic() + 10
        while len(up_a.chat_requests()) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        up_a.set_key(own)

    healer = threading.Thread(target=heal)
    healer.start()
    resp = tenant.chat()
    healer.join()
    body = _served(resp, "byok-a", "byok")
    assert up_a.keys_seen()[before:] == [own, own]
    first, second = (r.received_at for r in up_a.chat_requests()[before:])
    assert 1.0 <= second - first < 2.0, f"retried after {second - first:.2f} s"
    chain = body["routing_metadata"]["fallback_chain"]
    assert [(a["key_source"], a["reason"], a["retry"]) for a in chain] == [
        ("byok", "rate_limited", False),
        ("byok", None, True),
    ]


def test_only_byok_without_a_key_is_a_policy_conflict(tenant: Tenant) -> None:
    err = assert_error(tenant.chat(routing={"only_byok": True}), 409, "policy_conflict")
    assert "key_source" in err["message"] or "provider" in err["message"]
    _served(tenant.chat(routing={"only_platform": True}), "byok-a", "platform")


def test_only_platform_ignores_the_workspace_key(tenant: Tenant, up_a: KeyedUpstream) -> None:
    own = _secret("ignored")
    up_a.set_key(own)
    tenant.add_key("byok-a", own)
    _served(tenant.chat(routing={"only_platform": True}), "byok-a", "platform")
    _served(tenant.chat(routing={"only_byok": True}), "byok-a", "byok")
    _served(tenant.chat(routing={"exclude_providers": ["byok-b"]}), "byok-a", "byok")
    assert_error(tenant.chat(routing={"providers": ["byok-b"]}), 409, "policy_conflict")


# --- at rest ----------------------------------------------------------------------------


def test_the_database_holds_ciphertext_not_the_key(gw: GatewayProcess, tenant: Tenant) -> None:
    own = _secret("at-rest")
    created = tenant.add_key("byok-a", own)
    files = sorted(Path(gw.data_dir).rglob("*.db"))
    assert files, "no SQLite file in the gateway's data directory"
    with sqlite3.connect(f"file:{files[0]}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT workspace_id, provider, data FROM provider_keys WHERE id = ?",
            (created["id"],),
        ).fetchall()
    assert len(rows) == 1
    workspace_id, provider, data = rows[0]
    assert (workspace_id, provider) == (tenant.id, "byok-a")
    text = data.decode() if isinstance(data, bytes) else str(data)
    assert '"ciphertext"' in text and own not in text
    for path in Path(gw.data_dir).rglob("*"):
        if path.is_file() and "logs" not in path.parts:
            assert own.encode() not in path.read_bytes(), path


def test_a_key_that_does_not_decrypt_is_skipped_for_the_platform_key(
    gw: GatewayProcess, admin_key: str, up_a: KeyedUpstream
) -> None:
    """A ciphertext moved to another workspace's row (AEAD-bound to its own workspace) is
    never used: the platform key serves, and the log names the key id, not the key."""
    victim, thief = _tenant(gw, admin_key, "victim"), _tenant(gw, admin_key, "thief")
    stolen, decoy = _secret("stolen"), _secret("decoy")
    up_a.set_key(stolen)
    up_a.set_key(decoy)
    source = victim.add_key("byok-a", stolen)
    target = thief.add_key("byok-a", decoy)
    database = sorted(Path(gw.data_dir).rglob("*.db"))[0]
    with sqlite3.connect(database) as db:
        (data,) = db.execute(
            "SELECT data FROM provider_keys WHERE id = ?", (source["id"],)
        ).fetchone()
        ciphertext = json.loads(data)["ciphertext"]
        (data,) = db.execute(
            "SELECT data FROM provider_keys WHERE id = ?", (target["id"],)
        ).fetchone()
        record = json.loads(data)
        record["ciphertext"] = ciphertext
        db.execute(
            "UPDATE provider_keys SET data = ? WHERE id = ?",
            (json.dumps(record).encode(), target["id"]),
        )
    time.sleep(1.2)  # the gateway's cached keys of the workspace expire
    _served(thief.chat(), "byok-a", "platform")
    assert up_a.last_chat().header("authorization") == f"Bearer {PLATFORM_A}"
    deadline = time.monotonic() + 5
    while "byok_decrypt_failed" not in gw.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    logged = [line for line in gw.log_text().splitlines() if "byok_decrypt_failed" in line]
    assert logged and target["id"] in logged[-1] and thief.id in logged[-1]
    _served(victim.chat(), "byok-a", "byok")  # the owner's row is untouched
    assert up_a.last_chat().header("authorization") == f"Bearer {stolen}"
