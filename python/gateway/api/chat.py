"""POST /v1/chat/completions: decode, analyse, route, dispatch, answer, meter.

Layers in order: auth (key + scope) → body decode and validation (400 naming ``param``) →
native analysis (tokens, capabilities) → routing plan (one native call) → attempt loop with
fallbacks → OpenAI answer with ``routing_metadata`` and SPEC §4 headers → usage record.

``run_chat`` is that pipeline from the decoded body on; ``/v1/messages`` runs it too, on the
OpenAI body its Anthropic request translates to.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import msgspec

from gateway import _router_core as core
from gateway.api.outcome import Outcome, admit, usage_from_openai
from gateway.api.refusal import refusal_answer, refusal_stream
from gateway.api.stream_legs import Leg, open_leg, relay_for
from gateway.api.stream_rescue import Rescue
from gateway.api.streaming import relay_stream
from gateway.context import Context
from gateway.edge.http import Request, Response, StreamResponse
from gateway.edge.schemas import GATEWAY_FIELDS, ChatRequest, Thinking, convert, decode_object
from gateway.errors import GatewayError, InvalidRequest
from gateway.governance.metering import Usage
from gateway.providers import Provider
from gateway.providers.dispatch import ContentFiltered
from gateway.providers.passthrough import OPENAI_CORE_FIELDS, merged, sanitised
from gateway.routing.catalog import Deployment
from gateway.store.records import ApiKey

_encoder = msgspec.json.Encoder()
T = TypeVar("T")

OPENAI_FIELDS: frozenset[str] = frozenset(ChatRequest.__struct_fields__) - GATEWAY_FIELDS
"""Top-level fields every wire format's provider module understands (SPEC §2)."""
CORE_FIELDS: frozenset[str] = OPENAI_CORE_FIELDS | {"system", "contents", "input", "n"}
"""Top-level fields a passthrough object may not set (SPEC §2 sanitisation)."""
OPENAI_FORMATS = frozenset({"openai", "mock"})
THINKING_DEFAULT_BUDGET = 8000


def reasoning_effort(budget_tokens: int) -> str:
    """SPEC §2: low < 5,000 ≤ medium < 15,000 ≤ high."""
    if budget_tokens < 5000:
        return "low"
    if budget_tokens < 15000:
        return "medium"
    return "high"


def legacy_functions(data: dict[str, Any]) -> dict[str, Any]:
    """``functions``/``function_call`` → ``tools``/``tool_choice`` (SPEC §2); a copy."""
    functions, call = data.get("functions"), data.get("function_call")
    if functions is None and call is None:
        return data
    if data.get("tools") is not None and functions is not None:
        raise InvalidRequest(
            "Send either 'tools' or the legacy 'functions', not both.", param="functions"
        )
    out = {k: v for k, v in data.items() if k not in ("functions", "function_call")}
    if isinstance(functions, list):
        out["tools"] = [{"type": "function", "function": f} for f in functions]
    if isinstance(call, str):
        out.setdefault("tool_choice", call)
    elif isinstance(call, dict) and "tool_choice" not in out:
        out["tool_choice"] = {"type": "function", "function": {"name": call.get("name")}}
    return out


