"""Management API (SPEC §8): creating a workspace and changing one.

- ``POST /v1/workspaces`` needs the gateway-wide admin key: a workspace's own admin keys are
  confined to that workspace, so they cannot make new tenants. Body ``{name, slug?}``; a slug
  is 1-64 characters of ``[a-z0-9-]`` (no hyphen at either end), derived from the name when
  absent (``-2``, ``-3``, … appended until free). A slug given and already taken is a 409
  ``policy_conflict`` naming ``slug``, like the other conflicts with stored state.
- ``PATCH /v1/workspaces/{id}`` changes ``name``, ``rpm_limit``, ``tpm_limit`` and
  ``max_cost_per_request``; ``null`` clears a limit; the slug never changes (ids and slugs are
  what scripts hold on to). Any admin of the workspace may change it: an admin key is trusted
  with everything inside its workspace.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Annotated

import msgspec

from gateway.api.bodies import convert_body
from gateway.api.management import admin_workspace, workspace_view
from gateway.context import Context
from gateway.edge.auth import utc_now
from gateway.edge.http import Request, Response, json_response
from gateway.edge.schemas import decode_object
from gateway.errors import PermissionDenied, PolicyConflict
from gateway.store import Store
from gateway.store.records import Workspace

SLUG = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_DERIVED_MAX = 48
_NON_SLUG = re.compile(r"[^a-z0-9]+")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Slug = Annotated[str, msgspec.Meta(pattern=f"^{SLUG}$")]
Rpm = Annotated[int, msgspec.Meta(ge=1)]
CostCeiling = Annotated[float, msgspec.Meta(gt=0)]


class WorkspaceCreate(msgspec.Struct, kw_only=True):
    name: Name
    slug: Slug | None = None


class WorkspacePatch(msgspec.Struct, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    rpm_limit: Rpm | msgspec.UnsetType | None = msgspec.UNSET
    tpm_limit: Rpm | msgspec.UnsetType | None = msgspec.UNSET
    max_cost_per_request: CostCeiling | msgspec.UnsetType | None = msgspec.UNSET


def slug_from_name(name: str) -> str:
    """A readable slug: ASCII-folded, lower-case, runs of anything else become one hyphen."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _NON_SLUG.sub("-", folded.lower()).strip("-")[:_DERIVED_MAX].strip("-")
    return slug or "workspace"


def _free_slug(store: Store, base: str) -> str:
    if store.get_workspace_by_slug(base) is None:
        return base
    for n in range(2, 1000):
        candidate = f"{base}-{n}"
        if store.get_workspace_by_slug(candidate) is None:
            return candidate
    return f"{base}-{uuid.uuid4().hex[:8]}"


def _taken(slug: str) -> PolicyConflict:
    return PolicyConflict(f"The slug '{slug}' is already taken.", param="slug")


def create_workspace_record(store: Store, data: dict[str, object]) -> Workspace:
    """Validate and store a new workspace; 409 when the slug given is taken."""
    body = convert_body(data, WorkspaceCreate)
    if body.slug is not None and store.get_workspace_by_slug(body.slug) is not None:
        raise _taken(body.slug)
    slug = body.slug or _free_slug(store, slug_from_name(body.name))
    workspace = Workspace(
        id="ws_" + uuid.uuid4().hex[:24], name=body.name, slug=slug, created_at=utc_now()
    )
    try:
        store.create_workspace(workspace)
    except Exception:
        # The store's own uniqueness check: another create took the slug meanwhile.
        if store.get_workspace_by_slug(slug) is not None:
            raise _taken(slug) from None
        raise
    return workspace


async def create_workspace(ctx: Context, request: Request) -> Response:
    caller = await ctx.authenticate(request, "admin")
    if not caller.gateway_wide:
        raise PermissionDenied("Only the gateway-wide admin key may create workspaces.")
    workspace = create_workspace_record(ctx.store, decode_object(request.body))
    return json_response(workspace_view(workspace), status=201)


def patched(workspace: Workspace, data: dict[str, object]) -> Workspace:
    """The workspace with the body's fields applied (absent: kept, ``null``: cleared)."""
    body = convert_body(data, WorkspacePatch)
    changes = {
        field: value
        for field in WorkspacePatch.__struct_fields__
        if (value := getattr(body, field)) is not msgspec.UNSET
    }
    return msgspec.structs.replace(workspace, **changes)


async def patch_workspace(ctx: Context, request: Request) -> Response:
    """Limits take effect in every process within the governance rules' cache TTL (1 s)."""
    workspace = admin_workspace(ctx, request)
    updated = patched(workspace, decode_object(request.body))
    ctx.store.update_workspace(updated)
    ctx.rules.invalidate(workspace.id)
    return json_response(workspace_view(updated))
