"""Assertions shared by the governance suites: exact outcome counts, the SPEC §6 refusals, and
the ledger check (usage records == spend counters == ``GET /v1/usage``, to the micro-dollar)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from support.checks import ERROR_TYPES
from support.cluster import (
    MICRO,
    REQUEST_COST_MICRO,
    Cluster,
    Result,
    cost_sum,
    statuses,
    usage_summary,
    wait_until,
)

RULES_TTL_S = 1.2
"""Governance rules (budgets, wallet tier, limits) are cached per process for 1 s."""


def settle_rules() -> None:
    """Let every process's cached rules expire, so a new budget/limit/credit applies."""
    time.sleep(RULES_TTL_S)


def assert_counts(results: Sequence[Result], expected: dict[int, int]) -> None:
    """Exactly ``expected`` (status → count), with the odd ones out in the message."""
    got = statuses(results)
    odd = [r.describe() for r in results if r.status not in expected][:5]
    assert got == expected, f"statuses {got}, expected {expected}; e.g. {odd}"


def assert_refusal(result: Result, status: int, code: str) -> dict[str, Any]:
    """SPEC §6: the status, ``{"error": {message, type, code, param}}``, the request id."""
    summary = result.describe()
    assert result.status == status, summary
    assert result.headers.get("content-type", "").startswith("application/json"), summary
    body = result.body
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), summary
    err = body["error"]
    for name in ("message", "type", "code", "param"):
        assert name in err, f"error lacks {name!r}: {summary}"
    assert err["code"] == code, summary
    assert err["type"] == ERROR_TYPES[status], summary
    assert body.get("request_id") == result.request_id, summary
    assert "traceback" not in result.text.lower(), summary
    return dict(err)


def request_ids(results: Iterable[Result]) -> set[str]:
    ids = {r.request_id for r in results}
    assert None not in ids, "a response without X-Request-ID"
    return {i for i in ids if i is not None}


def assert_ledger(
    cluster: Cluster,
    workspace_id: str,
    key: str,
    results: Sequence[Result],
    *,
    spent_micro: int | None,
    budget_id: str | None = None,
    exact_records: bool = True,
) -> list[dict[str, Any]]:
    """The workspace's usage records, read from the store itself, against what the clients
    saw and against every counter the gateway reports:

    - one record per answered request (ids equal to the responses' X-Request-ID), or with
      ``exact_records=False`` at least one per 200 answer;
    - a 200 record costs exactly ``REQUEST_COST_MICRO``, every other record nothing;
    - their sum is ``spent_micro`` (when given), and equal to the budget's ``spend_usd``
      (management API) and to ``GET /v1/usage``'s ``spend_usd`` for the workspace.
    """
    answered = [r for r in results if r.status != 0]
    served = [r for r in answered if r.status == 200]
    store = cluster.store()
    if exact_records:
        records = store.wait_records(workspace_id, len(answered))
        assert {r["request_id"] for r in records} == request_ids(answered)
    else:
        wanted = request_ids(served)
        records = wait_until(
            lambda: store.usage_records(workspace_id),
            lambda rs: wanted <= {r["request_id"] for r in rs},
            timeout=15.0,
            what=f"records of all {len(wanted)} served requests",
        )
        time.sleep(0.5)
        records = store.usage_records(workspace_id)
    by_id = {r["request_id"]: r for r in records}
    for result in served:
        record = by_id[result.request_id]
        assert record["status"] == 200, record
        assert record["cost_microdollars"] == REQUEST_COST_MICRO, record
        assert record["workspace_id"] == workspace_id, record
    for result in answered:
        if result.status != 200 and result.request_id in by_id:
            record = by_id[result.request_id]
            assert record["cost_microdollars"] == 0, record
            assert record["status"] == result.status, record
    total = cost_sum(records)
    if spent_micro is not None:
        assert total == spent_micro, f"records sum to {total} micro-dollars, not {spent_micro}"
    if budget_id is not None:
        view = wait_until(
            lambda: cluster.admin.budget(workspace_id, budget_id),
            lambda v: round(v["spend_usd"] * MICRO) >= total,
            timeout=5.0,
            what="budget spend",
        )
        assert round(view["spend_usd"] * MICRO) == total, f"budget {view} vs records {total}"
        assert view["spend_usd"] == total / MICRO, view
    summary = usage_summary(cluster.targets[0], key)
    assert summary["requests"] == len(records), summary
    assert round(summary["spend_usd"] * MICRO) == total, f"/v1/usage {summary} vs {total}"
    return records
