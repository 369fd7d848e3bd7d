"""Provider passthrough (SPEC §2): ``extensions.<provider>`` objects merged into one wire format.

``sanitised`` drops every key named like a credential, at any depth, and refuses top-level
core fields; ``merged`` deep-merges the result into the translated request, the passthrough
value winning. Shared by every provider module and by the chat handler, which may call
``sanitised`` up front to reject a bad request before routing.

A key is a credential when one of its words (split on ``_``, ``-``, ``.``, spaces and
camelCase, any case) is ``token``, ``secret``, ``password``, ``passwd``, ``authorization``,
``credential(s)`` or ``bearer``, or when it contains ``api`` followed by ``key``
(``api_key``, ``x-api-key``, ``apiKey``). Plural ``tokens`` is a count (``max_tokens``,
``budget_tokens``), not a credential.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from gateway.errors import InvalidRequest

__all__ = [
    "OPENAI_CORE_FIELDS",
    "apply_passthrough",
    "credential_key",
    "extension",
    "merged",
    "sanitised",
    "thinking_budget",
]

OPENAI_CORE_FIELDS: frozenset[str] = frozenset(
    {"model", "messages", "stream", "stream_options", "models", "routing", "extensions"}
)
DEFAULT_THINKING_BUDGET = 8000

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_CREDENTIAL_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "authorization", "credential", "credentials"}
    | {"bearer", "apikey"}
)


def credential_key(key: str) -> bool:
    """Whether ``key`` names a credential (see the module docstring)."""
    words = [w.lower() for w in _WORDS.findall(key)]
    if any(w in _CREDENTIAL_WORDS for w in words):
        return True
    return any(a == "api" and b == "key" for a, b in itertools.pairwise(words))


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _clean(v) for k, v in value.items() if not (isinstance(k, str) and credential_key(k))
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def sanitised(
    extra: dict[str, Any], core_fields: frozenset[str], *, provider: str = ""
) -> dict[str, Any]:
    """``extra`` without credential-named keys at any depth; ``InvalidRequest`` naming
    ``extensions.<provider>.<field>`` when a top-level key is one of ``core_fields``."""
    prefix = f"extensions.{provider}" if provider else "extensions"
    if not isinstance(extra, dict):
        raise InvalidRequest(f"'{prefix}' must be an object.", param=prefix)
    for key in extra:
        if key in core_fields:
            raise InvalidRequest(
                f"'{prefix}.{key}' is a core field and cannot be set through provider "
                "passthrough; use the request's own field.",
                param=f"{prefix}.{key}",
            )
    cleaned: dict[str, Any] = _clean(extra)
    return cleaned


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` deep-merged with ``extra``: objects merge key by key, anything else from
    ``extra`` replaces the value in ``base``. Neither input is modified."""
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            out[key] = merged(current, value)
        else:
            out[key] = value
    return out


def extension(payload: dict[str, Any], name: str) -> Any:
    """``payload["extensions"][name]``, or None."""
    extensions = payload.get("extensions")
    return extensions.get(name) if isinstance(extensions, dict) else None


def function_definitions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The payload's function definitions (``{name, description?, parameters?}``), from
    ``tools`` or else the legacy ``functions``: what every wire format translates."""
    tools = payload.get("tools")
    if tools:
        return [tool.get("function") or {} for tool in tools]
    return list(payload.get("functions") or [])


def thinking_budget(payload: dict[str, Any]) -> int | None:
    """``extensions.thinking`` as a token budget: None unless ``enabled`` is true."""
    thinking = extension(payload, "thinking")
    if not isinstance(thinking, dict) or thinking.get("enabled") is not True:
        return None
    budget = thinking.get("budget_tokens", DEFAULT_THINKING_BUDGET)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise InvalidRequest(
            "'extensions.thinking.budget_tokens' must be a non-negative integer.",
            param="extensions.thinking.budget_tokens",
        )
    return budget


def apply_passthrough(
    body: dict[str, Any], payload: dict[str, Any], provider: str, core_fields: frozenset[str]
) -> dict[str, Any]:
    """``body`` with the sanitised ``extensions.<provider>`` object merged in (if any)."""
    extra = extension(payload, provider)
    if extra is None:
        return body
    return merged(body, sanitised(extra, core_fields, provider=provider))
