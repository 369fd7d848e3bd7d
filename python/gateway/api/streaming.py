"""Relaying an upstream stream to the client through the native relay for its wire format.

The native relay (``OpenAIStreamRelay``, or ``AnthropicStreamRelay`` / ``GeminiStreamRelay``
which translate into OpenAI chunks; chosen by ``UpstreamStream.wire``) frames, rewrites and
meters every event; this module only forwards its bytes and decides how the stream ends:

- ``[DONE]`` seen, or a clean end after a ``finish_reason``: one final chunk with
  ``choices: []``, ``usage`` and ``routing_metadata``, then ``data: [DONE]``;
- an upstream error event, a cut or stalled connection, or an end with no ``finish_reason``:
  an SSE ``error`` event in the SPEC §6 shape and no ``[DONE]`` (a truncated answer is never
  presented as a success). Partial usage is metered either way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Literal, Protocol

import msgspec

from gateway import _router_core as core
from gateway.api.outcome import Outcome
from gateway.errors import GatewayError, ProviderError, ProviderTimeout, provider_headers
from gateway.metering import Usage
from gateway.providers import AttemptFailure, UpstreamStream
from gateway.secrets_held import scrub

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
CLIENT_CLOSED = 499  # nginx's convention for "client closed the request"


class Relay(Protocol):
    """What every native stream relay offers (see ``_router_core.pyi``)."""

    def feed(self, data: bytes, /) -> bytes: ...
    def finish(self) -> bytes: ...
    @property
    def done(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    @property
    def chunk_id(self) -> str | None: ...
    @property
    def created(self) -> int | None: ...
    @property
    def usage(self) -> tuple[int, int, int, int] | None: ...
    @property
    def content_chars(self) -> int: ...
    @property
    def finish_reason(self) -> str | None: ...


def new_relay(outcome: Outcome, upstream: UpstreamStream) -> Relay:
    """The native relay for the upstream's wire format; translated chunks carry the id
    ``chatcmpl-<request id>``."""
    if upstream.wire == "openai":
        return core.OpenAIStreamRelay(model=outcome.model_served)
    chunk_id, created = f"chatcmpl-{outcome.request_id}", int(time.time())
    if upstream.wire == "anthropic":
        return core.AnthropicStreamRelay(
            model=outcome.model_served, chunk_id=chunk_id, created=created
        )
    return core.GeminiStreamRelay(model=outcome.model_served, chunk_id=chunk_id, created=created)


async def relay_stream(outcome: Outcome, upstream: UpstreamStream) -> AsyncIterator[bytes]:
    relay = new_relay(outcome, upstream)
    try:
        async for out in _relay(outcome, upstream, relay):
            yield out
    finally:
        if not outcome.recorded:  # the client went away: meter what was delivered
            _settle_usage(outcome, relay)
            outcome.record(status=CLIENT_CLOSED)


async def _relay(outcome: Outcome, upstream: UpstreamStream, relay: Relay) -> AsyncIterator[bytes]:
    deployment = outcome.deployment
    assert deployment is not None
    health = outcome.ctx.health
    started = time.perf_counter()
    failure: GatewayError | None = None
    try:
        out = relay.feed(upstream.first)
        if out:
            yield out
        while not (relay.done or relay.error):
            try:
                chunk = await anext(upstream.rest)
            except StopAsyncIteration:
                break
            out = relay.feed(chunk)
            if out:
                yield out
        out = relay.finish()
        if out:
            yield out
    except AttemptFailure as cut:
        kind = ProviderTimeout if cut.kind == "timeout" else ProviderError
        failure = kind(f"Provider '{deployment.provider.id}': {cut.message}.")
        health.failure(deployment.row, cut.kind)
    finally:
        await upstream.close()
    if failure is None:
        failure = _stream_failure(deployment.provider.id, relay)
    _settle_usage(outcome, relay)
    if failure is not None:
        failure.headers.update(provider_headers(deployment.provider.id, "stream_error", False))
        outcome.record(status=failure.status, error=failure)
        yield b"event: error\ndata: " + failure.body(outcome.request_id) + b"\n\n"
        return
    seconds = time.perf_counter() - started
    if outcome.usage is not None and outcome.usage.output_tokens and seconds > 0:
        health.observe(deployment.row, tps=outcome.usage.output_tokens / seconds)
    outcome.record(status=200)
    yield b"data: " + _encoder.encode(_final_chunk(outcome, relay)) + b"\n\ndata: [DONE]\n\n"


def _stream_failure(provider: str, relay: Relay) -> GatewayError | None:
    if relay.error is not None:
        message = "the provider reported an error mid-stream"
        try:
            detail = _decoder.decode(relay.error)
            inner = detail.get("error") if isinstance(detail, dict) else None
            if isinstance(inner, dict) and inner.get("message"):
                message = str(inner["message"])
        except msgspec.DecodeError:
            pass
        return ProviderError(f"Provider '{provider}': {scrub(message)}")
    if not relay.done and relay.finish_reason is None:
        return ProviderError(f"Provider '{provider}': the stream ended before the answer did.")
    return None


# Exact encodings of the OpenAI model families (``ModelConfig.family``); others are estimated.
_FAMILY_ENCODINGS: dict[str, Literal["o200k_base", "cl100k_base"]] = {
    "gpt-4o": "o200k_base",
    "gpt-4.1": "o200k_base",
    "o-series": "o200k_base",
    "gpt-5": "o200k_base",
    "gpt-oss": "o200k_base",
    "text-embedding-3": "cl100k_base",
}


def _settle_usage(outcome: Outcome, relay: Relay) -> None:
    """The upstream's usage, or (marked ``usage_estimated``) the plan's prompt tokens and the
    forwarded completion counted exactly for an OpenAI-family model on the OpenAI wire,
    else estimated at about 4 characters per token."""
    reported = relay.usage
    if reported is not None:
        prompt, completion, cached, reasoning = reported
        outcome.usage = Usage(prompt, completion, cached, reasoning)
        return
    plan = outcome.plan
    if isinstance(relay, core.OpenAIStreamRelay):
        family = outcome.deployment.model.family if outcome.deployment else None
        encoding = _FAMILY_ENCODINGS.get(family) if family else None
        completion = relay.completion_tokens(encoding=encoding)
    else:
        completion = (relay.content_chars + 3) // 4
    outcome.usage = Usage(
        input_tokens=plan.prompt_tokens if plan else 0,
        output_tokens=completion,
    )
    outcome.usage_estimated = True


def _final_chunk(outcome: Outcome, relay: Relay) -> dict[str, object]:
    usage = outcome.usage or Usage()
    deployment = outcome.deployment
    assert deployment is not None
    body: dict[str, object] = {
        "id": relay.chunk_id or f"chatcmpl-{outcome.request_id}",
        "object": "chat.completion.chunk",
        "created": relay.created or 0,
        "model": deployment.model.id,
        "choices": [],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        },
        "routing_metadata": outcome.routing_metadata(),
    }
    return body