class PayloadBuilder:
    """The upstream payload for each attempted deployment, and what it had to leave out.

    OpenAI-format providers (and the mock) get the OpenAI body with every unknown top-level
    field, ``extensions.thinking`` as ``reasoning_effort`` when the offer can reason, and the
    passthrough objects keyed by the provider's id, an alias or ``openai`` merged on top.
    Other formats get the known OpenAI fields only, plus ``extensions`` reduced to
    ``thinking`` (normalised) and the passthrough objects keyed by their provider id, an
    alias or their format name, for the provider module to translate.
    """

    def __init__(
        self, data: dict[str, Any], chat: ChatRequest, renamed: dict[str, str] | None = None
    ) -> None:
        self.stream = chat.stream
        legacy = legacy_functions(data)
        self.forwarded = {k: v for k, v in legacy.items() if k not in GATEWAY_FIELDS}
        self.renamed = renamed or {}
        extensions = chat.extensions or {}
        self.thinking: Thinking | None = None
        if extensions.get("thinking") is not None:
            self.thinking = convert(extensions["thinking"], Thinking, prefix="extensions.thinking")
        self.passthrough: dict[str, dict[str, Any]] = {}
        for name, value in extensions.items():
            if name == "thinking":
                continue
            self.passthrough[name.lower()] = sanitised(value, CORE_FIELDS, provider=name)
        self.warnings: dict[int, list[str]] = {}

    def _name(self, path: str) -> str:
        return self.renamed.get(path, path)

    def __call__(self, deployment: Deployment) -> dict[str, Any]:
        provider = deployment.provider
        fmt = provider.format
        notes: list[str] = []
        matched: dict[str, Any] = {}
        names = (
            _passthrough_names(provider.id, tuple(provider.aliases), fmt)
            if self.passthrough
            else ()
        )
        for key, value in self.passthrough.items():
            if key in names:
                matched.update(value)
            else:
                for field in value:
                    notes.append(
                        f"{self._name(f'extensions.{key}.{field}')} ignored: not supported by "
                        f"provider '{provider.id}' ({fmt} format)"
                    )
        if fmt in OPENAI_FORMATS:
            payload = dict(self.forwarded)
            self._thinking_openai(payload, deployment, notes)
            if matched:
                payload = merged(payload, matched)  # the passthrough value wins
        else:
            payload = {k: v for k, v in self.forwarded.items() if k in OPENAI_FIELDS}
            notes += [
                f"{k} ignored: not supported by provider '{provider.id}' ({fmt} format)"
                for k in self.forwarded
                if k not in OPENAI_FIELDS
            ]
            extensions: dict[str, Any] = {}
            if self.thinking is not None and self.thinking.enabled:
                extensions["thinking"] = msgspec.structs.asdict(self.thinking)
            if matched:
                extensions[fmt] = matched
            if extensions:
                payload["extensions"] = extensions
        payload["model"] = deployment.provider_model_id
        if self.stream:
            options = payload.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        self.warnings[deployment.row] = notes
        return payload

    def _thinking_openai(
        self, payload: dict[str, Any], deployment: Deployment, notes: list[str]
    ) -> None:
        thinking = self.thinking
        if thinking is None or not thinking.enabled:
            return
        if "reasoning" not in deployment.offer.capabilities:
            notes.append(
                f"extensions.thinking ignored: model '{deployment.model.id}' on provider "
                f"'{deployment.provider.id}' does not reason"
            )
        elif payload.get("reasoning_effort") is not None:
            notes.append("extensions.thinking ignored because reasoning_effort is set")
        else:
            payload["reasoning_effort"] = reasoning_effort(thinking.budget_tokens)


@functools.lru_cache(maxsize=1024)
def _passthrough_names(provider_id: str, aliases: tuple[str, ...], fmt: str) -> frozenset[str]:
    """The ``extensions`` keys a provider takes passthrough objects from (lower-cased): its
    id, its aliases, and ``openai`` for an OpenAI-format provider or else its format."""
    return frozenset(
        {
            provider_id.lower(),
            *(a.lower() for a in aliases),
            "openai" if fmt in OPENAI_FORMATS else fmt,
        }
    )


async def chat_completions(ctx: Context, request: Request) -> Response | StreamResponse:
    key = await ctx.authenticate(request, "inference")
    data = decode_object(request.body)
    outcome = new_outcome(ctx, key, request, data)
    result = await run_guarded(outcome, run_chat(ctx, request, data, outcome, body=request.body))
    if isinstance(result, dict):
        return Response(_encoder.encode(result), headers=outcome.headers(streaming=False))
    return StreamResponse(result, headers=outcome.headers(streaming=True))


def new_outcome(ctx: Context, key: ApiKey, request: Request, data: dict[str, Any]) -> Outcome:
    requested = data.get("model")
    return Outcome(
        ctx,
        key,
        request.request_id,
        model_requested=requested if isinstance(requested, str) else "auto",
    )


