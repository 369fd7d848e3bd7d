"""SqliteStore round-trips: what goes in comes back out, per workspace, and nothing else."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.records import ApiKey, UsageRecord, Workspace
from gateway.store.sqlite import SqliteStore

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
IDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=24)
MONEY = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
COUNTS = st.integers(min_value=0, max_value=10**9)
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
MOMENTS = st.integers(min_value=0, max_value=400 * 86_400_000).map(
    lambda ms: (
        (EPOCH + timedelta(milliseconds=ms))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
)
WORKSPACES = ("ws_a", "ws_b")


def _memory_store() -> SqliteStore:
    return SqliteStore(":memory:")


KEYS = st.builds(
    ApiKey,
    id=IDS.map(lambda s: "key_" + s),
    workspace_id=st.sampled_from(WORKSPACES),
    key_hash=st.text("0123456789abcdef", min_size=64, max_size=64),
    prefix=TEXT,
    name=TEXT,
    mode=st.sampled_from(["live", "test"]),
    scopes=st.lists(
        st.sampled_from(["inference", "read", "admin"]), min_size=1, max_size=3, unique=True
    ).map(tuple),
    created_at=MOMENTS,
    gateway_wide=st.booleans(),
    allowed_models=st.none() | st.lists(TEXT, max_size=3).map(tuple),
    rpm_limit=st.none() | st.integers(min_value=1, max_value=10**6),
    max_cost_per_request=st.none() | MONEY,
    expires_at=st.none() | MOMENTS,
)

USAGE = st.builds(
    UsageRecord,
    request_id=IDS.map(lambda s: "req_" + s),
    created_at=MOMENTS,
    workspace_id=st.sampled_from(WORKSPACES),
    key_id=IDS,
    model_requested=TEXT,
    model_served=st.none() | TEXT,
    provider=st.none() | TEXT,
    region=st.none() | TEXT,
    key_source=st.none() | st.sampled_from(["platform", "byok"]),
    strategy=st.none() | TEXT,
    input_tokens=COUNTS,
    output_tokens=COUNTS,
    cached_tokens=COUNTS,
    reasoning_tokens=COUNTS,
    cost_usd=MONEY,
    baseline_cost_usd=MONEY,
    latency_ms=MONEY,
    ttft_ms=st.none() | MONEY,
    status=st.sampled_from([200, 400, 404, 429, 502]),
    error_code=st.none() | TEXT,
    stream=st.booleans(),
    usage_estimated=st.booleans(),
    fallback_chain=st.none() | TEXT,
    gateway_metadata=st.none() | TEXT,
)


def _unique_keys(keys: list[ApiKey]) -> list[ApiKey]:
    """The table has unique ids and hashes: keep the first key for each of either."""
    seen: set[str] = set()
    kept = []
    for key in keys:
        if key.id not in seen and key.key_hash not in seen:
            seen |= {key.id, key.key_hash}
            kept.append(key)
    return kept


@given(st.lists(st.tuples(IDS, TEXT, IDS, MOMENTS), max_size=8, unique_by=(lambda t: t[0],)))
def test_workspaces_round_trip(rows: list[tuple[str, str, str, str]]) -> None:
    store = _memory_store()
    created = []
    slugs: set[str] = set()
    for ws_id, name, slug, stamp in rows:
        if slug in slugs:
            continue
        slugs.add(slug)
        workspace = Workspace(id=ws_id, name=name, slug=slug, created_at=stamp)
        store.create_workspace(workspace)
        created.append(workspace)
    assert store.list_workspaces() == created
    for workspace in created:
        assert store.get_workspace(workspace.id) == workspace
        assert store.get_workspace_by_slug(workspace.slug) == workspace
    assert store.get_workspace("no-such-workspace-id!") is None


@given(st.lists(KEYS, max_size=8))
def test_keys_round_trip_and_stay_in_their_workspace(keys: list[ApiKey]) -> None:
    store = _memory_store()
    keys = _unique_keys(keys)
    for key in keys:
        store.create_key(key)
    for ws in WORKSPACES:
        assert store.list_keys(ws) == [k for k in keys if k.workspace_id == ws]
    for key in keys:
        other = next(ws for ws in WORKSPACES if ws != key.workspace_id)
        assert store.get_key_by_hash(key.key_hash) == key
        assert store.get_key(key.workspace_id, key.id) == key
        assert store.get_key(other, key.id) is None


@given(st.lists(KEYS, min_size=1, max_size=6), st.data())
def test_revoke_changes_only_the_status_of_one_key(keys: list[ApiKey], data: st.DataObject) -> None:
    store = _memory_store()
    keys = _unique_keys(keys)
    for key in keys:
        store.create_key(key)
    target = data.draw(st.sampled_from(keys))
    other_ws = next(ws for ws in WORKSPACES if ws != target.workspace_id)
    assert store.revoke_key(other_ws, target.id) is None, "revoked across workspaces"
    assert store.get_key(target.workspace_id, target.id) == target

    revoked = store.revoke_key(target.workspace_id, target.id)
    expected = msgspec.structs.replace(target, status="revoked")
    assert revoked == expected
    assert store.get_key_by_hash(target.key_hash) == expected
    assert store.revoke_key(target.workspace_id, target.id) == expected, "not idempotent"
    for key in keys:
        if key.id != target.id:
            assert store.get_key(key.workspace_id, key.id) == key
    assert store.revoke_key(target.workspace_id, "key_unknown!") is None


@settings(max_examples=50)
@given(st.lists(USAGE, max_size=20), MOMENTS, st.sampled_from(WORKSPACES))
def test_usage_lists_the_workspace_since_a_time(
    records: list[UsageRecord], since: str, workspace: str
) -> None:
    store = _memory_store()
    store.insert_usage(records)
    first: dict[str, UsageRecord] = {}
    for record in records:
        first.setdefault(record.request_id, record)
    expected = sorted(
        (r for r in first.values() if r.workspace_id == workspace and r.created_at >= since),
        key=lambda r: r.created_at,
    )
    listed = store.list_usage(workspace, since)
    assert [r.created_at for r in listed] == [r.created_at for r in expected]
    assert sorted(listed, key=lambda r: r.request_id) == sorted(
        expected, key=lambda r: r.request_id
    )


@given(USAGE, USAGE)
def test_usage_insert_is_idempotent_per_request_id(first: UsageRecord, second: UsageRecord) -> None:
    """The writer may retry a batch: a request id already stored is kept, never doubled."""
    store = _memory_store()
    duplicate = msgspec.structs.replace(second, request_id=first.request_id)
    store.insert_usage([first])
    store.insert_usage([first, duplicate])
    store.insert_usage([duplicate])
    listed = store.list_usage(first.workspace_id, "")
    assert listed == [first]


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "routegate.db"
    workspace = Workspace(id="ws_1", name="One", slug="one", created_at="2024-01-01T00:00:00.000Z")
    key = ApiKey(
        id="key_1",
        workspace_id="ws_1",
        key_hash="f" * 64,
        prefix="rg_live_abcd…",
        name="k",
        mode="live",
        scopes=("inference",),
        created_at="2024-01-01T00:00:00.000Z",
    )
    store = SqliteStore(path)
    store.create_workspace(workspace)
    store.create_key(key)
    store.set_meta("bootstrap_admin_key", "key_1")
    revoked = store.revoke_key("ws_1", "key_1")
    store.close()

    reopened = SqliteStore(path)
    try:
        assert reopened.get_workspace("ws_1") == workspace
        assert reopened.get_key("ws_1", "key_1") == revoked
        assert revoked is not None and revoked.status == "revoked"
        assert reopened.get_meta("bootstrap_admin_key") == "key_1"
        assert reopened.ping()
    finally:
        reopened.close()


def test_an_embedded_gateway_never_loads_the_redis_client(tmp_path: Path) -> None:
    """The Redis client costs ~15 MiB per process; a gateway on SQLite (the default) must not
    import it: not the CLI, not the app, not opening the store."""
    script = (
        "import sys, pathlib\n"
        "import gateway.cli, gateway.edge.rsgi\n"
        "from gateway.store import open_store\n"
        f"open_store('sqlite:///store.db', pathlib.Path({str(tmp_path)!r})).close()\n"
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
