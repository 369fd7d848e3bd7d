"""GET /health (the process answers) and GET /ready (store reachable, catalog loaded)."""

from __future__ import annotations

from gateway.context import Context
from gateway.errors import ServiceUnavailable
from gateway.http import Request, Response, json_response


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
