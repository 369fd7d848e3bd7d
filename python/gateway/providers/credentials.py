"""How each wire format presents an API key, and the one-off check of a key (BYOK validate).

Kept in one place so that the platform clients, the per-attempt BYOK views of them
(``Provider.with_key``) and the management API's key check can never disagree about where a
key goes: OpenAI-compatible APIs take ``Authorization: Bearer``, Anthropic ``x-api-key``
(next to ``anthropic-version``), Gemini ``x-goog-api-key``.
"""

from __future__ import annotations

from gateway.config import ProviderConfig
from gateway.providers.base import AttemptFailure
from gateway.providers.wire_http import WireClient

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_BASE_URLS", "auth_headers", "check_key"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BASE_URLS: dict[str, str] = {
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
}


def auth_headers(fmt: str, api_key: str | None) -> dict[str, str]:
    """The headers that carry ``api_key`` (plus the format's fixed ones) for format ``fmt``."""
    headers = {"anthropic-version": ANTHROPIC_VERSION} if fmt == "anthropic" else {}
    if not api_key:
        return headers
    if fmt == "anthropic":
        headers["x-api-key"] = api_key
    elif fmt == "gemini":
        headers["x-goog-api-key"] = api_key
    else:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def base_url(config: ProviderConfig) -> str:
    return (config.base_url or DEFAULT_BASE_URLS.get(config.format, "")).rstrip("/")


async def check_key(config: ProviderConfig, api_key: str) -> bool:
    """Ask the provider's model list (``GET {base_url}/models``: free, and every supported
    format has it) whether ``api_key`` works: True when accepted, False when rejected (401,
    403, or Gemini's invalid-key 400). Raises ``AttemptFailure`` when the answer says
    nothing about the key (429, 5xx, no connection); its message never holds the key."""
    wire = WireClient(config, api_key, auth_headers(config.format, api_key))
    try:
        status, retry_after, body = await wire.get(base_url(config) + "/models")
    finally:
        await wire.aclose()
    if 200 <= status < 300:
        return True
    if status == 403:
        return False
    failure = wire.failure(status, retry_after, body)
    if failure.kind == "auth_error":
        return False
    if failure.kind in ("bad_request", "client_error"):  # e.g. no /models on this server
        raise AttemptFailure(
            "client_error", f"the key could not be checked: {failure.message}", status=status
        )
    raise failure
