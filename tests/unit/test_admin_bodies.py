"""Management bodies and views as pure functions: period math, budget views, slugs, key
expiry, top-up amounts, webhook masking, and unknown fields named in the 400."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.api.billing import credit_amount
from gateway.api.bodies import convert_body, days_param
from gateway.api.budget_views import budget_view, masked_webhook, next_period_start
from gateway.api.budgets import BudgetCreate, changed, webhook_url
from gateway.api.key_options import expires_at, key_status
from gateway.api.workspaces_admin import SLUG, patched, slug_from_name
from gateway.errors import InvalidRequest, MissingParameter
from gateway.governance.periods import period_key, period_start
from gateway.store.ledger import enforcement_threshold, to_micro
from gateway.store.records import ApiKey, Budget, Workspace

EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
MOMENTS = st.integers(min_value=0, max_value=5 * 366 * 86_400_000).map(
    lambda ms: EPOCH + timedelta(milliseconds=ms)
)
PERIODS = st.sampled_from(["daily", "weekly", "monthly"])
LIMITS = st.floats(min_value=0.01, max_value=1e9, allow_nan=False)


@given(PERIODS, MOMENTS)
def test_the_next_period_starts_where_the_current_one_ends(period, now):
    start, end = period_start(period, now), next_period_start(period, now)
    assert start <= now < end
    assert period_start(period, end) == end, "the next start is itself a period start"
    assert period_key(period, end - timedelta(microseconds=1)) == period_key(period, now)
    assert period_key(period, end) != period_key(period, now)
    if period == "weekly":
        assert end.weekday() == 0 and end - start == timedelta(days=7)
    if period == "monthly":
        assert end.day == 1 and 28 <= (end - start).days <= 31
    if period == "daily":
        assert end - start == timedelta(days=1)


def _budget(limit: float, period: str = "monthly", webhook: str | None = None) -> Budget:
    return Budget(
        id="bud_x",
        workspace_id="ws",
        scope_type="workspace",
        period=period,  # type: ignore[arg-type]
        limit_usd=limit,
        created_at="2026-01-01T00:00:00.000Z",
        alert_webhook=webhook,
    )


@given(LIMITS, st.integers(min_value=0, max_value=2 * 10**15), PERIODS, MOMENTS)
def test_budget_view_reports_spend_against_limit_and_threshold(limit, spend, period, now):
    view = budget_view(_budget(limit, period), spend, now)
    assert view["spend_usd"] == spend / 1e6
    assert view["threshold_usd"] == enforcement_threshold(to_micro(limit)) / 1e6
    assert view["threshold_usd"] <= limit
    assert limit - view["threshold_usd"] <= 10 + 1e-6
    assert view["percent_used"] == round(100 * spend / to_micro(limit), 2)
    assert view["period_start"] < view["resets_at"]


@given(st.text(max_size=80))
def test_derived_slugs_are_always_valid(name):
    assert re.fullmatch(SLUG, slug_from_name(name))


def test_slugs_read_like_the_name():
    assert slug_from_name("Team Ä — One!") == "team-a-one"
    assert slug_from_name("???") == "workspace"


@given(MOMENTS, st.integers(min_value=1, max_value=10**9))
def test_expiry_is_stored_in_the_resolvers_string_order(now, seconds):
    later = now + timedelta(seconds=seconds)
    stored = expires_at(later.isoformat(), now)
    assert stored is not None and stored.endswith("Z")
    naive = expires_at(later.replace(tzinfo=None).isoformat(), now)
    assert naive == stored, "an expiry without offset is UTC"
    now_text = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert now_text < stored or now_text[:23] == stored[:23]


@pytest.mark.parametrize("bad", ["tomorrow", "2026-13-01", "", "1700000000"])
def test_expiry_must_be_iso_8601(bad):
    with pytest.raises(InvalidRequest) as caught:
        expires_at(bad, datetime.now(timezone.utc))
    assert caught.value.param == "expires_at"


def test_expiry_must_be_in_the_future():
    with pytest.raises(InvalidRequest, match="future"):
        expires_at("2020-01-01T00:00:00Z", datetime.now(timezone.utc))


def test_key_status_shows_expired_past_expiry():
    key = ApiKey(
        id="key_x",
        workspace_id="ws",
        key_hash="0" * 64,
        prefix="p",
        name="n",
        mode="live",
        scopes=("inference",),
        created_at="2026-01-01T00:00:00.000Z",
        expires_at="2026-02-01T00:00:00.000Z",
    )
    assert key_status(key, "2026-01-31T23:59:59.999Z") == "active"
    assert key_status(key, "2026-02-01T00:00:00.000Z") == "expired"


@given(st.integers(min_value=1, max_value=10**15))
def test_top_up_in_microdollars_is_taken_as_is(amount):
    assert credit_amount({"amount_microdollars": amount}) == amount


@given(st.floats(min_value=0.000001, max_value=1e9, allow_nan=False))
def test_top_up_in_usd_is_rounded_to_microdollars(amount):
    assert credit_amount({"amount_usd": amount}) == to_micro(amount)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "amount_usd"),
        ({"amount_usd": 1, "amount_microdollars": 1}, "amount_usd"),
        ({"amount_usd": 0}, "amount_usd"),
        ({"amount_usd": -5}, "amount_usd"),
        ({"amount_microdollars": 0}, "amount_microdollars"),
        ({"amount_microdollars": 1.5}, "amount_microdollars"),
        ({"amount_usd": 1e-9}, "amount_usd"),
        ({"amount": 1}, "amount"),
    ],
)
def test_bad_top_ups_name_the_field(body, param):
    with pytest.raises(InvalidRequest) as caught:
        credit_amount(body)
    assert caught.value.param == param


def test_unknown_and_missing_fields_are_named():
    with pytest.raises(InvalidRequest) as unknown:
        convert_body({"period": "daily", "limit_usd": 1, "limit": 2}, BudgetCreate)
    assert unknown.value.param == "limit"
    with pytest.raises(MissingParameter) as missing:
        convert_body({"period": "daily"}, BudgetCreate)
    assert missing.value.param == "limit_usd"


def test_budget_patch_keeps_scope_and_period_fixed():
    budget = _budget(10.0, webhook="https://example.com/hook/abc")
    for field in ("scope_type", "scope_id", "scope_provider", "period"):
        with pytest.raises(InvalidRequest) as caught:
            changed(budget, {field: None})
        assert caught.value.param == field
    updated = changed(budget, {"limit_usd": 20, "enforce": False, "alert_webhook": None})
    assert (updated.limit_usd, updated.enforce, updated.alert_webhook) == (20.0, False, None)
    assert changed(budget, {}) == budget


@pytest.mark.parametrize("url", ["ftp://x/y", "https://", "not a url", "/relative", "http://a b"])
def test_webhooks_must_be_absolute_http_urls(url):
    with pytest.raises(InvalidRequest) as caught:
        webhook_url(url)
    assert caught.value.param == "alert_webhook"


@given(st.text("abcdefghijklmnopqrstuvwxyz0123456789/?=&_-", max_size=40))
def test_masked_webhooks_show_no_path_or_query(tail):
    url = f"https://hooks.example.com:8443/{tail}"
    masked = masked_webhook(url)
    assert masked is not None and masked.startswith("https://hooks.example.com:8443")
    if tail.strip("/"):
        assert tail.strip("/") not in masked.removeprefix("https://hooks.example.com:8443")


def test_workspace_patch_applies_present_fields_and_null_clears():
    workspace = Workspace(
        id="ws", name="a", slug="a", created_at="2026-01-01T00:00:00.000Z", rpm_limit=5
    )
    updated = patched(workspace, {"name": "b", "rpm_limit": None, "tpm_limit": 100})
    assert (updated.name, updated.rpm_limit, updated.tpm_limit) == ("b", None, 100)
    assert updated.slug == "a"
    refused = (({"slug": "b"}, "slug"), ({"name": None}, "name"), ({"rpm_limit": 0}, "rpm_limit"))
    for body, param in refused:
        with pytest.raises(InvalidRequest) as caught:
            patched(workspace, body)
        assert caught.value.param == param


@pytest.mark.parametrize("raw", ["0", "367", "-1", "1.5", "x", "٣"])
def test_days_outside_1_to_366_are_refused(raw):
    with pytest.raises(InvalidRequest) as caught:
        days_param({"days": raw})
    assert caught.value.param == "days"
    assert days_param({}) == 30 and days_param({"days": "366"}) == 366
