"""Record CRUD round trips, identical on both backends: what goes in comes back out, in
creation order, per workspace, and nothing else."""

from __future__ import annotations

import sqlite3

import msgspec
import pytest

from gateway.routing_options import RoutingOptions, Weights
from gateway.store import Store
from store.factories import api_key, budget, provider_key, workspace

DUPLICATE = (ValueError, sqlite3.IntegrityError)


def test_meta_round_trip(store: Store) -> None:
    assert store.get_meta("schema") is None
    store.set_meta("schema", "1")
    store.set_meta("schema", "2")
    assert store.get_meta("schema") == "2"


def test_workspaces_round_trip_in_creation_order(store: Store) -> None:
    made = [workspace(rpm_limit=10 * n or None, max_cost_per_request=0.25) for n in range(5)]
    for w in made:
        store.create_workspace(w)
    assert store.list_workspaces() == made
    assert store.get_workspace(made[2].id) == made[2]
    assert store.get_workspace_by_slug(made[3].slug) == made[3]
    assert store.get_workspace("ws_missing") is None
    assert store.get_workspace_by_slug("missing") is None


def test_duplicate_workspace_slug_is_refused_and_changes_nothing(store: Store) -> None:
    first = workspace(slug="acme")
    store.create_workspace(first)
    with pytest.raises(DUPLICATE):
        store.create_workspace(workspace(slug="acme"))
    assert store.list_workspaces() == [first]
    assert store.get_workspace_by_slug("acme") == first


def test_update_workspace_replaces_the_record_and_keeps_the_slug(store: Store) -> None:
    w = workspace(slug="team")
    store.create_workspace(w)
    changed = msgspec.structs.replace(w, name="Renamed", tpm_limit=5000)
    store.update_workspace(changed)
    assert store.get_workspace(w.id) == changed
    assert store.get_workspace_by_slug("team") == changed
    store.update_workspace(workspace(id="ws_never_created"))
    assert store.get_workspace("ws_never_created") is None
    assert store.list_workspaces() == [changed]


def test_keys_round_trip_by_id_and_hash_within_their_workspace(store: Store) -> None:
    a, b = workspace(), workspace()
    keys_a = [
        api_key(a.id, scopes=("inference", "read"), allowed_models=("gpt-4o",), rpm_limit=60),
        api_key(a.id, mode="test", ip_allowlist=("10.0.0.0/8",), expires_at="2027-01-01"),
    ]
    key_b = api_key(b.id, gateway_wide=True, scopes=("inference", "read", "admin"))
    for key in [*keys_a, key_b]:
        store.create_key(key)
    assert store.list_keys(a.id) == keys_a
    assert store.list_keys(b.id) == [key_b]
    assert store.get_key(a.id, keys_a[1].id) == keys_a[1]
    assert store.get_key(b.id, keys_a[1].id) is None, "another workspace's key id"
    assert store.get_key_by_hash(key_b.key_hash) == key_b
    assert store.get_key_by_hash("0" * 64) is None


def test_revoke_key_is_idempotent_and_scoped(store: Store) -> None:
    w = workspace()
    key = api_key(w.id)
    store.create_key(key)
    assert store.revoke_key("ws_other", key.id) is None
    assert store.get_key(w.id, key.id) == key
    revoked = msgspec.structs.replace(key, status="revoked")
    assert store.revoke_key(w.id, key.id) == revoked
    assert store.revoke_key(w.id, key.id) == revoked
    assert store.get_key_by_hash(key.key_hash) == revoked
    assert store.revoke_key(w.id, "key_missing") is None


def test_update_key_replaces_it_but_never_unrevokes(store: Store) -> None:
    w = workspace()
    key = api_key(w.id)
    store.create_key(key)
    rotated = msgspec.structs.replace(key, expires_at="2026-02-01T00:00:00.000Z", name="old")
    store.update_key(rotated)
    assert store.get_key(w.id, key.id) == rotated
    assert store.get_key_by_hash(key.key_hash) == rotated
    store.revoke_key(w.id, key.id)
    store.update_key(msgspec.structs.replace(rotated, name="renamed"))
    after = store.get_key(w.id, key.id)
    assert after is not None
    assert (after.name, after.status) == ("renamed", "revoked")
    store.update_key(api_key(w.id, id="key_never_created"))
    assert store.get_key(w.id, "key_never_created") is None


