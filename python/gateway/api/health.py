"""GET /health (the process answers) and GET /ready (store reachable, catalog loaded)."""

from __future__ import annotations

from gateway.context import Context
from gateway.edge.http import Request, Response, json_response
from gateway.errors import ServiceUnavailable


async def health(ctx: Context, request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(ctx: Context, request: Request) -> Response:
    if not await ctx.offload(ctx.store.ping):
        raise ServiceUnavailable("The store is not reachable.")
    return json_response(
        {
            "status": "ready",
            "models": len(ctx.catalog.models),
            "deployments": len(ctx.catalog.deployments),
        }
    )
