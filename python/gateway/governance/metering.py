"""Cost from usage and prices, and savings against the baseline (records: ``usage_writer``)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Price


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


def cost_usd(price: Price, usage: Usage) -> float:
    """Cached input bills at the cached price; reasoning tokens are already in output."""
    return tokens_cost_usd(price, usage.input_tokens, usage.output_tokens, usage.cached_tokens)


def tokens_cost_usd(
    price: Price, input_tokens: int, output_tokens: int, cached_tokens: int = 0
) -> float:
    """``cost_usd`` of these counts, without building a ``Usage`` (admission prices every
    candidate of every governed request)."""
    cached = min(cached_tokens, input_tokens)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    return (
        (input_tokens - cached) * price.input + cached * cached_price + output_tokens * price.output
    ) / 1_000_000


def saved_pct(baseline_cost: float, actual_cost: float) -> float:
    """SPEC §3 Savings: 100 × (baseline − actual) / baseline, floored at 0."""
    if baseline_cost <= 0:
        return 0.0
    return round(max(0.0, 100.0 * (baseline_cost - actual_cost) / baseline_cost), 2)
