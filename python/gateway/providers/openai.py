"""OpenAI wire format: OpenAI itself and every compatible API (DeepSeek, Groq, Mistral, xAI,
Together, Fireworks, OpenRouter, vLLM, Ollama, llama.cpp, TGI).

One keep-alive ``aiohttp.ClientSession`` per provider (httpx's pool measured 5-18x slower
on this path: see docs/decisions.md). Timeouts: connect and first byte within
``first_byte``, a whole non-streaming answer within ``total``, and at most ``stall`` between
two stream reads. Client-library exceptions never leave this module: they become
``AttemptFailure``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec

from gateway.catalog import Deployment
from gateway.config import ProviderConfig
from gateway.providers.base import AttemptFailure, FailureKind, UpstreamStream

_encoder = msgspec.json.Encoder()
_MAX_MESSAGE = 500


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
    return AttemptFailure("connect_error", f"connection failed: {type(exc).__name__}")


class OpenAIProvider:
    """Calls one OpenAI-format provider with its platform key."""

    def __init__(self, config: ProviderConfig, api_key: str | None) -> None:
        self.config = config
        self._api_key = api_key
        base = (config.base_url or "").rstrip("/")
        self._url = base + "/chat/completions"
        self._embeddings_url = base + "/embeddings"
        self._headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",
            **config.headers,
        }
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the serving event loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=30),
                auto_decompress=True,
            )
        return self._session

    def _redact(self, text: str) -> str:
        text = text[:_MAX_MESSAGE]
        return text.replace(self._api_key, "***") if self._api_key else text

    def _failure(self, status: int, retry_after: str | None, body: bytes) -> AttemptFailure:
        message = f"upstream answered HTTP {status}"
        try:
            detail = msgspec.json.decode(body)
        except msgspec.DecodeError:
            detail = None
        if isinstance(detail, dict):
            error = detail.get("error")
            if isinstance(error, dict) and error.get("message"):
                message = str(error["message"])
            elif isinstance(error, str):
                message = error
        return AttemptFailure(
            classify_status(status),
            self._redact(message),
            status=status,
            retry_after=_retry_after(retry_after),
        )

    async def complete(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        answer = await self._post_json(self._url, payload)
        if not isinstance(answer.get("choices"), list):
            raise AttemptFailure("server_error", "upstream sent no chat completion")
        return answer

    async def embed(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /embeddings; the OpenAI ``list`` of ``embedding`` objects, as sent."""
        answer = await self._post_json(self._embeddings_url, payload)
        if not isinstance(answer.get("data"), list):
            raise AttemptFailure("server_error", "upstream sent no embeddings")
        return answer

    async def _post_json(self, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming call within ``total``: the decoded JSON object or a failure."""
        timeouts = self.config.timeout_s
        timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.first_byte)
        try:
            async with self.session.post(
                url, data=_encoder.encode(payload), headers=self._headers, timeout=timeout
            ) as response:
                body = await response.read()
                status, retry_after = response.status, response.headers.get("retry-after")
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_failure(exc, f"no answer within {timeouts.total:g} s") from None
        if status != 200:
            raise self._failure(status, retry_after, body)
        try:
            answer = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise AttemptFailure("server_error", "upstream sent a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise AttemptFailure("server_error", "upstream sent a body that is not an object")
        return answer

    async def _open(self, payload: dict[str, Any]) -> UpstreamStream:
        """Send, check the status, and wait for the first non-empty read."""
        timeouts = self.config.timeout_s
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.first_byte, sock_read=timeouts.stall
        )
        response = await self.session.post(
            self._url, data=_encoder.encode(payload), headers=self._headers, timeout=timeout
        )
        try:
            if response.status != 200:
                body = await response.read()
                raise self._failure(response.status, response.headers.get("retry-after"), body)
            first = await response.content.readany()
            if not first:
                raise AttemptFailure("server_error", "upstream closed the stream empty")
        except BaseException:
            response.close()
            raise

        async def close() -> None:
            response.release()

        return UpstreamStream(first=first, rest=self._rest(response), close=close)

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

    async def stream(self, deployment: Deployment, payload: dict[str, Any]) -> UpstreamStream:
        first_byte = self.config.timeout_s.first_byte
        try:
            return await asyncio.wait_for(self._open(payload), first_byte)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_failure(exc, f"no first byte within {first_byte:g} s") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
