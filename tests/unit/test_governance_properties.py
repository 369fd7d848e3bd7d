"""Properties of governance's pure parts: money rounding, thresholds, periods, which budget a
request counts toward, and that the pre-dispatch estimate bounds the actual cost."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta, timezone
from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from gateway import _router_core as core
from gateway.config import load_config
from gateway.governance.admission import counts_toward, estimate_micro
from gateway.governance.metering import Usage, cost_usd
from gateway.governance.periods import counter_name, period_key, period_start
from gateway.routing.catalog import Catalog, Deployment
from gateway.store.ledger import MICRO, enforcement_threshold, to_micro
from gateway.store.records import ApiKey, Budget

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
periods = st.sampled_from(["daily", "weekly", "monthly"])


@cache
def _deployments() -> tuple[Deployment, ...]:
    catalog = Catalog(load_config(None))
    return tuple(d for d in catalog.deployments if d.provider.id != "mock")


deployments = st.integers(min_value=0).map(lambda i: _deployments()[i % len(_deployments())])


def _key(mode: str = "live", key_id: str = "key_1") -> ApiKey:
    return ApiKey(
        id=key_id,
        workspace_id="ws",
        key_hash="h",
        prefix="rg_live_abcd…",
        name="k",
        mode=mode,  # type: ignore[arg-type]
        scopes=("inference",),
        created_at="2026-01-01T00:00:00.000Z",
    )


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_micro_rounding_is_within_half_a_micro_dollar(usd: float) -> None:
    assert abs(to_micro(usd) - usd * MICRO) <= 0.5 + 1e-6 * max(1.0, usd)


@given(st.floats(min_value=0, max_value=1e4), st.floats(min_value=0, max_value=1e4))
def test_micro_rounding_is_monotone(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert to_micro(low) <= to_micro(high)


@given(st.integers(min_value=0, max_value=10**15))
def test_threshold_is_limit_minus_min_of_ten_dollars_and_ten_percent(limit: int) -> None:
    threshold = enforcement_threshold(limit)
    assert threshold == limit - min(10 * MICRO, limit // 10)
    assert 0.9 * limit - 1 <= threshold <= limit
    if limit >= 100 * MICRO:
        assert threshold == limit - 10 * MICRO


@given(periods, moments)
def test_a_period_contains_its_moment_and_starts_at_utc_midnight(
    period: str, now: datetime
) -> None:
    start = period_start(period, now)  # type: ignore[arg-type]
    assert start <= now < start + timedelta(days=31)
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    if period == "weekly":
        assert start.weekday() == 0 and now - start < timedelta(days=7)
    if period == "monthly":
        assert start.day == 1 and (start.year, start.month) == (now.year, now.month)
    if period == "daily":
        assert start.date() == now.date()


@given(periods, moments, st.integers(min_value=0, max_value=86_399))
def test_counters_change_exactly_at_period_boundaries(
    period: str, now: datetime, seconds: int
) -> None:
    later = now + timedelta(seconds=seconds)
    same = period_start(period, now) == period_start(period, later)  # type: ignore[arg-type]
    assert same == (period_key(period, now) == period_key(period, later))  # type: ignore[arg-type]
    assert counter_name("b1", period, now).startswith("b1@")  # type: ignore[arg-type]


@given(
    deployment=deployments,
    scope=st.sampled_from(["workspace", "api_key", "byok_provider"]),
    include_byok=st.booleans(),
    source=st.sampled_from(["platform", "byok"]),
    mode=st.sampled_from(["live", "test"]),
    same_key=st.booleans(),
)
def test_which_budgets_a_request_counts_toward(
    *,
    deployment: Deployment,
    scope: str,
    include_byok: bool,
    source: str,
    mode: str,
    same_key: bool,
) -> None:
    deployment = dataclasses.replace(deployment, key_source=source)
    budget = Budget(
        id="b",
        workspace_id="ws",
        scope_type=scope,  # type: ignore[arg-type]
        period="daily",
        limit_usd=1.0,
        created_at="x",
        scope_id="key_1" if same_key else "key_2",
        scope_provider=deployment.provider.id,
        include_byok=include_byok,
    )
    counted = counts_toward(budget, _key(mode), deployment)
    if mode == "test":
        assert not counted, "test keys never spend"
    elif scope == "byok_provider":
        assert counted == (source == "byok")
    elif source == "byok" and not include_byok:
        assert not counted
    else:
        assert counted == (scope == "workspace" or same_key)


@given(
    deployments,
    st.integers(min_value=0, max_value=200_000),
    st.one_of(st.none(), st.integers(min_value=1, max_value=100_000)),
    st.data(),
)
def test_the_estimate_bounds_every_usage_within_the_request(
    deployment: Deployment, prompt: int, max_output: int | None, data: st.DataObject
) -> None:
    """Any actual usage with at most the estimated prompt (at the row's token ratio) and at
    most the requested output costs no more than was reserved."""
    estimate = estimate_micro(deployment, prompt, max_output)
    ceiling_in = math.ceil(prompt * core.token_ratio(deployment.model.family))
    ceiling_out = max_output if max_output else deployment.offer.max_output
    actual = Usage(
        input_tokens=data.draw(st.integers(min_value=0, max_value=ceiling_in)),
        output_tokens=data.draw(st.integers(min_value=0, max_value=ceiling_out)),
    )
    assert to_micro(cost_usd(deployment.price, actual)) <= estimate


@given(
    moment=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
    period=periods,
    budget_id=st.text(alphabet="abc_123", min_size=1, max_size=12),
)
def test_cached_period_keys_equal_formatting_the_period_start(
    moment: datetime, offset_minutes: int, period: str, budget_id: str
) -> None:
    """The keys are cached per UTC day; from any time zone they must equal formatting the
    period's start afresh."""
    now = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    start = period_start(period, now)  # type: ignore[arg-type]
    want = start.strftime("%Y-%m") if period == "monthly" else start.strftime("%Y-%m-%d")
    assert period_key(period, now) == want  # type: ignore[arg-type]
    assert counter_name(budget_id, period, now) == f"{budget_id}@{want}"  # type: ignore[arg-type]
