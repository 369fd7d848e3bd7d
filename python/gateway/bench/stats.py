"""Latency statistics for the load harness.

A pure-Python percentile (numpy's default "linear" method) so summaries need no array
conversion of small samples and the definition is pinned down by a test against numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec


class LatencySummary(msgspec.Struct, frozen=True, kw_only=True):
    """Latency figures in milliseconds over the successful responses of one run."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already-sorted values, linear interpolation.

    Matches ``numpy.percentile(values, q)`` (method="linear"); raises on an empty sequence.
    """
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within [0, 100], got {q}")
    pos = (len(sorted_values) - 1) * (q / 100.0)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    a, b = sorted_values[lo], sorted_values[hi]
    # numpy's _lerp form: exact at both ends and monotone.
    diff = b - a
    return a + diff * frac if frac < 0.5 else b - diff * (1.0 - frac)


def summarize(latencies_s: Sequence[float]) -> LatencySummary:
    """Summarize latencies given in seconds; an empty run gives NaN figures with count 0."""
    if not latencies_s:
        nan = math.nan
        return LatencySummary(count=0, mean_ms=nan, p50_ms=nan, p90_ms=nan, p99_ms=nan, max_ms=nan)
    ms = sorted(v * 1000.0 for v in latencies_s)
    return LatencySummary(
        count=len(ms),
        mean_ms=math.fsum(ms) / len(ms),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1],
    )
