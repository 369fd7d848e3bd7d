"""GET /v1/usage (SPEC §1): the calling key's workspace spend for the current period.

Periods start at 00:00 UTC like budgets do (SPEC §7): today, this week's Monday, the 1st of
this month, so the numbers here match what a budget of the same period would count.
Totals cover every metered request, failures included; ``by_provider`` and ``by_model`` cover
only the requests that reached a deployment (a request refused before routing has neither).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Literal

from gateway.context import Context
from gateway.edge.auth import check_ip, extract_secret
from gateway.edge.http import Request, Response, json_response
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.governance.periods import period_start as budget_period_start
from gateway.store.records import BudgetPeriod, UsageRecord

Period = Literal["day", "week", "month"]
PERIODS: dict[str, Period] = {"day": "day", "week": "week", "month": "month"}
_BUDGET_PERIODS: dict[Period, BudgetPeriod] = {"day": "daily", "week": "weekly", "month": "monthly"}
_DIGITS = 10  # rounding of USD sums: hides float noise, keeps sub-micro-dollar precision


def period_start(period: Period, now: datetime) -> datetime:
    """00:00 UTC of today, of this week's Monday, or of the 1st of this month: the same
    boundaries as the budget of that period (``governance.periods``)."""
    return budget_period_start(_BUDGET_PERIODS[period], now)


def iso_utc(moment: datetime) -> str:
    """The store's timestamp format (``…T00:00:00.000Z``), so string comparison is by time."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bucket() -> dict[str, float | int]:
    return {"spend_usd": 0.0, "requests": 0}


def _add(groups: dict[str, dict[str, float | int]], name: str, cost: float) -> None:
    bucket = groups.setdefault(name, _bucket())
    bucket["spend_usd"] += cost
    bucket["requests"] += 1


def _rounded(groups: dict[str, dict[str, float | int]]) -> dict[str, dict[str, float | int]]:
    return {
        name: {"spend_usd": round(b["spend_usd"], _DIGITS), "requests": b["requests"]}
        for name, b in sorted(groups.items())
    }


def summarize(records: Iterable[UsageRecord], period: Period, since: str) -> dict[str, object]:
    """Fold usage records into the ``usage`` object; pure, so it is tested without a store."""
    spend = saved = 0.0
    requests = 0
    tokens = {"input": 0, "output": 0, "cached": 0, "reasoning": 0}
    by_provider: dict[str, dict[str, float | int]] = {}
    by_model: dict[str, dict[str, float | int]] = {}
    for record in records:
        requests += 1
        spend += record.cost_usd
        saved += max(0.0, record.baseline_cost_usd - record.cost_usd)
        tokens["input"] += record.input_tokens
        tokens["output"] += record.output_tokens
        tokens["cached"] += record.cached_tokens
        tokens["reasoning"] += record.reasoning_tokens
        if record.provider is not None:
            _add(by_provider, record.provider, record.cost_usd)
        if record.model_served is not None:
            _add(by_model, record.model_served, record.cost_usd)
    return {
        "object": "usage",
        "period": period,
        "since": since,
        "spend_usd": round(spend, _DIGITS),
        "requests": requests,
        "tokens": tokens,
        "by_provider": _rounded(by_provider),
        "by_model": _rounded(by_model),
        "saved_usd": round(saved, _DIGITS),
    }


def _period(request: Request) -> Period:
    value = request.query.get("period", "day")
    period = PERIODS.get(value)
    if period is None:
        raise InvalidRequest(
            f"Unknown period '{value}': use one of {', '.join(PERIODS)}.", param="period"
        )
    return period


async def get_usage(ctx: Context, request: Request) -> Response:
    """Any key that may call or read the gateway sees its own workspace's usage."""
    key = await ctx.keys.aresolve(extract_secret(request.headers))
    check_ip(key, request.client_ip)
    if "inference" not in key.scopes and "read" not in key.scopes:
        raise PermissionDenied("This API key lacks the 'inference' or 'read' scope.")
    period = _period(request)
    since = iso_utc(period_start(period, datetime.now(timezone.utc)))
    records = await ctx.offload(lambda: ctx.store.list_usage(key.workspace_id, since))
    return json_response(summarize(records, period, since))
