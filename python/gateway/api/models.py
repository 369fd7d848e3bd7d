"""GET /v1/models: the OpenAI model list, filtered to what the caller's policy allows.

"Allows" is decided by the router itself: one routing pass over every model the key may use,
under the caller's layered defaults (workspace defaults, key default policy,
``X-Routing-Policy``) and key mode, with no per-request needs. A model is listed when at least
one of its deployments survives.
"""

from __future__ import annotations

from gateway.context import Context
from gateway.edge.http import Request, Response, json_response
from gateway.routing import RouteQuery
from gateway.routing_options import RoutingOptions, merge

_CREATED = 1_700_000_000  # catalog models carry no dates; a fixed value keeps answers stable


async def list_models(ctx: Context, request: Request) -> Response:
    key = await ctx.authenticate(request, "inference")
    catalog = ctx.catalog
    allowed = None if key.allowed_models is None else {m.lower() for m in key.allowed_models}
    names = tuple(
        model.id
        for model in catalog.models
        if allowed is None
        or model.id.lower() in allowed
        or any(a.lower() in allowed for a in model.aliases)
    )
    served: dict[str, set[str]] = {}
    if names:
        defaults = RoutingOptions()
        for _, layer in await ctx.routing_layers(key, request.headers.get("x-routing-policy")):
            defaults = merge(defaults, layer)
        decision = ctx.router.table.route(
            RouteQuery(
                model=names,
                defaults=defaults,
                key_mode=key.mode,
                data_policy_floor=await ctx.data_policy_floor(key.workspace_id),
                byok_providers=await ctx.byok_providers(key),
            )
        )
        for deployment in decision.deployments():
            served.setdefault(deployment.model.id, set()).add(deployment.provider.id)
    data = [
        {
            "id": model.id,
            "object": "model",
            "created": _CREATED,
            "owned_by": sorted(served[model.id])[0],
            "providers": sorted(served[model.id]),
            "kind": model.kind,
        }
        for model in catalog.models
        if model.id in served
    ]
    return json_response({"object": "list", "data": data})
