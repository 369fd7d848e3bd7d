"""Management API (SPEC §7, §8): a workspace's budgets.

``POST/GET /v1/workspaces/{id}/budgets`` and ``GET/PATCH/DELETE …/budgets/{budget_id}``.
Every answer is a ``budget_views`` view, with the current period's spend.

Rules the struct cannot say, each a 400 naming its field:
- ``scope_type`` defaults to ``workspace``. ``scope_id`` is required for, and only allowed
  with, ``api_key``, and must name a key of this workspace; ``scope_provider`` likewise for
  ``byok_provider``, and must name a configured provider (an alias is stored as its id).
- ``limit_usd`` is above 0 and at most 1e9; ``alert_webhook`` an absolute http(s) URL whose
  host resolves to public addresses only, unless ``defaults.webhooks.allow_private_targets``.
- PATCH changes ``limit_usd``, ``enforce``, ``include_byok`` and ``alert_webhook`` (null
  clears it). The scope and the period are what the spend counter means, so they are fixed:
  create another budget instead.
Budgets of the same scope and period may coexist; each is enforced on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from gateway.api.admin_deps import AdminDeps, provider_id
from gateway.api.bodies import convert_body
from gateway.api.budget_views import budget_view, budget_views
from gateway.api.management import admin_workspace
from gateway.context import Context
from gateway.edge.auth import utc_now
from gateway.edge.http import Request, Response, json_response
from gateway.edge.schemas import decode_object
from gateway.errors import InvalidRequest, MissingParameter, NotFound
from gateway.governance.webhook_target import RefusedTarget, screen
from gateway.store.records import Budget, BudgetPeriod, BudgetScope

MAX_LIMIT_USD = 1e9
FIXED_FIELDS = ("scope_type", "scope_id", "scope_provider", "period")
LimitUsd = Annotated[float, msgspec.Meta(gt=0, le=MAX_LIMIT_USD)]
Webhook = Annotated[str, msgspec.Meta(max_length=2048)]


class BudgetCreate(msgspec.Struct, kw_only=True):
    period: BudgetPeriod
    limit_usd: LimitUsd
    scope_type: BudgetScope = "workspace"
    scope_id: str | None = None
    scope_provider: str | None = None
    enforce: bool = True
    include_byok: bool = False
    alert_webhook: Webhook | None = None


class BudgetPatch(msgspec.Struct, kw_only=True):
    limit_usd: LimitUsd | msgspec.UnsetType = msgspec.UNSET
    enforce: bool | msgspec.UnsetType = msgspec.UNSET
    include_byok: bool | msgspec.UnsetType = msgspec.UNSET
    alert_webhook: Webhook | msgspec.UnsetType | None = msgspec.UNSET


def webhook_url(value: str | None, *, allow_private: bool = False) -> str | None:
    """An absolute http(s) URL with a host that resolves to public addresses only (unless
    ``defaults.webhooks.allow_private_targets``); 400 naming ``alert_webhook`` otherwise."""
    if value is None:
        return None
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise InvalidRequest(
            "'alert_webhook' must be an absolute http:// or https:// URL.", param="alert_webhook"
        )
    try:
        screen(value, allow_private)
    except RefusedTarget as refused:
        raise InvalidRequest(
            f"'alert_webhook' must be a public address: {refused}.", param="alert_webhook"
        ) from None
    return value


def _scope(deps: AdminDeps, workspace_id: str, body: BudgetCreate) -> tuple[str | None, str | None]:
    """The checked ``(scope_id, scope_provider)`` for the body's ``scope_type``."""
    wants_id = body.scope_type == "api_key"
    wants_provider = body.scope_type == "byok_provider"
    for field, wanted, given in (
        ("scope_id", wants_id, body.scope_id),
        ("scope_provider", wants_provider, body.scope_provider),
    ):
        if wanted and given is None:
            raise MissingParameter(
                f"Missing required parameter: '{field}' (scope_type '{body.scope_type}').",
                param=field,
            )
        if not wanted and given is not None:
            raise InvalidRequest(
                f"'{field}' does not apply to scope_type '{body.scope_type}'.", param=field
            )
    if body.scope_id is not None and deps.store.get_key(workspace_id, body.scope_id) is None:
        raise InvalidRequest(f"No key '{body.scope_id}' in this workspace.", param="scope_id")
    if body.scope_provider is None:
        return body.scope_id, None
    provider = provider_id(deps.config, body.scope_provider)
    if provider is None:
        raise InvalidRequest(f"Unknown provider '{body.scope_provider}'.", param="scope_provider")
    return body.scope_id, provider


