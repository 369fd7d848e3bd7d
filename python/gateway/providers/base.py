"""What every provider module offers the attempt loop: two calls and one failure type.

A provider turns an OpenAI-shaped payload into an upstream call and hands back either an
OpenAI ``chat.completion`` dict or an OpenAI-format SSE byte stream. Anything that goes wrong
is an ``AttemptFailure`` that says whether another candidate may be tried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.routing.catalog import Deployment

FailureKind = Literal[
    "rate_limited",
    "server_error",
    "timeout",
    "connect_error",
    "bad_request",
    "auth_error",
    "client_error",
    "stream_error",
    "malformed_chunk",
    "context_length",
    "content_filter",
]
Wire = Literal["openai", "anthropic", "gemini"]
RETRYABLE: frozenset[str] = frozenset(
    {"rate_limited", "server_error", "timeout", "connect_error", "stream_error", "malformed_chunk"}
)
"""Failures another candidate may be tried after. A ``stream_error`` or ``malformed_chunk`` (a
stream cut, or sending what cannot be used) reaches the attempt loop only before the first
token: after it, the stream is continued instead (``api/stream_rescue.py``)."""


@dataclass
class AttemptFailure(Exception):
    """One failed attempt at one deployment."""

    kind: FailureKind
    message: str
    status: int | None = None
    retry_after: float | None = None
    reset: bool = False
    """The connection was dropped after it was made (not refused): worth one quick retry."""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass
class UpstreamStream:
    """An upstream stream that has produced its first bytes (nothing sent to the client yet).

    ``wire`` names the stream's event format, which picks the native relay that turns it into
    OpenAI chunks (``api/streaming.py``)."""

    first: bytes
    rest: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]] = field(repr=False)
    wire: Wire = "openai"


class Provider(Protocol):
    async def complete(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]: ...

    def with_key(self, api_key: str) -> Provider:
        """This provider for one attempt with a workspace's own key (BYOK): the same client
        and connection pool, another key; never kept beyond the attempt."""
        ...

    async def stream(self, deployment: Deployment, payload: dict[str, Any]) -> UpstreamStream: ...

    async def aclose(self) -> None: ...
