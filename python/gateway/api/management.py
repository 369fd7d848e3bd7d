"""The management API (SPEC §8) — workspaces and keys (routing settings: ``routing_admin``;
workspace writes: ``workspaces_admin``; rotation and per-key usage: ``key_rotation``).

Every route checks that the caller's key may manage the workspace it names; another
workspace's ids answer 404, never 403, so ids cannot be probed. The operations themselves
(``issue_key``, ``revoke``, the views) take ``AdminDeps`` so the CLI runs the same code.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated

import msgspec

from gateway.api import key_options
from gateway.api.admin_deps import AdminDeps
from gateway.api.bodies import convert_body
from gateway.api.usage import iso_utc
from gateway.context import Context
from gateway.edge.auth import new_key_record, utc_now
from gateway.edge.http import Request, Response, json_response
from gateway.edge.schemas import decode_object
from gateway.errors import InvalidRequest, NotFound, PermissionDenied
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


def workspace_view(workspace: Workspace) -> dict[str, object]:
    return {
        "id": workspace.id,
        "object": "workspace",
        "name": workspace.name,
        "slug": workspace.slug,
        "created_at": workspace.created_at,
        "rpm_limit": workspace.rpm_limit,
        "tpm_limit": workspace.tpm_limit,
        "max_cost_per_request": workspace.max_cost_per_request,
    }


def key_view(key: ApiKey, now_iso: str | None = None) -> dict[str, object]:
    """What listings show of a key: never its secret nor its hash (SPEC §7)."""
    return {
        "id": key.id,
        "object": "api_key",
        "prefix": key.prefix,
        "name": key.name,
        "mode": key.mode,
        "scopes": list(key.scopes),
        "status": key_options.key_status(key, now_iso or utc_now()),
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "expires_at": key.expires_at,
        "allowed_models": key.allowed_models,
        "ip_allowlist": key.ip_allowlist,
        "default_policy": key.default_policy,
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "max_cost_per_request": key.max_cost_per_request,
        "gateway_wide": key.gateway_wide,
    }


def managed_workspace(ctx: Context, caller: ApiKey, workspace_id: str) -> Workspace:
    """The workspace if the caller may manage it; 404 (never 403) for anything else."""
    workspace = ctx.store.get_workspace(workspace_id)
    if workspace is None or not (caller.gateway_wide or caller.workspace_id == workspace.id):
        raise NotFound(f"No workspace '{workspace_id}'.")
    return workspace


def admin_workspace(ctx: Context, request: Request) -> Workspace:
    """Authenticate an admin key and return the workspace the path names, if it may."""
    caller = ctx.authenticate_blocking(request, "admin")
    return managed_workspace(ctx, caller, request.path_params["workspace_id"])


async def list_workspaces(ctx: Context, request: Request) -> Response:
    caller = await ctx.authenticate(request, "admin")
    workspaces = [
        w for w in ctx.store.list_workspaces() if caller.gateway_wide or w.id == caller.workspace_id
    ]
    return json_response({"object": "list", "data": [workspace_view(w) for w in workspaces]})


async def get_workspace(ctx: Context, request: Request) -> Response:
    return json_response(workspace_view(admin_workspace(ctx, request)))


# --- keys ---------------------------------------------------------------------------------


def issue_key(deps: AdminDeps, workspace_id: str, data: dict[str, object]) -> tuple[str, ApiKey]:
    """Validate a create body, store the new key; returns its secret (shown once) and record."""
    body = convert_body(data, KeyCreate)
    if body.default_policy is not None and not _policy_exists(
        deps, workspace_id, body.default_policy
    ):
        raise InvalidRequest(
            f"Unknown routing policy '{body.default_policy}'.", param="default_policy"
        )
    secret, record = new_key_record(
        hash_key=deps.hash_key,
        workspace_id=workspace_id,
        name=body.name,
        mode=body.mode,
        scopes=tuple(body.scopes),
        allowed_models=tuple(body.allowed_models) if body.allowed_models is not None else None,
        ip_allowlist=key_options.ip_allowlist(body.ip_allowlist),
        default_policy=body.default_policy,
        rpm_limit=body.rpm_limit,
        tpm_limit=body.tpm_limit,
        max_cost_per_request=body.max_cost_per_request,
        expires_at=key_options.expires_at(body.expires_at, datetime.now(timezone.utc)),
    )
    deps.store.create_key(record)
    return secret, record


def _policy_exists(deps: AdminDeps, workspace_id: str, name: str) -> bool:
    """A config policy or one of the workspace's own (read fresh from the store)."""
    return name in deps.config.policies or deps.store.get_policy(workspace_id, name) is not None


def key_in(deps: AdminDeps, workspace_id: str, key_id: str) -> ApiKey:
    """The workspace's key of that id; 404 otherwise."""
    key = deps.store.get_key(workspace_id, key_id)
    if key is None:
        raise NotFound(f"No key '{key_id}' in workspace '{workspace_id}'.")
    return key


def revoke(deps: AdminDeps, key: ApiKey, *, by_gateway_admin: bool) -> ApiKey:
    """Revoke (never delete: usage records keep naming the key). A workspace admin must not
    be able to lock the operator out of the gateway, so a gateway-wide key needs one too."""
    if key.gateway_wide and not by_gateway_admin:
        raise PermissionDenied("Only a gateway-wide admin key may revoke a gateway-wide key.")
    revoked = deps.store.revoke_key(key.workspace_id, key.id)
    if revoked is None:  # deleted between the two reads; nothing deletes keys today
        raise NotFound(f"No key '{key.id}' in workspace '{key.workspace_id}'.")
    return revoked


async def create_key(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    secret, record = issue_key(ctx, workspace.id, decode_object(request.body))
    return json_response({**key_view(record), "key": secret}, status=201)


async def list_keys(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    now = iso_utc(datetime.now(timezone.utc))
    keys = ctx.store.list_keys(workspace.id)
    return json_response({"object": "list", "data": [key_view(k, now) for k in keys]})


def managed_key(ctx: Context, request: Request) -> tuple[ApiKey, ApiKey]:
    """The caller and the key the path names, in a workspace the caller manages (else 404)."""
    caller = ctx.authenticate_blocking(request, "admin")
    workspace = managed_workspace(ctx, caller, request.path_params["workspace_id"])
    return caller, key_in(ctx, workspace.id, request.path_params["key_id"])


async def get_key(ctx: Context, request: Request) -> Response:
    _, key = managed_key(ctx, request)
    return json_response(key_view(key))


async def revoke_key(ctx: Context, request: Request) -> Response:
    """Every process's key cache expires within ``CACHE_TTL_S``, so the key stops working
    everywhere within 1 s."""
    caller, key = managed_key(ctx, request)
    revoked = await asyncio.to_thread(revoke, ctx, key, by_gateway_admin=caller.gateway_wide)
    return json_response(key_view(revoked))
