"""POST /v1/messages: the Anthropic Messages API inbound (SPEC §5).

The Anthropic request is validated, translated to the gateway's OpenAI chat body
(``anthropic_format.to_openai``) and run through the same pipeline as chat completions
(``chat.run_chat``: model words, suffixes, routing, fallbacks, metering), so any provider can
serve it. The answer is translated back: a ``message`` object (plus ``routing_metadata``), or
the Anthropic event stream made from the gateway's OpenAI stream by the native
``OpenAIToAnthropicRelay``.

Errors keep the SPEC §6 body and add ``"type": "error"`` at the top level, which is what the
Anthropic SDK looks for (docs/behaviour.md).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from gateway import _router_core as core
from gateway.api.anthropic_format import from_openai, to_openai
from gateway.api.chat import new_outcome, run_chat, run_guarded
from gateway.api.outcome import Outcome
from gateway.context import Context
from gateway.edge.http import Request, Response, StreamResponse
from gateway.edge.schemas import AnthropicRequest, convert, decode_object
from gateway.errors import GatewayError

_encoder = msgspec.json.Encoder()
RENAMED = {"extensions.anthropic.top_k": "top_k"}


def error_body(error: GatewayError, request_id: str) -> bytes:
    """SPEC §6 body with Anthropic's top-level ``"type": "error"``."""
    return _encoder.encode(
        {
            "type": "error",
            "error": {
                "message": error.message,
                "type": error.type,
                "code": error.code,
                "param": error.param,
            },
            "request_id": request_id,
        }
    )


async def messages(ctx: Context, request: Request) -> Response | StreamResponse:
    try:
        return await _messages(ctx, request)
    except GatewayError as error:
        headers = {**error.headers, "x-request-id": request.request_id}
        return Response(error_body(error, request.request_id), error.status, headers)


async def _messages(ctx: Context, request: Request) -> Response | StreamResponse:
    key = await ctx.authenticate(request, "inference")
    data = decode_object(request.body)
    outcome = new_outcome(ctx, key, request, data)
    result = await run_guarded(outcome, _run(ctx, request, data, outcome))
    message_id = "msg_" + uuid.uuid4().hex[:24]
    if isinstance(result, dict):
        answer = from_openai(result, message_id=message_id, model=outcome.model_served)
        answer["routing_metadata"] = result.get("routing_metadata")
        return Response(_encoder.encode(answer), headers=outcome.headers(streaming=False))
    return StreamResponse(
        anthropic_events(outcome, result, message_id), headers=outcome.headers(streaming=True)
    )


async def _run(
    ctx: Context, request: Request, data: dict[str, Any], outcome: Outcome
) -> dict[str, Any] | AsyncIterator[bytes]:
    anthropic = convert(data, AnthropicRequest)
    body, warnings = to_openai(anthropic, data)
    return await run_chat(ctx, request, body, outcome, warnings=warnings, renamed=RENAMED)


async def anthropic_events(
    outcome: Outcome, chunks: AsyncIterator[bytes], message_id: str
) -> AsyncIterator[bytes]:
    """The gateway's OpenAI stream (usage chunk and ``[DONE]``, or an ``error`` event)
    re-framed as Anthropic Messages events."""
    plan = outcome.plan
    relay = core.OpenAIToAnthropicRelay(
        model=outcome.model_served,
        message_id=message_id,
        input_tokens=plan.prompt_tokens if plan is not None else 0,
    )
    try:
        async for chunk in chunks:
            out = relay.feed(chunk)
            if out:
                yield out
        out = relay.finish()
        if out:
            yield out
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
