"""The management usage reports as pure folds: group-by sums, windows and percentiles."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from gateway.api.usage_reports import (
    GROUP_BYS,
    fold,
    group_of,
    latency,
    percentile,
    window_start,
)
from gateway.store.records import UsageRecord

EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
MOMENTS = st.integers(min_value=0, max_value=800 * 86_400_000).map(
    lambda ms: EPOCH + timedelta(milliseconds=ms)
)
STAMPS = MOMENTS.map(lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
NAMES = st.sampled_from(["a", "b", "c"])
TOKENS = st.integers(min_value=0, max_value=10**6)
MS = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)

RECORDS = st.builds(
    UsageRecord,
    request_id=st.uuids().map(str),
    created_at=STAMPS,
    workspace_id=st.just("ws"),
    key_id=NAMES.map(lambda n: "key_" + n),
    model_requested=NAMES,
    model_served=st.none() | NAMES,
    provider=st.none() | NAMES,
    region=st.none(),
    key_source=st.none(),
    strategy=st.none(),
    input_tokens=TOKENS,
    output_tokens=TOKENS,
    cached_tokens=TOKENS,
    reasoning_tokens=TOKENS,
    cost_usd=st.floats(min_value=0, max_value=100, allow_nan=False),
    latency_ms=MS,
    ttft_ms=st.none() | MS,
    status=st.sampled_from([200, 200, 200, 400, 429, 502]),
)


@given(st.lists(RECORDS, max_size=40), st.sampled_from(GROUP_BYS))
def test_groups_partition_the_totals(records, group_by):
    totals, groups = fold(records, group_by)
    assert totals["requests"] == len(records) == sum(g["requests"] for g in groups)
    assert math.isclose(
        totals["spend_usd"], sum(g["spend_usd"] for g in groups), rel_tol=1e-9, abs_tol=1e-9
    )
    for field in ("input", "output", "cached", "reasoning"):
        assert totals["tokens"][field] == sum(g["tokens"][field] for g in groups)
    names = [g["group"] for g in groups]
    assert len(names) == len(set(names)) == len({group_of(r, group_by) for r in records})


@given(st.lists(RECORDS, max_size=40), st.sampled_from(GROUP_BYS))
def test_group_order_is_by_day_or_by_spend(records, group_by):
    _, groups = fold(records, group_by)
    if group_by == "day":
        days = [g["group"] for g in groups]
        assert days == sorted(days)
    else:
        spends = [g["spend_usd"] for g in groups]
        assert all(a >= b - 1e-9 for a, b in itertools.pairwise(spends))


@given(st.lists(RECORDS, max_size=40))
def test_day_groups_are_utc_dates(records):
    _, groups = fold(records, "day")
    for group in groups:
        datetime.strptime(group["group"], "%Y-%m-%d")


@given(st.lists(MS, min_size=1, max_size=200), st.integers(min_value=1, max_value=100))
def test_nearest_rank_percentile_is_a_sample_with_p_percent_at_or_below(values, p):
    ordered = sorted(values)
    value = percentile(ordered, p)
    assert value in ordered
    at_or_below = sum(1 for v in ordered if v <= value)
    assert at_or_below * 100 >= p * len(ordered)
    below = sum(1 for v in ordered if v < value)
    assert below * 100 < p * len(ordered)


@given(st.lists(RECORDS, max_size=60))
def test_latency_rows_cover_only_successes_and_percentiles_are_ordered(records):
    rows = latency(records)
    ok = [r for r in records if 200 <= r.status < 300 and r.provider is not None]
    assert sum(row["requests"] for row in rows) == len(ok)
    keys = [(row["provider"], row["model"]) for row in rows]
    assert keys == sorted(set(keys))
    for row in rows:
        for name in ("latency_ms", "ttft_ms"):
            summary = row[name]
            if summary is None:
                continue
            assert summary["p50"] <= summary["p95"] <= summary["p99"]
        assert row["latency_ms"]["count"] == row["requests"]
        streamed = row["ttft_ms"]["count"] if row["ttft_ms"] else 0
        assert streamed <= row["requests"]


@given(MOMENTS, st.integers(min_value=1, max_value=366))
def test_window_is_whole_utc_days_ending_today(now, days):
    start = window_start(days, now)
    assert start.tzinfo is not None and (start.hour, start.minute, start.second) == (0, 0, 0)
    assert start <= now < start + timedelta(days=days)
    assert now - start >= timedelta(days=days - 1)
