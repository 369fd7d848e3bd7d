"""Usage records: inserted once per request id, listed by ``created_at`` like an index scan."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store import Store
from gateway.store.redis import RedisStore
from store.factories import new_id, usage


def test_insert_then_get_and_list(store: Store) -> None:
    ws = new_id("ws")
    records = [
        usage(ws, created_at="2026-01-05T10:00:00.000Z", cost_usd=0.001234, cost_microdollars=1234),
        usage(ws, created_at="2026-01-05T09:00:00.000Z", status=502, error_code="upstream_error"),
        usage(ws, created_at="2026-01-06T00:00:00.000Z", ttft_ms=12.5, fallback_chain="a>b"),
    ]
    store.insert_usage(records)
    store.insert_usage([usage("ws_other", created_at="2026-01-05T10:00:00.000Z")])
    assert store.get_usage(ws, records[1].request_id) == records[1]
    assert store.get_usage("ws_other", records[1].request_id) is None
    assert store.get_usage(ws, "req_missing") is None
    assert store.list_usage(ws, "2026-01-01") == [records[1], records[0], records[2]]
    assert store.list_usage(ws, "2026-01-05T10:00:00.000Z") == [records[0], records[2]]
    assert store.list_usage(ws, "2026-01-06T00:00:00.001Z") == []


def test_insert_is_idempotent_on_request_id(store: Store) -> None:
    ws = new_id("ws")
    first = usage(ws, "req_once", cost_usd=1.0)
    store.insert_usage([first])
    store.insert_usage([usage(ws, "req_once", cost_usd=2.0), first])
    assert store.list_usage(ws, "") == [first]


def test_equal_times_list_in_insertion_order(store: Store) -> None:
    ws = new_id("ws")
    records = [usage(ws, f"req_{name}") for name in ["m", "a", "z", "b"]]
    for record in records:
        store.insert_usage([record])
    assert store.list_usage(ws, "") == records


MOMENTS = st.builds(
    "2026-01-{:02d}T{:02d}:{:02d}:00.{:03d}Z".format,
    st.integers(1, 3),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 999),
)


def test_list_since_matches_a_plain_filter(store: Store) -> None:
    """Any records, any ``since``: exactly those at or after it, sorted stably by time."""
    examples = 25 if isinstance(store, RedisStore) else 60

    @settings(max_examples=examples, deadline=None)
    @given(times=st.lists(MOMENTS, max_size=25), since=MOMENTS | st.just(""))
    def check(times: list[str], since: str) -> None:
        ws = new_id("ws")
        records = [usage(ws, created_at=t) for t in times]
        store.insert_usage(records)
        expected = sorted((r for r in records if r.created_at >= since), key=lambda r: r.created_at)
        assert store.list_usage(ws, since) == expected

    check()
