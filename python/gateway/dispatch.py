"""The attempt loop: try the ranked deployments in order, fail over only when it is safe.

Retryable failures (429, 5xx, connect errors, timeouts) move to the next candidate while
``allow_fallbacks`` holds and attempts remain; request errors (400, 401, other 4xx) stop at
once. Every attempt is appended to the caller's ``chain``, which becomes
``routing_metadata.fallback_chain`` and the usage record's, whatever the outcome.
"""

from __future__ import annotations

import math
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
    provider_headers,
)
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
    def __init__(self, pool: ProviderPool) -> None:
        self.pool = pool

    async def run(
        self,
        plan: RoutePlan,
        payload_for: Callable[[Deployment], dict[str, Any]],
        call: Call[T],
        chain: list[Attempt],
    ) -> tuple[T, Deployment]:
        """Return the first successful attempt's result; raise the mapped last failure."""
        budget = 1 + (plan.max_fallback_attempts if plan.allow_fallbacks else 0)
        last: tuple[Deployment, AttemptFailure] | None = None
        for deployment in plan.deployments[:budget]:
            provider_id = deployment.provider.id
            try:
                result = await call(self.pool.get(provider_id), deployment, payload_for(deployment))
            except AttemptFailure as failure:
                chain.append(Attempt(provider_id, deployment.model.id, "failed", failure.kind))
                last = (deployment, failure)
                if not failure.retryable:
                    break
                continue
            chain.append(Attempt(provider_id, deployment.model.id, "success"))
            return result, deployment
        assert last is not None, "a route plan always has at least one deployment"
        raise to_gateway_error(last[0].provider.id, last[1])
