"""Relaying an upstream stream to the client through the native relay for its wire format.

The native relay (``OpenAIStreamRelay``, or ``AnthropicStreamRelay`` / ``GeminiStreamRelay``
which translate into OpenAI chunks) frames, rewrites and meters every event; this module
forwards its bytes and decides how the stream ends:

- ``[DONE]`` seen, or a clean end after a ``finish_reason``: one final chunk with
  ``choices: []``, ``usage`` (the sum over every attempt) and ``routing_metadata``, then
  ``data: [DONE]``;
- a cut or stalled connection, an upstream error event, a chunk the relay cannot use (it halts
  there: what follows a hole is not the answer) or an end with no ``finish_reason``: the
  answer is continued on another attempt (``stream_rescue``) and the client keeps reading one
  stream; when no candidate can continue it, an SSE ``error`` event in the documented shape
  saying why, and no ``[DONE]`` (a truncated answer is never presented as a success). Every
  attempt's usage is metered either way.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterable
from typing import Literal

import msgspec

from gateway import _router_core as core
from gateway.api.outcome import Outcome
from gateway.api.stream_legs import MALFORMED, Leg, Relay, stream_error_message
from gateway.api.stream_rescue import KEPT_BYTES, Rescue
from gateway.errors import GatewayError, ProviderError, ProviderTimeout, provider_headers
from gateway.governance.metering import Usage
from gateway.providers import AttemptFailure

_encoder = msgspec.json.Encoder()
CLIENT_CLOSED = 499  # nginx's convention for "client closed the request"


class Run:
    """One client stream across its legs: the client bytes kept for a continuation, the
    chunk id and ``created`` every chunk carries, and the leg being read."""

    def __init__(self, outcome: Outcome, leg: Leg) -> None:
        self.outcome = outcome
        self.leg = leg
        self.sent: list[bytes] = []
        self.kept = 0
        relay = leg.relay
        self.ids = (relay.chunk_id or f"chatcmpl-{outcome.request_id}", relay.created or 0)
        self.legs: list[Leg] = [leg]

    def keep(self, out: bytes, stitch: core.StreamStitch | None) -> bytes:
        """``out`` as the client gets it (stitched on a continuation), kept for one."""
        if out and stitch is not None:
            out = stitch.feed(out)
        if out:
            self.kept += len(out)
            if self.kept <= KEPT_BYTES:
                self.sent.append(out)
        return out

    def replay(self, leg: Leg) -> list[bytes]:
        """The client bytes a leg read up to its first token, as the client gets them."""
        pending, leg.pending = leg.pending, []
        return [out for raw in pending if (out := self.keep(raw, leg.stitch))]

    def settle(self, leg: Leg) -> None:
        """Meter ``leg`` (once) and fold every leg's usage into the outcome."""
        if leg.usage is None:
            leg.usage = _leg_usage(self.outcome, leg)
        outcome = self.outcome
        usages = [(leg.deployment, leg.usage[0]) for leg in self.legs if leg.usage is not None]
        outcome.legs = usages
        outcome.usage = _sum(u for _, u in usages)
        outcome.usage_estimated = any(leg.usage[1] for leg in self.legs if leg.usage)
        outcome.deployment = leg.deployment


async def relay_stream(outcome: Outcome, leg: Leg, rescue: Rescue) -> AsyncIterator[bytes]:
    run = Run(outcome, leg)
    try:
        async for out in _relay(run, rescue):
            yield out
    finally:
        if not outcome.recorded:  # the client went away: meter what was delivered
            run.settle(run.leg)
            outcome.record(status=CLIENT_CLOSED)


async def _relay(run: Run, rescue: Rescue) -> AsyncIterator[bytes]:
    outcome = run.outcome
    while True:
        leg = run.leg
        relay, stitch, sent = leg.relay, leg.stitch, run.sent
        started = time.perf_counter()
        cut: AttemptFailure | None = None
        try:
            if relay.halted and _break(relay, None) is not None:
                leg.pending = []  # broke in its first read: none of it goes, it restarts
            for out in run.replay(leg):
                yield out
            while not relay.halted:  # the hot loop: ``run.keep`` inlined
                try:
                    chunk = await anext(leg.upstream.rest)
                except StopAsyncIteration:
                    break
                out = relay.feed(chunk)
                if out:
                    if stitch is not None:
                        out = stitch.feed(out)
                    run.kept += len(out)
                    if run.kept <= KEPT_BYTES:
                        sent.append(out)
                    yield out
            out = run.keep(relay.finish(), stitch)
            if out:
                yield out
        except AttemptFailure as failure:
            cut = failure
        finally:
            await leg.upstream.close()
        run.settle(leg)
        next_leg = await _after_break(run, rescue, cut)
        if next_leg is None:
            break
        if isinstance(next_leg, GatewayError):
            outcome.record(status=next_leg.status, error=next_leg)
            yield b"event: error\ndata: " + next_leg.body(outcome.request_id) + b"\n\n"
            return
        run.leg = next_leg
        run.legs.append(next_leg)
    seconds = time.perf_counter() - started
    usage = leg.usage[0] if leg.usage is not None else None
    if usage is not None and usage.output_tokens and seconds > 0:
        outcome.ctx.health.observe(leg.deployment.row, tps=usage.output_tokens / seconds)
    outcome.record(status=200)
    yield b"data: " + _encoder.encode(final_chunk(outcome, run.ids)) + b"\n\ndata: [DONE]\n\n"


