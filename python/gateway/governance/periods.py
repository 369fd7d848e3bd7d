"""Budget periods (SPEC §7): they start at 00:00 UTC, weeks on Monday, months on the 1st.

A budget's spend lives in one counter per period, named ``<budget id>@<period key>``, so a
new period starts from zero without any reset job, and a request reserved late in one period
settles into the same counter even if it finishes in the next.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

from gateway.store.records import BudgetPeriod

HEADER_NAMES: dict[BudgetPeriod, str] = {"daily": "Daily", "weekly": "Weekly", "monthly": "Monthly"}


def period_start(period: BudgetPeriod, now: datetime) -> datetime:
    """00:00 UTC of today, of this week's Monday, or of the 1st of this month."""
    midnight = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "weekly":
        return midnight - timedelta(days=midnight.weekday())
    if period == "monthly":
        return midnight.replace(day=1)
    return midnight


def period_key(period: BudgetPeriod, now: datetime) -> str:
    """``2026-11-21`` (daily), ``2026-11-16`` (weekly: its Monday), ``2026-11`` (monthly)."""
    return _period_key_of_day(period, now.astimezone(timezone.utc).date())


def counter_name(budget_id: str, period: BudgetPeriod, now: datetime) -> str:
    """Asked for every governed request: formatted once per budget and UTC day."""
    return _counter_of_day(budget_id, period, now.astimezone(timezone.utc).date())


@lru_cache(maxsize=64)
def _period_key_of_day(period: BudgetPeriod, day: date) -> str:
    start = period_start(period, datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    return start.strftime("%Y-%m") if period == "monthly" else start.strftime("%Y-%m-%d")


@lru_cache(maxsize=4096)
def _counter_of_day(budget_id: str, period: BudgetPeriod, day: date) -> str:
    return f"{budget_id}@{_period_key_of_day(period, day)}"
