"""The attempt loop: try the ranked deployments in order, fail over only when it is safe.

Retryable failures (429, 5xx, connect errors, timeouts) move to the next candidate while
``allow_fallbacks`` holds and attempts remain; request errors (400, 401, other 4xx) stop at
once. Every attempt is appended to the caller's ``chain``, which becomes
``routing_metadata.fallback_chain`` and the usage record's, whatever the outcome.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from gateway.catalog import Deployment
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    ProviderAuthFailed,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServiceUnavailable,
    provider_headers,
)
from gateway.health import HealthTracker
from gateway.providers import AttemptFailure, Provider, ProviderPool
from gateway.routing.planner import RoutePlan

T = TypeVar("T")
Call = Callable[[Provider, Deployment, dict[str, Any]], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class Attempt:
    provider: str
    model: str
    status: Literal["success", "failed"]
    reason: str | None = None


def to_gateway_error(provider: str, failure: AttemptFailure) -> GatewayError:
    """SPEC §6 upstream → client mapping, with the ``X-Error-*`` headers."""
    headers = provider_headers(provider, failure.kind, failure.retryable)
    message = f"Provider '{provider}': {failure.message}"
    if failure.kind == "rate_limited":
        retry_after = math.ceil(failure.retry_after) if failure.retry_after is not None else 1
        headers["retry-after"] = str(max(1, retry_after))
        return RateLimited(message, headers=headers)
    if failure.kind == "timeout":
        return ProviderTimeout(message, headers=headers)
    if failure.kind == "bad_request":
        return InvalidRequest(message, headers=headers)
    if failure.kind == "auth_error":
        return ProviderAuthFailed(message, headers=headers)
    return ProviderError(message, headers=headers)


class Dispatcher:
    def __init__(self, pool: ProviderPool, health: HealthTracker) -> None:
        self.pool = pool
        self.health = health

    async def run(
        self,
        plan: RoutePlan,
        payload_for: Callable[[Deployment], dict[str, Any]],
        call: Call[T],
        chain: list[Attempt],
    ) -> tuple[T, Deployment, float]:
        """Return the first successful attempt's result, its deployment and its duration in
        seconds; raise the mapped last failure. Deployments whose circuit will not admit the
        request (open, or half-open with a probe under way) are skipped without spending an
        attempt."""
        budget = 1 + (plan.max_fallback_attempts if plan.allow_fallbacks else 0)
        last: tuple[Deployment, AttemptFailure] | None = None
        for deployment in plan.deployments:
            if budget == 0:
                break
            row, provider_id = deployment.row, deployment.provider.id
            if not self.health.claim(row):
                continue
            budget -= 1
            started = time.perf_counter()
            try:
                result = await call(self.pool.get(provider_id), deployment, payload_for(deployment))
            except AttemptFailure as failure:
                self.health.failure(row, failure.kind, failure.retry_after)
                chain.append(Attempt(provider_id, deployment.model.id, "failed", failure.kind))
                last = (deployment, failure)
                if not failure.retryable:
                    break
                continue
            except BaseException:
                self.health.release(row)
                raise
            self.health.success(row)
            chain.append(Attempt(provider_id, deployment.model.id, "success"))
            return result, deployment, time.perf_counter() - started
        if last is None:
            raise ServiceUnavailable(
                "Every candidate deployment is cooling down after failures or a provider's "
                "Retry-After; try again shortly.",
                code="no_providers_available",
            )
        raise to_gateway_error(last[0].provider.id, last[1])
