"""Management API (SPEC §7, §8): rotating a key, and one key's usage.

``POST /v1/workspaces/{id}/keys/{key_id}/rotate`` with ``{grace_period_s?}`` (0 to 30 days,
default 3600) creates a new key with the old one's name, mode, scopes and every option
(expiry included), answers 201 with its secret shown this once, and sets the old key's
``expires_at`` to now + grace (or keeps an earlier expiry). Both keys work during the grace
period; after it the old one answers 401 and lists as ``expired``. Budgets scoped to the old
key move to the new one, so the spend so far keeps counting against the same limit (during the
grace period the old key's traffic counts only in workspace-wide budgets). Only an active key
can be rotated; a gateway-wide key only by a gateway-wide admin, as for revocation.

``GET …/keys/{key_id}/usage?days=30&group_by=day`` is the workspace usage report
(``usage_admin``) narrowed to that key.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Annotated

import msgspec

from gateway.api.admin_deps import AdminDeps
from gateway.api.bodies import convert_body, days_param
from gateway.api.key_options import key_status
from gateway.api.management import key_view, managed_key
from gateway.api.usage import iso_utc
from gateway.api.usage_admin import group_by_param, usage_report
from gateway.context import Context
from gateway.edge.auth import new_key_record
from gateway.edge.http import Request, Response, json_response
from gateway.edge.schemas import decode_object
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.store.records import ApiKey

DEFAULT_GRACE_S = 3600
MAX_GRACE_S = 30 * 86_400


class Rotate(msgspec.Struct, kw_only=True):
    grace_period_s: Annotated[int, msgspec.Meta(ge=0, le=MAX_GRACE_S)] = DEFAULT_GRACE_S


def rotate(
    deps: AdminDeps, key: ApiKey, grace_period_s: int, *, by_gateway_admin: bool
) -> tuple[str, ApiKey, ApiKey]:
    """Create the successor, then shorten the old key's life: there is never a moment when
    neither works. Returns the new secret, the new key and the old key as now stored."""
    if key.gateway_wide and not by_gateway_admin:
        raise PermissionDenied("Only a gateway-wide admin key may rotate a gateway-wide key.")
    now = datetime.now(timezone.utc)
    status = key_status(key, iso_utc(now))
    if status != "active":
        raise InvalidRequest(f"Key '{key.id}' is {status}: only an active key can be rotated.")
    secret, successor = new_key_record(
        hash_key=deps.hash_key,
        workspace_id=key.workspace_id,
        name=key.name,
        mode=key.mode,
        scopes=key.scopes,
        gateway_wide=key.gateway_wide,
        allowed_models=key.allowed_models,
        ip_allowlist=key.ip_allowlist,
        default_policy=key.default_policy,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        max_cost_per_request=key.max_cost_per_request,
        expires_at=key.expires_at,
    )
    deps.store.create_key(successor)
    grace_end = iso_utc(now + timedelta(seconds=grace_period_s))
    ends = grace_end if key.expires_at is None else min(key.expires_at, grace_end)
    retired = msgspec.structs.replace(key, expires_at=ends, successor_id=successor.id)
    deps.store.update_key(retired)
    for budget in deps.store.list_budgets(key.workspace_id):
        if budget.scope_type == "api_key" and budget.scope_id == key.id:
            deps.store.update_budget(msgspec.structs.replace(budget, scope_id=successor.id))
    return secret, successor, deps.store.get_key(key.workspace_id, key.id) or retired


async def rotate_key(ctx: Context, request: Request) -> Response:
    caller, key = managed_key(ctx, request)
    data = decode_object(request.body) if request.body.strip() else {}
    body = convert_body(data, Rotate)
    secret, successor, retired = await asyncio.to_thread(
        rotate, ctx, key, body.grace_period_s, by_gateway_admin=caller.gateway_wide
    )
    ctx.rules.invalidate(key.workspace_id)  # key-scoped budgets now name the successor
    now = iso_utc(datetime.now(timezone.utc))
    return json_response(
        {
            **key_view(successor, now),
            "key": secret,
            "rotated_from": key.id,
            "previous_key": key_view(retired, now),
        },
        status=201,
    )


async def get_key_usage(ctx: Context, request: Request) -> Response:
    _, key = managed_key(ctx, request)
    days = days_param(request.query)
    group_by = group_by_param(request.query)
    report = await asyncio.to_thread(usage_report, ctx, key.workspace_id, days, group_by, key.id)
    return json_response(report)
