"""Thin upstream I/O shared by every wire format (OpenAI-compatible, Anthropic, Gemini).

One keep-alive connection pool per provider (``http1``: a lean HTTP/1.1 client on asyncio
protocols, measured against aiohttp and httpx in docs/decisions.md), created inside the
serving event loop. A whole answer within
``total``. A stream has two separate deadlines: ``first_byte`` covers connect, response
headers and the first body byte; ``stall`` applies only between body chunks after that (so a
short ``stall`` never cuts the wait for the first byte). Every client-library exception
becomes an ``AttemptFailure``. Error bodies are read
as ``{"error": {"message", "type"?, "status"?}}``: OpenAI's, Anthropic's
``{"type": "error", "error": {…}}`` and Google's shapes all fit. Every secret the gateway
holds, this client's key included, is masked in any message kept (``secrets_held.scrub``).

A BYOK attempt uses a ``view``: a client for one attempt that sends the workspace's key
instead of the platform key and shares the platform client's connection pool,
so the workspace key lives only as long as the attempt that needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec

from gateway.config import ProviderConfig
from gateway.providers.base import AttemptFailure, FailureKind, UpstreamStream, Wire
from gateway.providers.http1 import ConnectError, Connection, Pool, Response, Target, header_block
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


def _transport_failure(exc: OSError, what: str) -> AttemptFailure:
    """``exc`` from ``http1`` as an attempt failure; ``what`` names a deadline that passed
    (``asyncio.TimeoutError`` is an ``OSError`` since Python 3.11)."""
    if isinstance(exc, asyncio.TimeoutError):
        return AttemptFailure("timeout", what)
    # A refused or unresolvable connection is an outage; one dropped after it was made
    # (reset, server disconnected, a cut body) may be a one-off.
    if isinstance(exc, ConnectError):
        return AttemptFailure("connect_error", str(exc))
    return AttemptFailure("connect_error", f"connection failed: {exc}", reset=True)


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
        self._pool: Pool | None = None
        try:
            self._block: bytes | None = header_block(self._headers)
        except ValueError:
            self._block = None  # every request fails with a clear message, no secret in it

    def view(self, api_key: str, headers: Mapping[str, str]) -> WireClient:
        """A client that sends ``headers`` (carrying ``api_key``) in place of this one's auth
        headers, over this client's session; closing this client closes it too."""
        return WireClient(self.config, api_key, headers, owner=self)

    @property
    def pool(self) -> Pool:
        if self._owner is not None:
            return self._owner.pool
        if self._pool is None:
            self._pool = Pool()
        return self._pool

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

    def _request(self, method: bytes, target: Target, body: bytes) -> bytes:
        if self._block is None:
            raise AttemptFailure("client_error", "a header for this provider holds a line break")
        head = b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (
            method,
            target.path,
            target.host_header,
            len(body),
        )
        return b"".join((head, self._block, b"\r\n", body))

    async def _exchange(
        self, method: bytes, url: str, body: bytes, total: float | None
    ) -> tuple[Connection, Response]:
        """Send one request on a pooled connection and read the answer's head; the caller
        reads the body and hands the connection back (``pool.release``)."""
        pool = self.pool
        target = pool.target(url)
        request = self._request(method, target, body)
        started = pool.loop.time()
        conn = pool.idle(target) or await pool.connect(target, self.config.timeout_s.first_byte)
        try:
            left = None if total is None else total - (pool.loop.time() - started)
            conn.send(request, left)
            return conn, await conn.head()
        except BaseException:
            conn.close()
            raise

    async def _whole(self, method: bytes, url: str, body: bytes) -> tuple[Response, bytes]:
        total = self.config.timeout_s.total
        try:
            conn, response = await self._exchange(method, url, body, total)
            try:  # the body has usually arrived with the head: no wait then
                raw = conn.take_body() if conn.complete else await conn.read_all()
            finally:
                self.pool.release(conn)
        except OSError as exc:
            raise _transport_failure(exc, f"no answer within {total:g} s") from None
        return response, raw

    async def post_json(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        response, raw = await self._whole(b"POST", url, _encoder.encode(body))
        if response.status != 200:
            raise self.failure(response.status, response.headers.get("retry-after"), raw)
        try:
            answer = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise AttemptFailure("server_error", "upstream sent a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise AttemptFailure("server_error", "upstream sent a body that is not an object")
        return answer

    async def get(self, url: str) -> tuple[int, str | None, bytes]:
        """GET ``url``: (status, Retry-After, body); transport failures as ``AttemptFailure``."""
        response, raw = await self._whole(b"GET", url, b"")
        return response.status, response.headers.get("retry-after"), raw

    async def open_stream(self, url: str, body: dict[str, Any], wire: Wire) -> UpstreamStream:
        """The caller bounds the whole wait for the first token by ``first_byte``
        (``api/stream_legs.open_leg``); here only the connect is. From the first body byte
        on, a read fails when the upstream sends nothing for ``stall`` seconds (never
        shortening the first-byte wait)."""
        timeouts = self.config.timeout_s
        what = f"no first byte within {timeouts.first_byte:g} s"
        try:
            conn, response = await self._exchange(b"POST", url, _encoder.encode(body), None)
        except OSError as exc:
            raise _transport_failure(exc, what) from None
        try:
            if response.status != 200:
                raw = await conn.read_all()
                raise self.failure(response.status, response.headers.get("retry-after"), raw)
            first = await conn.read_some()
            if not first:
                raise AttemptFailure("server_error", "upstream closed the stream empty")
            conn.set_stall(timeouts.stall)
        except OSError as exc:
            conn.close()
            raise _transport_failure(exc, what) from None
        except BaseException:
            conn.close()
            raise

        async def close() -> None:
            self.pool.release(conn)

        return UpstreamStream(first=first, rest=self._rest(conn), close=close, wire=wire)

    async def _rest(self, conn: Connection) -> AsyncIterator[bytes]:
        stall = self.config.timeout_s.stall
        try:
            while chunk := await conn.read_some():
                yield chunk
        except asyncio.TimeoutError:
            raise AttemptFailure("timeout", f"the stream stalled for {stall:g} s") from None
        except OSError as exc:
            raise AttemptFailure("stream_error", f"the stream was cut ({exc})") from None

    async def aclose(self) -> None:
        """Close the pool's connections (a view owns none: its owner's ``aclose`` does)."""
        if self._pool is not None:
            self._pool.close()


def _invalid_key(error: dict[str, Any]) -> bool:
    """Google answers a bad key with 400 INVALID_ARGUMENT and reason API_KEY_INVALID."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason") == "API_KEY_INVALID":
            return True
    return "API key not valid" in str(error.get("message", ""))
