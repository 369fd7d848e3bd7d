"""Pure folds of usage records into the management API's reports (SPEC §8): spend by group,
and latency percentiles. No store and no clock, so property tests drive them directly.

- Windows: ``days=N`` means the N UTC days ending today, today included, so ``days=1`` is
  "since 00:00 UTC" and daily groups are whole days.
- Groups: ``day`` (UTC date of the record), ``model`` (served), ``provider``, ``key``. A request
  refused before routing has no model or provider: it is counted in the group ``null``.
  Days are listed oldest first (only days with records); other groups by spend, highest
  first, then by request count, then by name.
- Percentiles are nearest-rank: each one is a latency that was actually measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Literal

import msgspec

from gateway.store.records import UsageRecord

GroupBy = Literal["day", "model", "provider", "key"]
GROUP_BYS: tuple[GroupBy, ...] = ("day", "model", "provider", "key")
PERCENTILES = (50, 95, 99)
_DIGITS = 10  # rounding of USD sums, as GET /v1/usage does


def window_start(days: int, now: datetime) -> datetime:
    """00:00 UTC of the first of the ``days`` UTC days ending with today."""
    midnight = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days - 1)


def group_of(record: UsageRecord, group_by: GroupBy) -> str | None:
    if group_by == "day":
        return record.created_at[:10]
    if group_by == "model":
        return record.model_served
    if group_by == "provider":
        return record.provider
    return record.key_id


class Tally(msgspec.Struct, kw_only=True):
    """Running sums for one group (or for the whole report)."""

    spend_usd: float = 0.0
    requests: int = 0
    input: int = 0
    output: int = 0
    cached: int = 0
    reasoning: int = 0

    def add(self, record: UsageRecord) -> None:
        self.spend_usd += record.cost_usd
        self.requests += 1
        self.input += record.input_tokens
        self.output += record.output_tokens
        self.cached += record.cached_tokens
        self.reasoning += record.reasoning_tokens

    def view(self) -> dict[str, object]:
        return {
            "spend_usd": round(self.spend_usd, _DIGITS),
            "requests": self.requests,
            "tokens": {
                "input": self.input,
                "output": self.output,
                "cached": self.cached,
                "reasoning": self.reasoning,
            },
        }


def _order(group_by: GroupBy, name: str | None, tally: Tally) -> tuple[object, ...]:
    if group_by == "day":
        return (name or "",)
    return (-tally.spend_usd, -tally.requests, name is None, name or "")


def fold(
    records: Iterable[UsageRecord], group_by: GroupBy
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The totals ``{spend_usd, requests, tokens}`` and one such entry per ``group``."""
    total = Tally()
    groups: dict[str | None, Tally] = {}
    for record in records:
        total.add(record)
        name = group_of(record, group_by)
        tally = groups.get(name)
        if tally is None:
            tally = groups[name] = Tally()
        tally.add(record)
    ordered = sorted(groups.items(), key=lambda item: _order(group_by, item[0], item[1]))
    return total.view(), [{"group": name, **tally.view()} for name, tally in ordered]


def percentile(ordered: Sequence[float], p: int) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence (0 < p <= 100): the
    smallest value with at least p % of the values at or below it (integer rank math)."""
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


def _summary(values: list[float]) -> dict[str, object]:
    values.sort()
    summary: dict[str, object] = {"count": len(values)}
    for p in PERCENTILES:
        summary[f"p{p}"] = round(percentile(values, p), 3)
    return summary


def succeeded(record: UsageRecord) -> bool:
    """A request a deployment answered successfully: the only latencies worth comparing."""
    return 200 <= record.status < 300 and record.provider is not None


def latency(records: Iterable[UsageRecord]) -> list[dict[str, object]]:
    """p50/p95/p99 of ``latency_ms`` and (streams only) ``ttft_ms`` per provider and model,
    over successful requests, ordered by provider then model."""
    totals: dict[tuple[str, str], list[float]] = {}
    firsts: dict[tuple[str, str], list[float]] = {}
    for record in records:
        if not succeeded(record) or record.provider is None:
            continue
        pair = (record.provider, record.model_served or record.model_requested)
        totals.setdefault(pair, []).append(record.latency_ms)
        if record.ttft_ms is not None:
            firsts.setdefault(pair, []).append(record.ttft_ms)
    return [
        {
            "provider": provider,
            "model": model,
            "requests": len(values),
            "latency_ms": _summary(values),
            "ttft_ms": _summary(firsts[(provider, model)]) if (provider, model) in firsts else None,
        }
        for (provider, model), values in sorted(totals.items())
    ]
