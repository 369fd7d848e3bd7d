"""POST /v1/chat/completions: decode, analyse, route, dispatch, answer, meter.

Layers in order: auth (key + scope) → body decode and validation (400 naming ``param``) →
native analysis (tokens, capabilities) → routing plan (one native call) → attempt loop with
fallbacks → OpenAI answer with ``routing_metadata`` and SPEC §4 headers → usage record.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from gateway import _router_core as core
from gateway.api.outcome import Outcome, usage_from_openai
from gateway.api.streaming import relay_stream
from gateway.catalog import Deployment
from gateway.context import Context
from gateway.errors import GatewayError, InvalidRequest
from gateway.http import Request, Response, StreamResponse
from gateway.metering import Usage
from gateway.providers import Provider, UpstreamStream
from gateway.schemas import GATEWAY_FIELDS, ChatRequest, convert, decode_object

_encoder = msgspec.json.Encoder()


async def chat_completions(ctx: Context, request: Request) -> Response | StreamResponse:
    key = ctx.authenticate(request.headers, "inference")
    data = decode_object(request.body)
    requested = data.get("model")
    outcome = Outcome(
        ctx,
        key,
        request.request_id,
        model_requested=requested if isinstance(requested, str) else "auto",
    )
    try:
        return await _serve(ctx, request, data, outcome)
    except GatewayError as error:
        outcome.record(status=error.status, error=error)
        error.headers.update(outcome.headers(streaming=False))
        raise


async def _serve(
    ctx: Context, request: Request, data: dict[str, Any], outcome: Outcome
) -> Response | StreamResponse:
    begin = time.perf_counter()
    chat = outcome.chat = convert(data, ChatRequest)
    if chat.model is not None and chat.models is not None:
        raise InvalidRequest("Send either 'model' or 'models', not both.", param="models")
    try:
        analysis = core.analyze(request.body)
    except ValueError as exc:
        raise InvalidRequest(f"Request body could not be analysed: {exc}") from None
    expressions = chat.models or [chat.model or "auto"]
    plan = outcome.plan = ctx.router.plan(
        expressions=expressions,
        analysis=analysis,
        key=outcome.key,
        layers=ctx.routing_layers(outcome.key, request.headers.get("x-routing-policy")),
        request_options=chat.routing,
        data_policy_floor=ctx.data_policy_floor(outcome.key.workspace_id),
        started=begin,
    )
    forwarded = {k: v for k, v in data.items() if k not in GATEWAY_FIELDS}

    def payload_for(deployment: Deployment) -> dict[str, Any]:
        payload = dict(forwarded)
        payload["model"] = deployment.provider_model_id
        if chat.stream:
            options = payload.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return payload

    if chat.stream:

        async def open_stream(
            provider: Provider, deployment: Deployment, payload: dict[str, Any]
        ) -> UpstreamStream:
            return await provider.stream(deployment, payload)

        upstream, outcome.deployment, first_byte_s = await ctx.dispatcher.run(
            plan, payload_for, open_stream, outcome.chain
        )
        outcome.ttft_ms = outcome.elapsed_ms
        ctx.health.observe(outcome.deployment.row, ttft_ms=first_byte_s * 1000.0)
        return StreamResponse(
            relay_stream(outcome, upstream), headers=outcome.headers(streaming=True)
        )

    async def complete(
        provider: Provider, deployment: Deployment, payload: dict[str, Any]
    ) -> dict[str, Any]:
        return await provider.complete(deployment, payload)

    answer, deployment, seconds = await ctx.dispatcher.run(
        plan, payload_for, complete, outcome.chain
    )
    outcome.deployment = deployment
    outcome.usage = usage_from_openai(answer.get("usage"))
    if outcome.usage is not None and outcome.usage.output_tokens and seconds > 0:
        ctx.health.observe(deployment.row, tps=outcome.usage.output_tokens / seconds)
    if outcome.usage is None:
        outcome.usage = Usage(input_tokens=analysis.prompt_tokens, output_tokens=_estimate(answer))
        outcome.usage_estimated = True
    answer["model"] = deployment.model.id
    answer["routing_metadata"] = outcome.routing_metadata()
    outcome.record(status=200)
    return Response(_encoder.encode(answer), headers=outcome.headers(streaming=False))


def _estimate(answer: dict[str, Any]) -> int:
    """Completion tokens when the provider reported none: ~4 characters a token."""
    chars = 0
    for choice in answer.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            chars += len(message["content"])
    return (chars + 3) // 4
