"""When a failed attempt is retried on the same deployment, and what a move may skip
(docs/behaviour.md, "Failover").

Moving to the next candidate is the default. Staying is cheaper in two cases: a 429 whose
``Retry-After`` is short (the provider named the moment it will serve: waiting is quicker than
a colder, dearer candidate), and a 500/502/503 or a dropped connection on a request's very
first attempt (most are one-offs; one retry after a short random pause costs less than a
worse deployment). Neither may hammer: at most ``HAMMER_ATTEMPTS`` attempts at one deployment
within ``HAMMER_WINDOW_S``, one in-place retry per deployment per request, and the wait must
end before the deployment's own ``timeout_s.total`` counted from the request's first attempt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gateway.config import FailoverSettings
from gateway.providers import AttemptFailure
from gateway.routing.catalog import Deployment

HAMMER_WINDOW_S, HAMMER_ATTEMPTS = 1.5, 2
QUICK_RETRY_STATUSES = frozenset({500, 502, 503})


def hammered(times: Sequence[float], now: float) -> bool:
    """Would one more attempt at a deployment last tried at ``times`` hammer it?"""
    since = now - HAMMER_WINDOW_S
    return sum(1 for t in times if t >= since) >= HAMMER_ATTEMPTS


def in_place_delay(
    failure: AttemptFailure,
    settings: FailoverSettings,
    *,
    first_attempt: bool,
    retried: bool,
    times: Sequence[float],
    elapsed_s: float,
    total_s: float,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before retrying the deployment that just failed, or None to move on.

    ``first_attempt``: the failure was the request's first attempt; ``retried``: this
    deployment was already retried in place for this request; ``times``: when this request
    sent attempts to it (monotonic), the last at ``times[-1]``; ``elapsed_s``: since the
    request's first attempt; ``total_s``: the deployment's whole-answer deadline."""
    if retried:
        return None
    if failure.kind == "rate_limited":
        wait = failure.retry_after
        if wait is None or wait > settings.retry_after_max_s or settings.retry_after_max_s <= 0:
            return None
    elif settings.quick_retry and first_attempt and _one_off(failure):
        low, high = settings.quick_retry_min_s, settings.quick_retry_max_s
        wait = (rng or random).uniform(low, high)
    else:
        return None
    if elapsed_s + wait >= total_s:
        return None
    if times and hammered(times, times[-1] + wait):
        wait = times[-1 - (HAMMER_ATTEMPTS - 1)] + HAMMER_WINDOW_S - times[-1] + 1e-3
        if elapsed_s + wait >= total_s:
            return None
    return max(0.0, wait)


def _one_off(failure: AttemptFailure) -> bool:
    if failure.kind == "server_error":
        return failure.status in QUICK_RETRY_STATUSES
    return failure.kind == "connect_error" and failure.reset


def larger_context(failed: Deployment, candidate: Deployment) -> bool:
    """After ``failed`` said the prompt exceeds its context window, may ``candidate`` be
    tried? Only another model with a larger window: the same model is never retried (its
    window is the model's, whoever serves it, and a deployment's declared window can be
    wrong), nor is a window no larger than the one that failed."""
    return (
        candidate.model.id != failed.model.id
        and candidate.offer.context_window > failed.offer.context_window
    )
