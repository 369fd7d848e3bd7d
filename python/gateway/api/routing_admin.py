"""Management API (SPEC §8): a workspace's routing defaults and named routing policies.

- ``GET/PATCH /v1/workspaces/{id}/routing-defaults``: the workspace layer of the SPEC §2
  precedence chain. PATCH takes a partial object: a present field replaces that field (nested
  ``weights`` as a whole), an explicit ``null`` clears it, ``{}`` clears everything.
- ``GET /v1/workspaces/{id}/policies`` and ``GET/PUT/DELETE …/policies/{name}``: named
  ``RoutingOptions`` bundles for ``X-Routing-Policy`` and key default policies. A workspace
  policy shadows the config policy of the same name for that workspace only; config policies
  are listed (``source: config``) but cannot be changed or deleted here.

Every body is validated like a request's ``routing`` object (400 naming ``param``), plus what
the struct cannot say: providers must be known to the catalog, and one key source at most.
Ownership is checked as in ``management``: another workspace's ids answer 404. A write drops
this process's cached copy at once; other processes pick it up within ``CACHE_TTL_S``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from gateway.api.management import managed_workspace
from gateway.context import Context
from gateway.edge.http import Request, Response, json_response
from gateway.edge.schemas import convert, decode_object
from gateway.errors import InvalidRequest, NotFound, PolicyConflict
from gateway.routing_options import ROUTING_FIELDS, RoutingOptions
from gateway.store.records import Workspace

POLICY_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_PROVIDER_FIELDS = ("providers", "exclude_providers")


def _workspace(ctx: Context, request: Request) -> Workspace:
    caller = ctx.authenticate_blocking(request, "admin")
    return managed_workspace(ctx, caller, request.path_params["workspace_id"])


def _validated(ctx: Context, data: dict[str, Any], given: Iterable[str]) -> RoutingOptions:
    """``data`` as ``RoutingOptions``; the catalog checks apply to the ``given`` fields."""
    for name in data:
        if name not in ROUTING_FIELDS:
            raise InvalidRequest(f"Unknown routing option '{name}'.", param=name)
    options = convert(data, RoutingOptions)
    for field in _PROVIDER_FIELDS:
        if field not in given:
            continue
        for provider in getattr(options, field) or ():
            if ctx.catalog.provider(provider) is None:
                raise InvalidRequest(f"Unknown provider '{provider}' in '{field}'.", param=field)
    if options.only_byok and options.only_platform:
        raise InvalidRequest(
            "'only_byok' and 'only_platform' cannot both be true.", param="only_byok"
        )
    return options


# --- routing defaults -------------------------------------------------------------------


async def get_routing_defaults(ctx: Context, request: Request) -> Response:
    workspace = _workspace(ctx, request)
    return json_response(ctx.store.get_routing_defaults(workspace.id))


async def patch_routing_defaults(ctx: Context, request: Request) -> Response:
    workspace = _workspace(ctx, request)
    changes = decode_object(request.body)
    if changes:
        current = msgspec.to_builtins(ctx.store.get_routing_defaults(workspace.id))
        options = _validated(ctx, {**current, **changes}, changes.keys())
    else:
        options = RoutingOptions()
    ctx.store.set_routing_defaults(workspace.id, options)
    ctx.workspace_routing.invalidate(workspace.id)
    return json_response(options)


# --- named policies ---------------------------------------------------------------------


def _policy_view(name: str, options: RoutingOptions, source: str) -> dict[str, object]:
    return {"object": "routing_policy", "name": name, "options": options, "source": source}


async def list_policies(ctx: Context, request: Request) -> Response:
    workspace = _workspace(ctx, request)
    own = ctx.store.list_policies(workspace.id)
    views = [_policy_view(n, o, "workspace") for n, o in own.items()]
    views += [_policy_view(n, o, "config") for n, o in ctx.config.policies.items() if n not in own]
    views.sort(key=lambda view: str(view["name"]))
    return json_response({"object": "list", "data": views})


async def get_policy(ctx: Context, request: Request) -> Response:
    workspace = _workspace(ctx, request)
    name = request.path_params["name"]
    own = ctx.store.get_policy(workspace.id, name)
    if own is not None:
        return json_response(_policy_view(name, own, "workspace"))
    configured = ctx.config.policies.get(name)
    if configured is not None:
        return json_response(_policy_view(name, configured, "config"))
    raise NotFound(f"No routing policy '{name}' in workspace '{workspace.id}'.")


async def put_policy(ctx: Context, request: Request) -> Response:
    """Create (201) or replace (200) the workspace's policy of that name."""
    workspace = _workspace(ctx, request)
    name = request.path_params["name"]
    if not POLICY_NAME.fullmatch(name):
        raise InvalidRequest(
            f"Invalid policy name '{name}': use 1-64 characters of [a-z0-9_-].", param="name"
        )
    body = decode_object(request.body)
    options = _validated(ctx, body, body.keys())
    existed = ctx.store.get_policy(workspace.id, name) is not None
    ctx.store.put_policy(workspace.id, name, options)
    ctx.workspace_routing.invalidate(workspace.id)
    return json_response(_policy_view(name, options, "workspace"), status=200 if existed else 201)


async def delete_policy(ctx: Context, request: Request) -> Response:
    """Delete the workspace's own policy (a shadowed config policy shows again).

    Refused (409) while an active key of the workspace names it as its default policy and no
    config policy of that name would take over: that key's every request would fail.
    """
    workspace = _workspace(ctx, request)
    name = request.path_params["name"]
    if ctx.store.get_policy(workspace.id, name) is None:
        if name in ctx.config.policies:
            raise InvalidRequest(
                f"'{name}' is a config policy: it cannot be deleted through the API, only "
                "shadowed by a workspace policy of the same name.",
                param="name",
            )
        raise NotFound(f"No routing policy '{name}' in workspace '{workspace.id}'.")
    if name not in ctx.config.policies:
        users = [
            key.id
            for key in ctx.store.list_keys(workspace.id)
            if key.status == "active" and key.default_policy == name
        ]
        if users:
            raise PolicyConflict(
                f"Routing policy '{name}' is the default policy of active key(s) "
                f"{', '.join(users)}; revoke them first.",
                param="name",
            )
    if not ctx.store.delete_policy(workspace.id, name):  # deleted concurrently
        raise NotFound(f"No routing policy '{name}' in workspace '{workspace.id}'.")
    ctx.workspace_routing.invalidate(workspace.id)
    return json_response({"object": "routing_policy", "name": name, "deleted": True})