def test_routing_defaults_round_trip(store: Store) -> None:
    w = workspace()
    assert store.get_routing_defaults(w.id) == RoutingOptions()
    options = RoutingOptions(
        optimize="cost",
        weights=Weights(cost=0.7, quality=0.3),
        regions=["eu"],
        max_fallback_attempts=2,
        only_byok=True,
    )
    store.set_routing_defaults(w.id, options)
    assert store.get_routing_defaults(w.id) == options
    store.set_routing_defaults(w.id, RoutingOptions())
    assert store.get_routing_defaults(w.id) == RoutingOptions()
    assert store.get_routing_defaults("ws_other") == RoutingOptions()


def test_policies_round_trip_in_name_order(store: Store) -> None:
    w = workspace()
    for name in ["sovereign-eu", "cheap", "Zed", "a_b"]:
        store.put_policy(w.id, name, RoutingOptions(regions=[name]))
    store.put_policy(w.id, "cheap", RoutingOptions(optimize="cheapest"))
    assert list(store.list_policies(w.id)) == ["Zed", "a_b", "cheap", "sovereign-eu"]
    assert store.get_policy(w.id, "cheap") == RoutingOptions(optimize="cheapest")
    assert store.get_policy("ws_other", "cheap") is None
    assert store.delete_policy(w.id, "cheap") is True
    assert store.delete_policy(w.id, "cheap") is False
    assert store.get_policy(w.id, "cheap") is None
    assert store.list_policies("ws_other") == {}


def test_budgets_crud(store: Store) -> None:
    w = workspace()
    made = [
        budget(w.id),
        budget(w.id, scope_type="api_key", scope_id="key_1", period="daily", limit_usd=2.5),
        budget(w.id, scope_type="byok_provider", scope_provider="openai", enforce=False),
    ]
    for b in made:
        store.create_budget(b)
    store.create_budget(budget("ws_other"))
    assert store.list_budgets(w.id) == made
    assert store.get_budget(w.id, made[1].id) == made[1]
    assert store.get_budget("ws_other", made[1].id) is None
    changed = msgspec.structs.replace(made[0], limit_usd=50.0, alert_webhook="https://x.test/h")
    store.update_budget(changed)
    assert store.get_budget(w.id, made[0].id) == changed
    assert store.delete_budget("ws_other", made[2].id) is False
    assert store.delete_budget(w.id, made[2].id) is True
    assert store.delete_budget(w.id, made[2].id) is False
    store.update_budget(made[2])
    assert store.get_budget(w.id, made[2].id) is None, "an update never resurrects a budget"
    assert store.list_budgets(w.id) == [changed, made[1]]


def test_billing_starts_postpaid_and_credits_make_it_prepaid(store: Store) -> None:
    w = workspace()
    empty = store.get_billing(w.id)
    assert (empty.balance_microdollars, empty.reserved_microdollars, empty.tier) == (
        0,
        0,
        "postpaid",
    )
    first = store.add_credits(w.id, 5_000_000)
    assert (first.balance_microdollars, first.tier) == (5_000_000, "prepaid")
    second = store.add_credits(w.id, 250)
    assert second.balance_microdollars == 5_000_250
    assert store.get_billing(w.id) == second
    assert store.get_billing("ws_other").tier == "postpaid"


def test_provider_keys_crud(store: Store) -> None:
    w = workspace()
    made = [
        provider_key(w.id, name="main", is_default=True),
        provider_key(w.id, provider="anthropic", masked="sk-ant…abcd"),
    ]
    for key in made:
        store.create_provider_key(key)
    store.create_provider_key(provider_key("ws_other"))
    assert store.list_provider_keys(w.id) == made
    assert store.get_provider_key(w.id, made[1].id) == made[1]
    assert store.get_provider_key("ws_other", made[1].id) is None
    changed = msgspec.structs.replace(
        made[1], status="invalid", last_validated_at="2026-01-05T11:00:00.000Z"
    )
    store.update_provider_key(changed)
    assert store.get_provider_key(w.id, made[1].id) == changed
    assert store.delete_provider_key("ws_other", made[0].id) is False
    assert store.delete_provider_key(w.id, made[0].id) is True
    assert store.delete_provider_key(w.id, made[0].id) is False
    assert store.list_provider_keys(w.id) == [changed]


def test_ping(store: Store) -> None:
    assert store.ping() is True
