"""GET /v1/models: the OpenAI model list, filtered to what the caller's key may route to."""

from __future__ import annotations

from gateway.context import Context
from gateway.http import Request, Response, json_response

_CREATED = 1_700_000_000  # catalog models carry no dates; a fixed value keeps answers stable


async def list_models(ctx: Context, request: Request) -> Response:
    key = ctx.authenticate(request.headers, "inference")
    catalog = ctx.catalog
    usable = catalog.usable_providers
    allowed = None if key.allowed_models is None else {m.lower() for m in key.allowed_models}
    served: dict[str, set[str]] = {}
    for deployment in catalog.deployments:
        index = catalog.provider_index[deployment.provider.id]
        is_mock = index == catalog.mock_index
        if (key.mode == "test") != is_mock or not usable[index]:
            continue
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
        and (allowed is None or model.id in allowed or any(a in allowed for a in model.aliases))
    ]
    return json_response({"object": "list", "data": data})
