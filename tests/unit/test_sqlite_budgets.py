"""SqliteStore budgets and in-place updates: per workspace, round-trips, revocation is final."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from gateway.store.records import ApiKey, Budget, Workspace
from gateway.store.sqlite import SqliteStore

WORKSPACES = ("ws_a", "ws_b")
IDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=16)
BUDGETS = st.builds(
    Budget,
    id=IDS.map(lambda s: "bud_" + s),
    workspace_id=st.sampled_from(WORKSPACES),
    scope_type=st.sampled_from(["workspace", "api_key", "byok_provider"]),
    period=st.sampled_from(["daily", "weekly", "monthly"]),
    limit_usd=st.floats(min_value=0.01, max_value=1e9, allow_nan=False),
    created_at=st.just("2026-01-01T00:00:00.000Z"),
    scope_id=st.none() | IDS,
    scope_provider=st.none() | IDS,
    enforce=st.booleans(),
    include_byok=st.booleans(),
    alert_webhook=st.none() | st.just("https://example.com/hook"),
)


@given(st.lists(BUDGETS, max_size=12, unique_by=lambda b: b.id))
def test_budgets_round_trip_per_workspace_in_creation_order(budgets):
    store = SqliteStore(":memory:")
    for budget in budgets:
        store.create_budget(budget)
    for workspace in WORKSPACES:
        mine = [b for b in budgets if b.workspace_id == workspace]
        assert store.list_budgets(workspace) == mine
        for budget in budgets:
            expected = budget if budget.workspace_id == workspace else None
            assert store.get_budget(workspace, budget.id) == expected


@given(st.lists(BUDGETS, min_size=1, max_size=8, unique_by=lambda b: b.id), st.data())
def test_update_and_delete_touch_only_the_owning_workspace(budgets, data):
    store = SqliteStore(":memory:")
    for budget in budgets:
        store.create_budget(budget)
    target = data.draw(st.sampled_from(budgets))
    other = next(w for w in WORKSPACES if w != target.workspace_id)
    store.update_budget(msgspec.structs.replace(target, workspace_id=other, limit_usd=1.0))
    assert store.get_budget(target.workspace_id, target.id) == target, "moved across workspaces"
    store.update_budget(msgspec.structs.replace(target, limit_usd=2.5))
    assert store.get_budget(target.workspace_id, target.id).limit_usd == 2.5
    assert store.delete_budget(other, target.id) is False
    assert store.delete_budget(target.workspace_id, target.id) is True
    assert store.delete_budget(target.workspace_id, target.id) is False
    assert store.get_budget(target.workspace_id, target.id) is None
    assert (
        len(store.list_budgets(WORKSPACES[0]) + store.list_budgets(WORKSPACES[1]))
        == len(budgets) - 1
    )


def _key(**changes: object) -> ApiKey:
    key = ApiKey(
        id="key_1",
        workspace_id="ws_a",
        key_hash="a" * 64,
        prefix="rg_live_abcd…",
        name="k",
        mode="live",
        scopes=("inference",),
        created_at="2026-01-01T00:00:00.000Z",
    )
    return msgspec.structs.replace(key, **changes)


def test_update_key_replaces_the_record_but_never_un_revokes():
    store = SqliteStore(":memory:")
    store.create_key(_key())
    store.update_key(_key(expires_at="2030-01-01T00:00:00.000Z"))
    assert store.get_key("ws_a", "key_1").expires_at == "2030-01-01T00:00:00.000Z"
    store.revoke_key("ws_a", "key_1")
    store.update_key(_key(expires_at="2031-01-01T00:00:00.000Z"))  # a stale copy, active
    stored = store.get_key("ws_a", "key_1")
    assert stored.status == "revoked" and stored.expires_at == "2031-01-01T00:00:00.000Z"
    store.update_key(_key(workspace_id="ws_b", name="moved"))  # not that workspace's key
    assert store.get_key("ws_a", "key_1").name == "k"
    assert store.get_key_by_hash("a" * 64) == stored


def test_update_workspace_keeps_the_slug_lookup():
    store = SqliteStore(":memory:")
    workspace = Workspace(id="ws_a", name="A", slug="a", created_at="2026-01-01T00:00:00.000Z")
    store.create_workspace(workspace)
    updated = msgspec.structs.replace(workspace, name="A2", rpm_limit=10, tpm_limit=None)
    store.update_workspace(updated)
    assert store.get_workspace("ws_a") == updated
    assert store.get_workspace_by_slug("a") == updated
    assert store.list_workspaces() == [updated]
