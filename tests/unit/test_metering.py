"""Properties of pricing and savings (SPEC §3 Savings, §4 usage accounting)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.config import Price
from gateway.governance.metering import Usage, cost_usd, saved_pct

prices = st.builds(
    Price,
    input=st.floats(0, 100, allow_nan=False),
    output=st.floats(0, 200, allow_nan=False),
    cached_input=st.none() | st.floats(0, 100, allow_nan=False),
)
tokens = st.integers(0, 2_000_000)
usages = st.builds(Usage, input_tokens=tokens, output_tokens=tokens, cached_tokens=tokens)


@given(prices, usages)
def test_cost_is_never_negative_and_linear_in_output(price: Price, usage: Usage) -> None:
    base = cost_usd(price, usage)
    more = cost_usd(
        price, Usage(usage.input_tokens, usage.output_tokens + 1_000_000, usage.cached_tokens)
    )
    assert base >= 0
    assert abs((more - base) - price.output) <= 1e-9 * max(1.0, more)


@given(prices, usages)
def test_cached_tokens_bill_at_cached_price_capped_by_input(price: Price, usage: Usage) -> None:
    cached = min(usage.cached_tokens, usage.input_tokens)
    cached_price = price.input if price.cached_input is None else price.cached_input
    expected = (
        (usage.input_tokens - cached) * price.input
        + cached * cached_price
        + usage.output_tokens * price.output
    ) / 1e6
    assert abs(cost_usd(price, usage) - expected) <= 1e-9 * max(1.0, expected)


@given(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e6, allow_nan=False))
def test_saved_pct_is_bounded_and_zero_when_not_cheaper(baseline: float, actual: float) -> None:
    saved = saved_pct(baseline, actual)
    assert 0.0 <= saved <= 100.0
    if actual >= baseline:
        assert saved == 0.0
    if baseline > 0 and actual == 0:
        assert saved == 100.0
