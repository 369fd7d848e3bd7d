"""OpenAI wire format: OpenAI itself and every compatible API (DeepSeek, Groq, Mistral, xAI,
Together, Fireworks, OpenRouter, vLLM, Ollama, llama.cpp, TGI).

One keep-alive ``httpx.AsyncClient`` per provider. Timeouts: connect and first byte within
``first_byte``, a whole non-streaming answer within ``total``, and at most ``stall`` between
two stream reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
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


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class OpenAIProvider:
    """Calls one OpenAI-format provider with its platform key."""

    def __init__(self, config: ProviderConfig, api_key: str | None) -> None:
        self.config = config
        self._api_key = api_key
        timeouts = config.timeout_s
        headers = {"accept-encoding": "identity", **config.headers}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            base_url=(config.base_url or "").rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(
                connect=timeouts.first_byte,
                read=timeouts.total,
                write=timeouts.total,
                pool=timeouts.first_byte,
            ),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
        )

    def _redact(self, text: str) -> str:
        text = text[:_MAX_MESSAGE]
        return text.replace(self._api_key, "***") if self._api_key else text

    def _failure(self, response: httpx.Response, body: bytes) -> AttemptFailure:
        message = f"upstream answered HTTP {response.status_code}"
        try:
            detail = msgspec.json.decode(body)
            if isinstance(detail, dict) and isinstance(detail.get("error"), dict):
                message = str(detail["error"].get("message") or message)
            elif isinstance(detail, dict) and isinstance(detail.get("error"), str):
                message = detail["error"]
        except msgspec.DecodeError:
            pass
        return AttemptFailure(
            classify_status(response.status_code),
            self._redact(message),
            status=response.status_code,
            retry_after=_retry_after(response.headers),
        )

    def _request(self, payload: dict[str, Any], *, read_timeout: float) -> httpx.Request:
        timeouts = self.config.timeout_s
        return self._client.build_request(
            "POST",
            "/chat/completions",
            content=_encoder.encode(payload),
            headers={"content-type": "application/json"},
            timeout=httpx.Timeout(
                connect=timeouts.first_byte,
                read=read_timeout,
                write=timeouts.total,
                pool=timeouts.first_byte,
            ),
        )

    async def complete(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        timeouts = self.config.timeout_s
        request = self._request(payload, read_timeout=timeouts.total)
        try:
            response = await asyncio.wait_for(self._client.send(request), timeouts.total)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise AttemptFailure("timeout", f"no answer within {timeouts.total:g} s") from None
        except httpx.TransportError as exc:
            raise AttemptFailure(
                "connect_error", f"connection failed: {type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise self._failure(response, response.content)
        try:
            answer = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            raise AttemptFailure("server_error", "upstream sent a body that is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise AttemptFailure("server_error", "upstream sent no chat completion")
        return answer

    async def _open(self, request: httpx.Request) -> UpstreamStream:
        """Send, check the status, and wait for the first non-empty read."""
        response = await self._client.send(request, stream=True)
        try:
            if response.status_code != 200:
                raise self._failure(response, await response.aread())
            chunks = response.aiter_bytes()
            first = b""
            while not first:
                first = await anext(chunks)
        except BaseException:
            await response.aclose()
            raise
        return UpstreamStream(first=first, rest=chunks, close=response.aclose)

    async def stream(self, deployment: Deployment, payload: dict[str, Any]) -> UpstreamStream:
        timeouts = self.config.timeout_s
        request = self._request(payload, read_timeout=timeouts.stall)
        try:
            return await asyncio.wait_for(self._open(request), timeouts.first_byte)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise AttemptFailure(
                "timeout", f"no first byte within {timeouts.first_byte:g} s"
            ) from None
        except StopAsyncIteration:
            raise AttemptFailure("server_error", "upstream closed the stream empty") from None
        except httpx.TransportError as exc:
            raise AttemptFailure(
                "connect_error", f"connection failed: {type(exc).__name__}"
            ) from None

    async def aclose(self) -> None:
        await self._client.aclose()
