"""The management API (SPEC §8) — workspaces and keys (routing settings: ``routing_admin``).

Every route checks that the caller's key may manage the workspace it names; another
workspace's ids answer 404, never 403, so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec

from gateway.auth import new_key_record
from gateway.context import Context
from gateway.errors import InvalidRequest, NotFound, PermissionDenied
from gateway.http import Request, Response, json_response
from gateway.schemas import convert, decode_object
from gateway.store.records import ApiKey, KeyMode, Scope, Workspace


class KeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    mode: KeyMode = "live"
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["inference"]
    )
    allowed_models: list[str] | None = None
    ip_allowlist: list[str] | None = None
    default_policy: str | None = None
    rpm_limit: Annotated[int, msgspec.Meta(ge=1)] | None = None
    tpm_limit: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_cost_per_request: Annotated[float, msgspec.Meta(gt=0)] | None = None
    expires_at: str | None = None


def _workspace_view(workspace: Workspace) -> dict[str, str]:
    return {
        "id": workspace.id,
        "object": "workspace",
        "name": workspace.name,
        "slug": workspace.slug,
        "created_at": workspace.created_at,
    }


def _key_view(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "object": "api_key",
        "prefix": key.prefix,
        "name": key.name,
        "mode": key.mode,
        "scopes": list(key.scopes),
        "status": key.status,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "allowed_models": key.allowed_models,
        "default_policy": key.default_policy,
        "expires_at": key.expires_at,
    }


def managed_workspace(ctx: Context, caller: ApiKey, workspace_id: str) -> Workspace:
    """The workspace if the caller may manage it; 404 (never 403) for anything else."""
    workspace = ctx.store.get_workspace(workspace_id)
    if workspace is None or not (caller.gateway_wide or caller.workspace_id == workspace.id):
        raise NotFound(f"No workspace '{workspace_id}'.")
    return workspace


async def list_workspaces(ctx: Context, request: Request) -> Response:
    caller = ctx.authenticate(request.headers, "admin")
    workspaces = [
        w for w in ctx.store.list_workspaces() if caller.gateway_wide or w.id == caller.workspace_id
    ]
    return json_response({"object": "list", "data": [_workspace_view(w) for w in workspaces]})


async def get_workspace(ctx: Context, request: Request) -> Response:
    caller = ctx.authenticate(request.headers, "admin")
    workspace = managed_workspace(ctx, caller, request.path_params["workspace_id"])
    return json_response(_workspace_view(workspace))


async def create_key(ctx: Context, request: Request) -> Response:
    caller = ctx.authenticate(request.headers, "admin")
    workspace = managed_workspace(ctx, caller, request.path_params["workspace_id"])
    body = convert(decode_object(request.body), KeyCreate)
    if body.default_policy is not None and not _policy_exists(
        ctx, workspace.id, body.default_policy
    ):
        raise InvalidRequest(
            f"Unknown routing policy '{body.default_policy}'.", param="default_policy"
        )
    secret, record = new_key_record(
        hash_key=ctx.hash_key,
        workspace_id=workspace.id,
        name=body.name,
        mode=body.mode,
        scopes=tuple(body.scopes),
        allowed_models=tuple(body.allowed_models) if body.allowed_models is not None else None,
        ip_allowlist=tuple(body.ip_allowlist) if body.ip_allowlist is not None else None,
        default_policy=body.default_policy,
        rpm_limit=body.rpm_limit,
        tpm_limit=body.tpm_limit,
        max_cost_per_request=body.max_cost_per_request,
        expires_at=body.expires_at,
    )
    ctx.store.create_key(record)
    return json_response({**_key_view(record), "key": secret}, status=201)


def _policy_exists(ctx: Context, workspace_id: str, name: str) -> bool:
    """A config policy or one of the workspace's own (read fresh from the store)."""
    return name in ctx.config.policies or ctx.store.get_policy(workspace_id, name) is not None


async def list_keys(ctx: Context, request: Request) -> Response:
    caller = ctx.authenticate(request.headers, "admin")
    workspace = managed_workspace(ctx, caller, request.path_params["workspace_id"])
    keys = ctx.store.list_keys(workspace.id)
    return json_response({"object": "list", "data": [_key_view(k) for k in keys]})


def _managed_key(ctx: Context, caller: ApiKey, workspace_id: str, key_id: str) -> ApiKey:
    """The named key of a workspace the caller manages; 404 for anything else."""
    workspace = managed_workspace(ctx, caller, workspace_id)
    key = ctx.store.get_key(workspace.id, key_id)
    if key is None:
        raise NotFound(f"No key '{key_id}' in workspace '{workspace_id}'.")
    return key


async def get_key(ctx: Context, request: Request) -> Response:
    caller = ctx.authenticate(request.headers, "admin")
    params = request.path_params
    key = _managed_key(ctx, caller, params["workspace_id"], params["key_id"])
    return json_response(_key_view(key))


async def revoke_key(ctx: Context, request: Request) -> Response:
    """Revoke (never delete: usage records keep naming the key); every process's key cache
    expires within ``CACHE_TTL_S``, so the key stops working everywhere within 1 s."""
    caller = ctx.authenticate(request.headers, "admin")
    params = request.path_params
    key = _managed_key(ctx, caller, params["workspace_id"], params["key_id"])
    if key.gateway_wide and not caller.gateway_wide:
        # A workspace admin must not be able to lock the operator out of the gateway.
        raise PermissionDenied("Only a gateway-wide admin key may revoke a gateway-wide key.")
    revoked = await asyncio.to_thread(ctx.store.revoke_key, key.workspace_id, key.id)
    if revoked is None:  # deleted between the two reads; nothing deletes keys today
        raise NotFound(f"No key '{key.id}' in workspace '{key.workspace_id}'.")
    return json_response(_key_view(revoked))
