"""Management API (SPEC §8): a workspace's usage records, read back.

- ``GET /v1/workspaces/{id}/usage?days=30&group_by=day|model|provider|key``: spend, requests
  and tokens in total and per group (``usage_reports``); ``group_by=key`` entries also carry
  the key's ``name``.
- ``GET …/usage/{request_id}``: one record (404 when it is not this workspace's).
- ``GET …/latency?days=30``: p50/p95/p99 of latency and time to first token per provider and
  model, successful requests only.
- ``GET …/audit?days=30``: every record of the window as JSON Lines
  (``application/x-ndjson``), oldest first. Records never hold prompt or completion text nor
  any secret (keys appear by id only), so the export is safe to hand to an auditor.

``days`` is 1-366 (default 30), counted in whole UTC days ending today. Records reach the
store from each process's usage writer shortly after the response, so the newest requests
may show up a moment later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import msgspec

from gateway.api import usage_reports
from gateway.api.admin_deps import AdminDeps
from gateway.api.bodies import days_param
from gateway.api.management import admin_workspace
from gateway.api.usage import iso_utc
from gateway.context import Context
from gateway.edge.http import Request, Response, json_response
from gateway.errors import InvalidRequest, NotFound
from gateway.store.records import UsageRecord

NDJSON_TYPE = "application/x-ndjson"
_JSON_TEXT_FIELDS = ("fallback_chain", "gateway_metadata")
_encoder = msgspec.json.Encoder()


def group_by_param(query: Mapping[str, str]) -> usage_reports.GroupBy:
    value = query.get("group_by", "day")
    for name in usage_reports.GROUP_BYS:
        if value == name:
            return name
    raise InvalidRequest(
        f"Unknown group_by '{value}': use one of {', '.join(usage_reports.GROUP_BYS)}.",
        param="group_by",
    )


def window(deps: AdminDeps, workspace_id: str, days: int) -> tuple[str, list[UsageRecord]]:
    """The window's start (store format) and the workspace's records since then."""
    since = iso_utc(usage_reports.window_start(days, datetime.now(timezone.utc)))
    return since, deps.store.list_usage(workspace_id, since)


def usage_report(
    deps: AdminDeps,
    workspace_id: str,
    days: int,
    group_by: usage_reports.GroupBy,
    key_id: str | None = None,
) -> dict[str, object]:
    """The workspace's (or one of its keys') usage over the window, folded by ``group_by``."""
    since, records = window(deps, workspace_id, days)
    if key_id is not None:
        records = [r for r in records if r.key_id == key_id]
    totals, groups = usage_reports.fold(records, group_by)
    if group_by == "key":
        names = {key.id: key.name for key in deps.store.list_keys(workspace_id)}
        for entry in groups:
            entry["name"] = names.get(str(entry["group"]))
    head: dict[str, object] = {"object": "usage_report", "workspace_id": workspace_id}
    if key_id is not None:
        head["key_id"] = key_id
    return {**head, "days": days, "since": since, "group_by": group_by, **totals, "data": groups}


def record_view(record: UsageRecord) -> dict[str, Any]:
    """The record as stored, with its JSON-text fields (fallback chain, metadata) as JSON."""
    view: dict[str, Any] = msgspec.to_builtins(record)
    for field in _JSON_TEXT_FIELDS:
        text = view.get(field)
        if isinstance(text, str):
            with contextlib.suppress(msgspec.DecodeError):
                view[field] = msgspec.json.decode(text)
    return view


async def get_usage_report(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    days = days_param(request.query)
    group_by = group_by_param(request.query)
    report = await asyncio.to_thread(usage_report, ctx, workspace.id, days, group_by)
    return json_response(report)


async def get_usage_record(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    request_id = request.path_params["request_id"]
    record = ctx.store.get_usage(workspace.id, request_id)
    if record is None or record.workspace_id != workspace.id:
        raise NotFound(f"No usage record '{request_id}' in workspace '{workspace.id}'.")
    return json_response({"object": "usage_record", **record_view(record)})


async def get_latency(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    days = days_param(request.query)
    since, records = await asyncio.to_thread(window, ctx, workspace.id, days)
    return json_response(
        {
            "object": "latency_report",
            "workspace_id": workspace.id,
            "days": days,
            "since": since,
            "data": usage_reports.latency(records),
        }
    )


async def get_audit(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    days = days_param(request.query)
    _, records = await asyncio.to_thread(window, ctx, workspace.id, days)
    body = b"".join(_encoder.encode(record_view(r)) + b"\n" for r in records)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    disposition = f'attachment; filename="routegate-audit-{workspace.id}-{stamp}.jsonl"'
    return Response(body, headers={"content-disposition": disposition}, content_type=NDJSON_TYPE)
