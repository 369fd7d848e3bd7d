"""POST /v1/embeddings: the OpenAI embeddings API, routed among embedding offers.

Same layers as chat: auth → decode and validation → a token count of the input → routing
plan (capability ``embeddings``: a policy word such as ``auto`` selects embedding models only)
→ attempt loop with fallbacks (a provider's ``embed``) → the OpenAI ``list`` answer, in input
order, with ``routing_metadata`` and the SPEC §4 headers → usage record (prompt tokens at
the offer's input price).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway import _router_core as core
from gateway.api.chat import new_outcome, run_guarded
from gateway.api.outcome import Outcome, admit
from gateway.context import Context
from gateway.edge.http import Request, Response
from gateway.edge.schemas import (
    GATEWAY_FIELDS,
    MAX_EMBEDDING_INPUTS,
    EmbeddingRequest,
    convert,
    decode_object,
)
from gateway.errors import InvalidRequest
from gateway.governance.metering import Usage
from gateway.providers import AttemptFailure, Provider
from gateway.routing.catalog import Deployment
from gateway.routing.planner import RoutePlan

_encoder = msgspec.json.Encoder()
MAX_INPUTS = MAX_EMBEDDING_INPUTS


@dataclass(frozen=True, slots=True)
class EmbeddingFacts:
    """What routing reads of an embeddings request (``routing.planner.PromptFacts``).

    ``prompt_tokens`` is the largest single input: the context window bounds each input,
    not their sum."""

    prompt_tokens: int
    max_output_tokens: int | None = None
    required_capabilities: int = core.CAP_EMBEDDINGS
    task: int = 0
    difficulty: float = 0.0


def input_items(value: object) -> list[str | list[int]]:
    """The inputs of ``input`` in order; a 400 naming ``input`` when it has no valid shape."""
    items: list[Any]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and value and all(_token(v) for v in value):
        items = [value]  # one token array
    elif isinstance(value, list):
        items = value
    else:
        items = []
    if not items or len(items) > MAX_INPUTS:
        raise InvalidRequest(f"'input' must hold 1 to {MAX_INPUTS} inputs.", param="input")
    for index, item in enumerate(items):
        text_ok = isinstance(item, str) and item != ""
        tokens_ok = isinstance(item, list) and item and all(_token(v) for v in item)
        if not (text_ok or tokens_ok):
            raise InvalidRequest(
                "Each input must be a non-empty string or a non-empty array of token ids.",
                param=f"input.{index}" if isinstance(value, list) else "input",
            )
    return items


def _token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(item: str | list[int]) -> int:
    if isinstance(item, list):
        return len(item)
    return core.count_tokens(item, encoding="cl100k_base")


async def embeddings(ctx: Context, request: Request) -> Response:
    key = await ctx.authenticate(request, "inference")
    data = decode_object(request.body)
    outcome = new_outcome(ctx, key, request, data)
    answer = await run_guarded(outcome, _serve(ctx, request, data, outcome))
    return Response(_encoder.encode(answer), headers=outcome.headers(streaming=False))


async def _serve(
    ctx: Context, request: Request, data: dict[str, Any], outcome: Outcome
) -> dict[str, Any]:
    begin = time.perf_counter()
    body = convert(data, EmbeddingRequest)
    outcome.gateway_metadata = body.gateway_metadata
    if body.model is not None and body.models is not None:
        raise InvalidRequest("Send either 'model' or 'models', not both.", param="models")
    items = input_items(body.input)
    counts = [_count(item) for item in items]
    plan = outcome.plan = await ctx.plan(
        request,
        outcome.key,
        expressions=body.models or [body.model or "auto"],
        analysis=EmbeddingFacts(prompt_tokens=max(counts)),
        request_options=body.routing,
        started=begin,
    )
    if body.dimensions is not None:
        check_dimensions(body.dimensions, plan)
    await admit(outcome, prompt_tokens=sum(counts), max_output=None)
    forwarded = {k: v for k, v in data.items() if k not in GATEWAY_FIELDS}

    def payload_for(deployment: Deployment) -> dict[str, Any]:
        return {**forwarded, "model": deployment.provider_model_id}

    async def embed(
        provider: Provider, deployment: Deployment, payload: dict[str, Any]
    ) -> dict[str, Any]:
        call = getattr(provider, "embed", None)
        if call is None:
            raise AttemptFailure(
                "client_error", f"the {deployment.provider.format} format serves no embeddings"
            )
        answer: dict[str, Any] = await call(deployment, payload)
        return _in_order(answer, len(items))

    answer, deployment, _ = await ctx.dispatcher.run(plan, payload_for, embed, outcome.chain)
    outcome.deployment = deployment
    usage = answer.get("usage")
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(prompt, int) and not isinstance(prompt, bool):
        outcome.usage = Usage(input_tokens=prompt)
    else:
        outcome.usage = Usage(input_tokens=sum(counts))
        outcome.usage_estimated = True
        answer["usage"] = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    answer["model"] = deployment.model.id
    answer["routing_metadata"] = outcome.routing_metadata()
    outcome.record(status=200)
    return answer


def check_dimensions(dimensions: int, plan: RoutePlan) -> None:
    """A 400 naming ``dimensions`` when it exceeds the native size of every planned model
    whose size the catalog knows (a vector is never longer than its model's own)."""
    known = [d.model.dimensions for d in plan.deployments if d.model.dimensions is not None]
    if known and dimensions > max(known):
        raise InvalidRequest(
            f"'dimensions' {dimensions} exceeds the model's native size of {max(known)}.",
            param="dimensions",
        )


def _in_order(answer: dict[str, Any], expected: int) -> dict[str, Any]:
    """The answer with ``data`` sorted by ``index``; one embedding per input or a failure."""
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != expected:
        raise AttemptFailure("server_error", f"upstream did not return {expected} embeddings")
    try:
        ordered = sorted(data, key=lambda item: int(item["index"]))
    except (KeyError, TypeError, ValueError):
        raise AttemptFailure("server_error", "upstream embeddings lack an index") from None
    if [int(item["index"]) for item in ordered] != list(range(expected)):
        raise AttemptFailure("server_error", "upstream embedding indices do not match the input")
    return {**answer, "object": "list", "data": ordered}
