"""Per-workspace routing settings in the store, and the per-process cache in front of them."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.routing.workspace import WorkspaceRoutingCache
from gateway.routing_options import RoutingOptions, Weights
from gateway.store.sqlite import SqliteStore

WORKSPACES = ("ws_a", "ws_b")
NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=64)
FINITE = {"allow_nan": False, "allow_infinity": False}
NON_NEGATIVE = st.floats(min_value=0, max_value=1e9, **FINITE)
POSITIVE = st.floats(min_value=1e-6, max_value=1e9, **FINITE)
FRACTION = st.floats(min_value=0, max_value=1, **FINITE)
WORDS = st.lists(st.text(min_size=1, max_size=20), max_size=4)


def _maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


WEIGHTS = st.builds(
    Weights,
    cost=NON_NEGATIVE,
    ttft=NON_NEGATIVE,
    throughput=NON_NEGATIVE,
    reliability=NON_NEGATIVE,
    quality=NON_NEGATIVE,
)
OPTIONS = st.builds(
    RoutingOptions,
    optimize=_maybe(
        st.sampled_from(["cost", "cheapest", "speed", "ttft", "throughput", "balanced", "best"])
    ),
    weights=_maybe(WEIGHTS),
    max_ttft_ms=_maybe(POSITIVE),
    min_throughput_tps=_maybe(POSITIVE),
    min_success_rate=_maybe(FRACTION),
    max_cost_per_1m=_maybe(POSITIVE),
    providers=_maybe(WORDS),
    exclude_providers=_maybe(WORDS),
    regions=_maybe(WORDS),
    data_policy=_maybe(st.sampled_from(["none", "no_training", "zdr"])),
    only_byok=_maybe(st.booleans()),
    only_platform=_maybe(st.booleans()),
    allow_fallbacks=_maybe(st.booleans()),
    max_fallback_attempts=_maybe(st.integers(min_value=0, max_value=10)),
    mode=_maybe(st.sampled_from(["pool", "fallback"])),
    quality_floor=_maybe(FRACTION),
)


@given(OPTIONS, OPTIONS)
def test_routing_defaults_round_trip_per_workspace(first: RoutingOptions, second: RoutingOptions):
    store = SqliteStore(":memory:")
    assert store.get_routing_defaults("ws_a") == RoutingOptions(), "unset must read as empty"
    store.set_routing_defaults("ws_a", first)
    assert store.get_routing_defaults("ws_a") == first
    assert store.get_routing_defaults("ws_b") == RoutingOptions()
    store.set_routing_defaults("ws_a", second)
    assert store.get_routing_defaults("ws_a") == second


@given(st.lists(st.tuples(st.sampled_from(WORKSPACES), NAMES, OPTIONS), max_size=10))
def test_policies_round_trip_and_stay_in_their_workspace(
    puts: list[tuple[str, str, RoutingOptions]],
):
    store = SqliteStore(":memory:")
    expected: dict[str, dict[str, RoutingOptions]] = {ws: {} for ws in WORKSPACES}
    for ws, name, options in puts:
        store.put_policy(ws, name, options)  # a second put of a name replaces the first
        expected[ws][name] = options
    for ws in WORKSPACES:
        listed = store.list_policies(ws)
        assert listed == expected[ws]
        assert list(listed) == sorted(listed), "listing is in name order"
        other = next(w for w in WORKSPACES if w != ws)
        for name, options in expected[ws].items():
            assert store.get_policy(ws, name) == options
            if name not in expected[other]:
                assert store.get_policy(other, name) is None


@given(st.lists(st.tuples(NAMES, OPTIONS), min_size=1, max_size=6, unique_by=lambda t: t[0]))
def test_delete_policy_removes_only_that_one(policies: list[tuple[str, RoutingOptions]]):
    store = SqliteStore(":memory:")
    for name, options in policies:
        store.put_policy("ws_a", name, options)
        store.put_policy("ws_b", name, options)
    name = policies[0][0]
    assert store.delete_policy("ws_a", name) is True
    assert store.delete_policy("ws_a", name) is False
    assert store.get_policy("ws_a", name) is None
    assert store.get_policy("ws_b", name) == policies[0][1]
    assert store.list_policies("ws_a") == dict(sorted(policies[1:]))
    assert store.delete_policy("ws_a", "never-there") is False


def test_routing_settings_survive_reopening(tmp_path: Path):
    path = tmp_path / "routegate.db"
    defaults = RoutingOptions(optimize="cost", weights=Weights(cost=1.0), data_policy="zdr")
    policy = RoutingOptions(providers=["openai"], max_fallback_attempts=0)
    store = SqliteStore(path)
    store.set_routing_defaults("ws_a", defaults)
    store.put_policy("ws_a", "eu", policy)
    store.close()
    reopened = SqliteStore(path)
    try:
        assert reopened.get_routing_defaults("ws_a") == defaults
        assert reopened.list_policies("ws_a") == {"eu": policy}
    finally:
        reopened.close()


class _CountingStore(SqliteStore):
    def __init__(self) -> None:
        super().__init__(":memory:")
        self.reads = 0

    def get_routing_defaults(self, workspace_id: str) -> RoutingOptions:
        self.reads += 1
        return super().get_routing_defaults(workspace_id)


def test_cache_reads_the_store_once_per_ttl_and_after_invalidate():
    store = _CountingStore()
    cache = WorkspaceRoutingCache(store, ttl_s=60.0)
    store.set_routing_defaults("ws_a", RoutingOptions(optimize="cost"))
    assert cache.get("ws_a").defaults.optimize == "cost"
    store.set_routing_defaults("ws_a", RoutingOptions(optimize="speed"))
    store.put_policy("ws_a", "p", RoutingOptions(mode="pool"))
    for _ in range(5):
        assert cache.get("ws_a").defaults.optimize == "cost", "served from the cache"
    assert store.reads == 1
    cache.invalidate("ws_a")
    fresh = cache.get("ws_a")
    assert fresh.defaults.optimize == "speed" and set(fresh.policies) == {"p"}
    assert store.reads == 2


def test_cache_expires_after_its_ttl():
    store = _CountingStore()
    cache = WorkspaceRoutingCache(store, ttl_s=0.0)
    cache.get("ws_a")
    store.set_routing_defaults("ws_a", RoutingOptions(data_policy="zdr"))
    assert cache.get("ws_a").defaults.data_policy == "zdr"
    assert store.reads == 2