async def _after_break(
    run: Run, rescue: Rescue, cut: AttemptFailure | None
) -> Leg | GatewayError | None:
    """None when the leg ended with a whole answer; else the leg that continues it, or the
    error that ends the stream."""
    leg = run.leg
    broken = _break(leg.relay, cut)
    if broken is None:
        return None
    reason, what = broken
    deployment = leg.deployment
    run.outcome.ctx.health.failure(deployment.row, cut.kind if cut is not None else "stream_error")
    _mark_failed(run.outcome, leg, reason)
    next_leg = await rescue.resume(run.sent, run.kept <= KEPT_BYTES, leg, run.ids)
    if isinstance(next_leg, str):
        return _failure(deployment.provider.id, what, next_leg, cut)
    return next_leg


def _break(relay: Relay, cut: AttemptFailure | None) -> tuple[str, str] | None:
    """(chain reason, what happened) when the leg did not end with a whole answer."""
    if cut is not None:
        return ("stream_stalled" if cut.kind == "timeout" else "stream_cut"), cut.message
    if relay.error is not None:
        return "upstream_error_event", stream_error_message(relay)
    if relay.malformed:
        return "malformed_chunk", MALFORMED
    if not relay.done and relay.finish_reason is None:
        return "stream_cut", "the stream ended before the answer did"
    return None


def _mark_failed(outcome: Outcome, leg: Leg, reason: str) -> None:
    """The chain's entry for this leg (its last) said success when it opened: it broke."""
    for i in range(len(outcome.chain) - 1, -1, -1):
        attempt = outcome.chain[i]
        if attempt.provider == leg.deployment.provider.id and attempt.status == "success":
            outcome.chain[i] = dataclasses.replace(attempt, status="failed", reason=reason)
            return


def _failure(provider: str, what: str, why: str, cut: AttemptFailure | None) -> GatewayError:
    kind = ProviderTimeout if cut is not None and cut.kind == "timeout" else ProviderError
    failure = kind(
        f"Provider '{provider}': {what}; the answer could not be continued: {why}.",
        headers=provider_headers(provider, "stream_error", False),
    )
    return failure


# Exact encodings of the OpenAI model families (``ModelConfig.family``); others are estimated.
_FAMILY_ENCODINGS: dict[str, Literal["o200k_base", "cl100k_base"]] = {
    "gpt-4o": "o200k_base",
    "gpt-4.1": "o200k_base",
    "o-series": "o200k_base",
    "gpt-5": "o200k_base",
    "gpt-oss": "o200k_base",
    "text-embedding-3": "cl100k_base",
}


def _leg_usage(outcome: Outcome, leg: Leg) -> tuple[Usage, bool]:
    """(usage, estimated): the upstream's usage, or the plan's prompt tokens (plus the
    prefill's, ~4 characters a token) and the forwarded completion counted exactly for an
    OpenAI-family model on the OpenAI wire, else estimated at about 4 characters per token."""
    relay = leg.relay
    reported = relay.usage
    if reported is not None:
        prompt, completion, cached, reasoning = reported
        return Usage(prompt, completion, cached, reasoning), False
    plan = outcome.plan
    if isinstance(relay, core.OpenAIStreamRelay):
        family = leg.deployment.model.family
        encoding = _FAMILY_ENCODINGS.get(family) if family else None
        completion = relay.completion_tokens(encoding=encoding)
    else:
        completion = (relay.content_chars + 3) // 4
    prompt = (plan.prompt_tokens if plan else 0) + (leg.prefill_chars + 3) // 4
    return Usage(input_tokens=prompt, output_tokens=completion), True


def _sum(usages: Iterable[Usage]) -> Usage:
    total = Usage()
    for u in usages:
        total = Usage(
            total.input_tokens + u.input_tokens,
            total.output_tokens + u.output_tokens,
            total.cached_tokens + u.cached_tokens,
            total.reasoning_tokens + u.reasoning_tokens,
        )
    return total


def final_chunk(outcome: Outcome, ids: tuple[str, int]) -> dict[str, object]:
    usage = outcome.usage or Usage()
    deployment = outcome.deployment
    assert deployment is not None
    body: dict[str, object] = {
        "id": ids[0],
        "object": "chat.completion.chunk",
        "created": ids[1],
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