def add_budget(deps: AdminDeps, workspace_id: str, data: Mapping[str, object]) -> Budget:
    """Validate a create body and store the budget."""
    body = convert_body(data, BudgetCreate)
    scope_id, scope_provider = _scope(deps, workspace_id, body)
    budget = Budget(
        id="bud_" + uuid.uuid4().hex[:24],
        workspace_id=workspace_id,
        scope_type=body.scope_type,
        period=body.period,
        limit_usd=body.limit_usd,
        created_at=utc_now(),
        scope_id=scope_id,
        scope_provider=scope_provider,
        enforce=body.enforce,
        include_byok=body.include_byok,
        alert_webhook=webhook_url(
            body.alert_webhook, allow_private=deps.config.defaults.webhooks.allow_private_targets
        ),
    )
    deps.store.create_budget(budget)
    return budget


def changed(budget: Budget, data: Mapping[str, object], *, allow_private: bool = False) -> Budget:
    """The budget with a PATCH body applied; 400 for a field fixed at creation."""
    for field in FIXED_FIELDS:
        if field in data:
            raise InvalidRequest(
                f"'{field}' cannot be changed: create a new budget instead.", param=field
            )
    body = convert_body(data, BudgetPatch)
    changes = {
        field: value
        for field in BudgetPatch.__struct_fields__
        if (value := getattr(body, field)) is not msgspec.UNSET
    }
    if isinstance(body.alert_webhook, str):
        changes["alert_webhook"] = webhook_url(body.alert_webhook, allow_private=allow_private)
    return msgspec.structs.replace(budget, **changes)


def budget_in(deps: AdminDeps, workspace_id: str, budget_id: str) -> Budget:
    budget = deps.store.get_budget(workspace_id, budget_id)
    if budget is None:
        raise NotFound(f"No budget '{budget_id}' in workspace '{workspace_id}'.")
    return budget


def view(deps: AdminDeps, budget: Budget) -> dict[str, object]:
    return budget_views(deps.store, budget.workspace_id, [budget], datetime.now(timezone.utc))[0]


def remove_budget(deps: AdminDeps, workspace_id: str, budget_id: str) -> dict[str, object]:
    budget = budget_in(deps, workspace_id, budget_id)
    if not deps.store.delete_budget(workspace_id, budget.id):  # deleted concurrently
        raise NotFound(f"No budget '{budget_id}' in workspace '{workspace_id}'.")
    return {"id": budget.id, "object": "budget", "deleted": True}


# --- handlers ---------------------------------------------------------------------------
# Each write drops this process's cached governance rules at once; other processes pick the
# change up within their cache TTL (1 s).


async def create_budget(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    budget = add_budget(ctx, workspace.id, decode_object(request.body))
    ctx.rules.invalidate(workspace.id)
    return json_response(budget_view(budget, 0, datetime.now(timezone.utc)), status=201)


async def list_budgets(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    budgets = ctx.store.list_budgets(workspace.id)
    views = budget_views(ctx.store, workspace.id, budgets, datetime.now(timezone.utc))
    return json_response({"object": "list", "data": views})


async def get_budget(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    return json_response(view(ctx, budget_in(ctx, workspace.id, request.path_params["budget_id"])))


async def patch_budget(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    budget = budget_in(ctx, workspace.id, request.path_params["budget_id"])
    allow_private = ctx.config.defaults.webhooks.allow_private_targets
    updated = changed(budget, decode_object(request.body), allow_private=allow_private)
    ctx.store.update_budget(updated)
    ctx.rules.invalidate(workspace.id)
    return json_response(view(ctx, updated))


async def delete_budget(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    deleted = remove_budget(ctx, workspace.id, request.path_params["budget_id"])
    ctx.rules.invalidate(workspace.id)
    return json_response(deleted)
