"""How a budget is shown: its record plus where it stands in the current period (SPEC §7, §8).

``spend_usd`` is the settled spend of the budget's counter for the period containing "now"
(``governance.periods``), so it is exactly what enforcement compares with ``threshold_usd``,
the enforcement threshold ``limit − min(10, 10 % of limit)``. ``resets_at`` is when the next
period starts and the counter begins again from zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from gateway.api.usage import iso_utc
from gateway.governance.periods import counter_name, period_start
from gateway.store import Store
from gateway.store.ledger import MICRO, enforcement_threshold, to_micro
from gateway.store.records import Budget, BudgetPeriod


def next_period_start(period: BudgetPeriod, now: datetime) -> datetime:
    """The start of the period after the one containing ``now`` (00:00 UTC; Monday; the 1st)."""
    start = period_start(period, now)
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def masked_webhook(url: str | None) -> str | None:
    """Scheme and host only: webhook paths often carry a token (Slack, Teams), and views must
    never show a secret."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{tail}"


def budget_view(budget: Budget, spend_micro: int, now: datetime) -> dict[str, object]:
    limit_micro = to_micro(budget.limit_usd)
    return {
        "id": budget.id,
        "object": "budget",
        "workspace_id": budget.workspace_id,
        "scope_type": budget.scope_type,
        "scope_id": budget.scope_id,
        "scope_provider": budget.scope_provider,
        "period": budget.period,
        "limit_usd": budget.limit_usd,
        "enforce": budget.enforce,
        "include_byok": budget.include_byok,
        "alert_webhook": masked_webhook(budget.alert_webhook),
        "created_at": budget.created_at,
        "spend_usd": spend_micro / MICRO,
        "percent_used": round(100 * spend_micro / limit_micro, 2) if limit_micro else 0.0,
        "threshold_usd": enforcement_threshold(limit_micro) / MICRO,
        "period_start": iso_utc(period_start(budget.period, now)),
        "resets_at": iso_utc(next_period_start(budget.period, now)),
    }


def budget_views(
    store: Store, workspace_id: str, budgets: Sequence[Budget], now: datetime
) -> list[dict[str, object]]:
    """Views of one workspace's budgets, with every spend read in one store call."""
    if not budgets:
        return []
    counters = [counter_name(b.id, b.period, now) for b in budgets]
    spends = store.budget_spend(workspace_id, counters)
    return [budget_view(b, s, now) for b, s in zip(budgets, spends, strict=True)]
