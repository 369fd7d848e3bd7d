"""One module per wire format; ``ProviderPool`` holds one client per configured provider."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.base import AttemptFailure, Provider, UpstreamStream, Wire
from gateway.providers.gemini import GeminiProvider
from gateway.providers.mock import MockProvider
from gateway.providers.openai import OpenAIProvider
from gateway.routing.catalog import Catalog

__all__ = ["AttemptFailure", "Provider", "ProviderPool", "UpstreamStream", "Wire"]


class ProviderPool:
    """Provider id → provider client, built lazily inside the serving event loop."""

    def __init__(self, catalog: Catalog, environ: Mapping[str, str] | None = None) -> None:
        self._catalog = catalog
        self._env = os.environ if environ is None else environ
        self._clients: dict[str, Provider] = {}

    def get(self, provider_id: str) -> Provider:
        client = self._clients.get(provider_id)
        if client is None:
            client = self._clients[provider_id] = self._build(provider_id)
        return client

    def keyed(self, provider_id: str, api_key: str) -> Provider:
        """The provider's client for one attempt with a workspace's own key (BYOK)."""
        return self.get(provider_id).with_key(api_key)

    def _build(self, provider_id: str) -> Provider:
        index = self._catalog.provider(provider_id)
        assert index is not None, provider_id
        config = self._catalog.providers[index]
        if config.format == "mock":
            return MockProvider()
        key = self._env.get(config.api_key_env, "") if config.api_key_env else ""
        if config.format == "openai":
            return OpenAIProvider(config, key.strip() or None)
        if config.format == "anthropic":
            return AnthropicProvider(config, key.strip() or None)
        if config.format == "gemini":
            return GeminiProvider(config, key.strip() or None)
        raise AttemptFailure(
            "client_error", f"the {config.format} wire format is not supported yet"
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
