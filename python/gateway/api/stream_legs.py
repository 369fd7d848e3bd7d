"""One attempt's stream (a leg): opened, relayed to OpenAI chunks, and held until its first token.

A stream attempt succeeds only when its first token arrives: the first chunk that carries
content, a tool call or a finish reason, within the provider's ``timeout_s.first_byte``.
Response headers, a role-only chunk or keep-alives do not count, so a provider that answers
200 and then sits silent is failed over at that deadline, before anything reached the client
(docs/behaviour.md, "Streams"). The chunks read until then are held in ``Leg.pending``; an
error event or an unusable chunk before the first token fails the attempt the same way. One
that arrives in the same read as the first token leaves a leg that is already broken: its
pending chunks are never sent, and the answer restarts on another leg (``api/streaming.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from gateway import _router_core as core
from gateway.governance.metering import Usage
from gateway.providers import AttemptFailure, Provider, UpstreamStream
from gateway.providers.base import Wire
from gateway.routing.catalog import Deployment
from gateway.secrets_held import scrub

_decoder = msgspec.json.Decoder()


class Relay(Protocol):
    """What every native stream relay offers (see ``_router_core.pyi``)."""

    def feed(self, data: bytes, /) -> bytes: ...
    def finish(self) -> bytes: ...
    @property
    def done(self) -> bool: ...
    @property
    def halted(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    @property
    def malformed(self) -> int: ...
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


RelayFor = Callable[[Deployment, Wire], Relay]


def relay_for(chunk_id: str, created: int) -> RelayFor:
    """Relays for a stream whose translated chunks carry ``chunk_id`` and ``created`` (an
    OpenAI-format upstream's chunks keep their own)."""

    def make(deployment: Deployment, wire: Wire) -> Relay:
        model = deployment.model.id
        if wire == "openai":
            return core.OpenAIStreamRelay(model=model)
        if wire == "anthropic":
            return core.AnthropicStreamRelay(model=model, chunk_id=chunk_id, created=created)
        return core.GeminiStreamRelay(model=model, chunk_id=chunk_id, created=created)

    return make


@dataclass(slots=True)
class Leg:
    """One attempt's open stream."""

    deployment: Deployment
    upstream: UpstreamStream
    relay: Relay
    pending: list[bytes]
    """Client bytes read up to the first token, not yet sent."""
    stitch: core.StreamStitch | None = None
    """Set on a continuation: rewrites its chunks into the stream the client is reading."""
    prefill_chars: int = 0
    usage: tuple[Usage, bool] | None = field(default=None)
    """(usage, estimated) once the leg has ended."""


def has_first_token(relay: Relay) -> bool:
    return relay.content_chars > 0 or relay.finish_reason is not None or relay.done


def stream_error_message(relay: Relay) -> str:
    """The upstream's own words from its error event (scrubbed), or a generic phrase."""
    message = "the provider reported an error mid-stream"
    if relay.error is not None:
        try:
            detail = _decoder.decode(relay.error)
            inner = detail.get("error") if isinstance(detail, dict) else None
            if isinstance(inner, dict) and inner.get("message"):
                message = str(inner["message"])
        except msgspec.DecodeError:
            pass
    return scrub(message)


MALFORMED = "the stream sent a chunk that is not a valid chat.completion.chunk"


def _early_failure(relay: Relay) -> AttemptFailure:
    if relay.error is not None:
        return AttemptFailure("server_error", stream_error_message(relay))
    return AttemptFailure("malformed_chunk", MALFORMED)


async def open_leg(
    client: Provider, deployment: Deployment, payload: dict[str, Any], make: RelayFor
) -> Leg:
    """Open a stream at ``deployment`` and read it up to its first token; raise an
    ``AttemptFailure`` when that token does not come within ``timeout_s.first_byte`` or the
    stream fails first. Nothing is sent to the client here."""
    first_byte = deployment.provider.timeout_s.first_byte
    try:
        return await asyncio.wait_for(_open(client, deployment, payload, make), first_byte)
    except asyncio.TimeoutError:
        raise AttemptFailure("timeout", f"no first token within {first_byte:g} s") from None


async def _open(
    client: Provider, deployment: Deployment, payload: dict[str, Any], make: RelayFor
) -> Leg:
    upstream = await client.stream(deployment, payload)
    try:
        relay = make(deployment, upstream.wire)
        pending = await _until_first_token(upstream, relay)
    except BaseException:  # a failure, or the deadline's cancellation
        await upstream.close()
        raise
    return Leg(deployment, upstream, relay, pending)


async def _until_first_token(upstream: UpstreamStream, relay: Relay) -> list[bytes]:
    pending: list[bytes] = []
    out = relay.feed(upstream.first)
    if out:
        pending.append(out)
    while not has_first_token(relay):
        if relay.halted:
            raise _early_failure(relay)
        try:
            chunk = await anext(upstream.rest)
        except StopAsyncIteration:
            out = relay.finish()
            if out:
                pending.append(out)
            if has_first_token(relay):
                break
            if relay.halted:
                raise _early_failure(relay) from None
            ended = "the stream ended before its first token"
            raise AttemptFailure("stream_error", ended) from None
        out = relay.feed(chunk)
        if out:
            pending.append(out)
    return pending
