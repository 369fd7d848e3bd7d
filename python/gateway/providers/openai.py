"""OpenAI wire format: OpenAI itself and every compatible API (DeepSeek, Groq, Mistral, xAI,
Together, Fireworks, OpenRouter, vLLM, Ollama, llama.cpp, TGI).

The payload is already OpenAI-shaped, so this module is only the endpoints, the Bearer key
and the shape checks; the I/O, timeouts and failure mapping are ``wire_http.WireClient``'s.
"""

from __future__ import annotations

from typing import Any

from gateway.config import ProviderConfig
from gateway.providers.base import AttemptFailure, UpstreamStream
from gateway.providers.credentials import auth_headers
from gateway.providers.wire_http import WireClient, classify_status
from gateway.routing.catalog import Deployment

__all__ = ["OpenAIProvider", "classify_status"]


class OpenAIProvider:
    """Calls one OpenAI-format provider with its platform key (or, through ``with_key``, a
    workspace's own key for one attempt)."""

    def __init__(
        self, config: ProviderConfig, api_key: str | None, *, wire: WireClient | None = None
    ) -> None:
        self.config = config
        base = (config.base_url or "").rstrip("/")
        self._url = base + "/chat/completions"
        self._embeddings_url = base + "/embeddings"
        self._wire = wire or WireClient(config, api_key, auth_headers("openai", api_key))

    def with_key(self, api_key: str) -> OpenAIProvider:
        """This provider for one attempt with ``api_key``, over the same connection pool."""
        return OpenAIProvider(
            self.config, api_key, wire=self._wire.view(api_key, auth_headers("openai", api_key))
        )

    async def complete(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        answer = await self._wire.post_json(self._url, payload)
        if not isinstance(answer.get("choices"), list):
            raise AttemptFailure("server_error", "upstream sent no chat completion")
        return answer

    async def embed(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /embeddings; the OpenAI ``list`` of ``embedding`` objects, as sent."""
        answer = await self._wire.post_json(self._embeddings_url, payload)
        if not isinstance(answer.get("data"), list):
            raise AttemptFailure("server_error", "upstream sent no embeddings")
        return answer

    async def stream(self, deployment: Deployment, payload: dict[str, Any]) -> UpstreamStream:
        return await self._wire.open_stream(self._url, payload, "openai")

    async def aclose(self) -> None:
        await self._wire.aclose()
