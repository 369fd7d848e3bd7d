"""What a provider's 400 means (docs/behaviour.md, "Failover").

Most 400s are the request's fault and stop at once. Two are not: a context-length error says
only that this deployment cannot take the prompt (a model with a larger window may), and a
content-policy refusal is the provider's answer to the request, returned to the caller as a
``content_filter`` finish with the provider's reason rather than shopped around to a laxer
candidate. Providers word these differently; the codes and phrases below are the ones their
API references document.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.providers.base import FailureKind

_CONTEXT_CODES = frozenset({"context_length_exceeded"})
_CONTEXT_PHRASES = re.compile(
    r"context[ _]length|context window|maximum context|prompt is too long|input is too long"
    r"|too many (input )?tokens|input token count .* exceeds|exceeds the maximum number of tokens",
    re.IGNORECASE,
)
_FILTER_CODES = frozenset(
    {"content_filter", "content_policy_violation", "responsibleaipolicyviolation"}
)
_FILTER_PHRASES = re.compile(
    r"content management policy|content[ _]policy|flagged by .*(moderation|safety)",
    re.IGNORECASE,
)


def meaning_of_400(error: dict[str, Any] | None, message: str) -> FailureKind:
    """``context_length``, ``content_filter`` or ``bad_request`` for an upstream 400 whose
    error object (``{"code", "type", "message", …}``, any provider's shape) is ``error``."""
    codes = set()
    if error is not None:
        for field in ("code", "type", "status"):
            value = error.get(field)
            if isinstance(value, str):
                codes.add(value.lower())
        inner = error.get("innererror")
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            codes.add(inner["code"].lower())
    if codes & _FILTER_CODES or _FILTER_PHRASES.search(message):
        return "content_filter"
    if codes & _CONTEXT_CODES or _CONTEXT_PHRASES.search(message):
        return "context_length"
    return "bad_request"