async def run_guarded(outcome: Outcome, work: Awaitable[T]) -> T:
    """Await ``work``; a ``GatewayError`` is metered and given the SPEC §4 headers."""
    try:
        return await work
    except GatewayError as error:
        outcome.record(status=error.status, error=error)
        error.headers.update(outcome.headers(streaming=False))
        raise


async def run_chat(
    ctx: Context,
    request: Request,
    data: dict[str, Any],
    outcome: Outcome,
    *,
    body: bytes | None = None,
    warnings: list[str] | None = None,
    renamed: dict[str, str] | None = None,
) -> dict[str, Any] | AsyncIterator[bytes]:
    """The chat pipeline on a decoded OpenAI body: the finished, metered ``chat.completion``
    (with ``routing_metadata``), or the OpenAI SSE byte stream that meters itself.
    ``body`` is the encoded form of ``data`` when the caller has it; ``warnings`` are the
    caller's own notes for ``routing_metadata.warnings``; ``renamed`` maps internal option
    paths to the names the caller used (for warnings)."""
    begin = time.perf_counter()
    chat = outcome.chat = convert(data, ChatRequest)
    if chat.model is not None and chat.models is not None:
        raise InvalidRequest("Send either 'model' or 'models', not both.", param="models")
    build = PayloadBuilder(data, chat, renamed)
    try:
        analysis = core.analyze(body if body is not None else _encoder.encode(data))
    except ValueError as exc:
        raise InvalidRequest(f"Request body could not be analysed: {exc}") from None
    expressions = chat.models or [chat.model or "auto"]
    plan = outcome.plan = await ctx.plan(
        request,
        outcome.key,
        expressions=expressions,
        analysis=analysis,
        request_options=chat.routing,
        started=begin,
    )
    await admit(
        outcome, prompt_tokens=analysis.prompt_tokens, max_output=analysis.max_output_tokens
    )

    def served(deployment: Deployment) -> None:
        outcome.deployment = deployment
        outcome.warnings = [*(warnings or []), *build.warnings.get(deployment.row, [])]

    if chat.stream:
        make = relay_for(f"chatcmpl-{outcome.request_id}", int(time.time()))
        rescue = Rescue(outcome, build, make)

        async def open_stream(
            provider: Provider, deployment: Deployment, payload: dict[str, Any]
        ) -> Leg:
            rescue.opened_at(deployment.row)
            return await open_leg(provider, deployment, payload, make)

        try:
            leg, deployment, first_token_s = await ctx.dispatcher.run(
                plan, build, open_stream, outcome.chain
            )
        except ContentFiltered as refusal:
            served(refusal.deployment)
            return refusal_stream(outcome, refusal)
        served(deployment)
        outcome.ttft_ms = outcome.elapsed_ms
        ctx.health.observe(deployment.row, ttft_ms=first_token_s * 1000.0)
        return relay_stream(outcome, leg, rescue)

    def complete(
        provider: Provider, deployment: Deployment, payload: dict[str, Any]
    ) -> Awaitable[dict[str, Any]]:
        return provider.complete(deployment, payload)  # the provider's own coroutine

    try:
        answer, deployment, seconds = await ctx.dispatcher.run(plan, build, complete, outcome.chain)
    except ContentFiltered as refusal:
        served(refusal.deployment)
        return refusal_answer(outcome, refusal)
    served(deployment)
    outcome.usage = usage_from_openai(answer.get("usage"))
    if outcome.usage is not None and outcome.usage.output_tokens and seconds > 0:
        ctx.health.observe(deployment.row, tps=outcome.usage.output_tokens / seconds)
    if outcome.usage is None:
        outcome.usage = Usage(input_tokens=analysis.prompt_tokens, output_tokens=_estimate(answer))
        outcome.usage_estimated = True
    answer["model"] = deployment.model.id
    answer["routing_metadata"] = outcome.routing_metadata()
    outcome.record(status=200)
    return answer


def _estimate(answer: dict[str, Any]) -> int:
    """Completion tokens when the provider reported none: ~4 characters a token."""
    chars = 0
    for choice in answer.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            chars += len(message["content"])
    return (chars + 3) // 4
