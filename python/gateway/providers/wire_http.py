"""Thin aiohttp I/O shared by every wire format (OpenAI-compatible, Anthropic, Gemini).

One keep-alive session per provider (aiohttp: httpx's pool measured 5-18x slower on this
path, see docs/decisions.md), created inside the serving event loop. A whole answer within
``total``. A stream has two separate deadlines: ``first_byte`` covers connect, response
headers and the first body byte; ``stall`` applies only between body chunks after that (so a
short ``stall`` never cuts the wait for the first byte). Every client-library exception
becomes an ``AttemptFailure``. Error bodies are read
as ``{"error": {"message", "type"?, "status"?}}``: OpenAI's, Anthropic's
``{"type": "error", "error": {…}}`` and Google's shapes all fit. Every secret the gateway
holds, this client's key included, is masked in any message kept (``secrets_held.scrub``).

A BYOK attempt uses a ``view``: a client for one attempt that sends the workspace's key
instead of the platform key and shares the platform client's session (its connection pool),
so the workspace key lives only as long as the attempt that needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import msgspec

from gateway.config import ProviderConfig
from gateway.providers.base import AttemptFailure, FailureKind, UpstreamStream, Wire
from gateway.providers.meaning import meaning_of_400
from gateway.secrets_held import scrub

_encoder = msgspec.json.Encoder()
# Error types that mean "the provider is overloaded or broken", whatever the status says.
_SERVER_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "UNAVAILABLE", "INTERNAL"})


def classify_status(status: int) -> FailureKind:
    """SPEC §6 upstream mapping: which statuses may fail over and what they become."""
    if status == 429:
        return "rate_limited"
    if status == 401:
        return "auth_error"
    if status == 400:
        return "bad_request"
    if status == 504:
        return "timeout"
    if status >= 500:
        return "server_error"
    return "client_error"


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _transport_failure(exc: BaseException, what: str) -> AttemptFailure:
    if isinstance(exc, asyncio.TimeoutError):
        return AttemptFailure("timeout", what)
    # A refused or unresolvable connection is an outage; one dropped after it was made
    # (reset, server disconnected, a cut body) may be a one-off.
    reset = not isinstance(exc, aiohttp.ClientConnectorError)
    return AttemptFailure("connect_error", f"connection failed: {type(exc).__name__}", reset=reset)


class WireClient:
    """POSTs JSON to one provider and maps every outcome to a body or an ``AttemptFailure``."""

    def __init__(
        self,
        config: ProviderConfig,
        api_key: str | None,
        headers: Mapping[str, str],
        *,
        owner: WireClient | None = None,
    ) -> None:
        self.config = config
        self._api_key = api_key
        self._headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",
            **config.headers,
            **headers,
        }
        self._owner = owner
        self._session: aiohttp.ClientSession | None = None

    def view(self, api_key: str, headers: Mapping[str, str]) -> WireClient:
        """A client that sends ``headers`` (carrying ``api_key``) in place of this one's auth
        headers, over this client's session; closing this client closes it too."""
        return WireClient(self.config, api_key, headers, owner=self)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._owner is not None:
            return self._owner.session
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=30),
                auto_decompress=True,
            )
        return self._session

    def redact(self, text: str) -> str:
        """``text`` with every held secret and this client's key masked, then cut."""
        return scrub(text, self._api_key)

    def failure(self, status: int, retry_after: str | None, body: bytes) -> AttemptFailure:
        message = f"upstream answered HTTP {status}"
        kind: FailureKind = classify_status(status)
        try:
            detail = msgspec.json.decode(body)
        except msgspec.DecodeError:
            detail = None
        error = detail.get("error") if isinstance(detail, dict) else None
        if isinstance(error, dict):
            if error.get("message"):
                message = str(error["message"])
            error_type = error.get("type") or error.get("status")
            if error_type in _SERVER_ERROR_TYPES and kind == "client_error":
                kind = "server_error"
            if kind == "bad_request" and _invalid_key(error):
                kind = "auth_error"
        elif isinstance(error, str):
            message = error
        if kind == "bad_request":
            kind = meaning_of_400(error if isinstance(error, dict) else None, message)
        if status == 529:  # Anthropic: overloaded
            kind = "server_error"
        return AttemptFailure(
            kind, self.redact(message), status=status, retry_after=_retry_after(retry_after)
        )

    async def post_json(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        timeouts = self.config.timeout_s
        timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.first_byte)
        try:
            async with self.session.post(
                url, data=_encoder.encode(body), headers=self._headers, timeout=timeout
            ) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("retry-after")
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_failure(exc, f"no answer within {timeouts.total:g} s") from None
        if status != 200:
            raise self.failure(status, retry_after, raw)
        try:
            answer = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise AttemptFailure("server_error", "upstream sent a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise AttemptFailure("server_error", "upstream sent a body that is not an object")
        return answer

    async def get(self, url: str) -> tuple[int, str | None, bytes]:
        """GET ``url``: (status, Retry-After, body); transport failures as ``AttemptFailure``."""
        timeouts = self.config.timeout_s
        timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.first_byte)
        try:
            async with self.session.get(url, headers=self._headers, timeout=timeout) as response:
                return response.status, response.headers.get("retry-after"), await response.read()
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_failure(exc, f"no answer within {timeouts.total:g} s") from None

    async def _open(self, url: str, body: dict[str, Any], wire: Wire) -> UpstreamStream:
        timeouts = self.config.timeout_s
        # No sock_read here: until the first byte, only open_stream's first-byte deadline runs.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.first_byte)
        response = await self.session.post(
            url, data=_encoder.encode(body), headers=self._headers, timeout=timeout
        )
        try:
            if response.status != 200:
                raw = await response.read()
                raise self.failure(response.status, response.headers.get("retry-after"), raw)
            first = await response.content.readany()
            if not first:
                raise AttemptFailure("server_error", "upstream closed the stream empty")
            _start_stall_timer(response, timeouts.stall)
        except BaseException:
            response.close()
            raise

        async def close() -> None:
            response.release()

        return UpstreamStream(first=first, rest=self._rest(response), close=close, wire=wire)

    async def _rest(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        stall = self.config.timeout_s.stall
        try:
            while chunk := await response.content.readany():
                yield chunk
        except asyncio.TimeoutError:
            raise AttemptFailure("timeout", f"the stream stalled for {stall:g} s") from None
        except aiohttp.ClientError as exc:
            raise AttemptFailure(
                "stream_error", f"the stream was cut ({type(exc).__name__})"
            ) from None

    async def open_stream(self, url: str, body: dict[str, Any], wire: Wire) -> UpstreamStream:
        """The caller bounds the whole wait for the first token by ``first_byte``
        (``api/stream_legs.open_leg``); here only the connect is."""
        first_byte = self.config.timeout_s.first_byte
        try:
            return await self._open(url, body, wire)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_failure(exc, f"no first byte within {first_byte:g} s") from None

    async def aclose(self) -> None:
        """Close the session (a view owns none: its owner's ``aclose`` closes it)."""
        if self._session is not None:
            await self._session.close()


def _start_stall_timer(response: aiohttp.ClientResponse, stall: float) -> None:
    """From the first body byte on, fail a read when the upstream sends nothing for
    ``stall`` seconds: aiohttp's own ``sock_read`` timer on the connection (re-armed on every
    byte received, no per-chunk cost), switched on only now so that it never shortens the
    first-byte deadline. Each request on a pooled connection resets it (``sock_read=None``)."""
    connection = response.connection
    protocol = connection.protocol if connection is not None else None
    if protocol is not None:
        protocol.read_timeout = stall
        protocol.start_timeout()


def _invalid_key(error: dict[str, Any]) -> bool:
    """Google answers a bad key with 400 INVALID_ARGUMENT and reason API_KEY_INVALID."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason") == "API_KEY_INVALID":
            return True
    return "API key not valid" in str(error.get("message", ""))
