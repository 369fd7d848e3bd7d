"""The secrets this gateway process holds, and ``scrub``: the one call every path makes on an
upstream-derived string before it is cut, logged, recorded or sent (docs/behaviour.md,
"Secrets in messages").

Process-wide secrets (platform provider keys, the admin key, the master key) are held once at
start-up; a request's own secrets (the caller's gateway key, a workspace's BYOK key) are held
in a context variable, so they live as long as the request's task and no other request sees
them. Matching is ``gateway.redaction``'s: any 8-character run of a secret, any case.
"""

from __future__ import annotations

from contextvars import ContextVar

from gateway.redaction import redact, windows

MAX_MESSAGE = 500  # characters of an upstream message kept (after redaction)


class _Held:
    grams: frozenset[str] = frozenset()


_request: ContextVar[tuple[str, ...]] = ContextVar("routegate_request_secrets", default=())


def hold(*secrets: str | None) -> None:
    """Hold process-wide secrets (called while the process builds its context)."""
    _Held.grams = _Held.grams | windows(secrets)


def hold_for_request(*secrets: str | None) -> None:
    """Hold secrets for the rest of the current request (its task's context). Every request
    holds its key, and few ever scrub anything: their windows are computed by ``scrub``."""
    held = tuple(s for s in secrets if s)
    if held:
        _request.set(_request.get() + held)


def scrub(text: str, *extra: str | None, limit: int | None = MAX_MESSAGE) -> str:
    """``text`` with every fragment of every held secret (and of ``extra``) masked, then cut
    to ``limit`` characters."""
    grams = _Held.grams
    request = (*_request.get(), *extra)
    if any(request):
        grams = grams | windows(request)
    return redact(text, grams, limit)
