"""The attempt loop: try the ranked deployments in order, fail over only when it is safe.

Retryable failures (429, 5xx, connect errors, timeouts) move to the next candidate while
``allow_fallbacks`` holds and attempts remain; request errors (400, 401, other 4xx) stop at
once. Every attempt is appended to the caller's ``chain``, which becomes
``routing_metadata.fallback_chain`` and the usage record's, whatever the outcome.

A BYOK deployment is called with the workspace's own key, fetched for that attempt only
(``byok_keys``) and passed to a per-attempt view of the provider client. Its failures differ in
two ways: a 401/403 is the workspace key's fault, so it fails over (to the platform twin,
ranked right behind) and, if nothing serves, ends as 401 ``provider_auth_error``; a 429 cools
only that workspace's key (``ByokKeyring.cool``), not the deployment's shared health.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

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
from gateway.secrets_held import hold_for_request

if TYPE_CHECKING:
    from gateway.byok_keys import ByokKeyring

T = TypeVar("T")
log = logging.getLogger("routegate.dispatch")
Call = Callable[[Provider, Deployment, dict[str, Any]], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class Attempt:
    provider: str
    model: str
    status: Literal["success", "failed"]
    reason: str | None = None
    key_source: str = "platform"
    """``byok`` when the attempt used the workspace's own key (the same provider may then
    appear twice in a chain: its BYOK row, then its platform twin)."""
    continuation: bool = False
    """The attempt continued a stream that broke after content reached the client."""


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


def byok_failure(failure: AttemptFailure) -> AttemptFailure:
    """How a failure of the workspace's own key reads: 403 is a rejected key too (SPEC §6
    ``provider_auth_error``: "BYOK key rejected upstream")."""
    if failure.kind == "client_error" and failure.status == 403:
        return replace(failure, kind="auth_error")
    return failure


class Dispatcher:
    def __init__(
        self, pool: ProviderPool, health: HealthTracker, byok: ByokKeyring | None = None
    ) -> None:
        self.pool = pool
        self.health = health
        self.byok = byok

    def client_for(self, plan: RoutePlan, deployment: Deployment) -> Provider | None:
        """The client for one attempt at ``deployment`` (see ``_client``)."""
        return self._client(plan, deployment)

    def _client(self, plan: RoutePlan, deployment: Deployment) -> Provider | None:
        """The client for this attempt: the shared platform one, or a view with the
        workspace's key (None when the workspace no longer has a usable one)."""
        provider_id = deployment.provider.id
        if deployment.key_source != "byok":
            return self.pool.get(provider_id)
        if self.byok is None or plan.workspace_id is None:
            return None
        secret = self.byok.secret(plan.workspace_id, provider_id)
        hold_for_request(secret)
        return None if secret is None else self.pool.keyed(provider_id, secret)

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
            client = self._client(plan, deployment)
            if client is None or not self.health.claim(row):
                continue
            budget -= 1
            started = time.perf_counter()
            try:
                result = await call(client, deployment, payload_for(deployment))
            except AttemptFailure as failure:
                own_key = deployment.key_source == "byok"
                if own_key:
                    failure = self._byok_failed(plan, deployment, failure)
                else:
                    self.health.failure(row, failure.kind, failure.retry_after)
                chain.append(
                    Attempt(
                        provider_id,
                        deployment.model.id,
                        "failed",
                        failure.kind,
                        deployment.key_source,
                    )
                )
                last = (deployment, failure)
                if not (failure.retryable or (own_key and failure.kind == "auth_error")):
                    break
                continue
            except BaseException:
                self.health.release(row)
                raise
            self.health.success(row)
            chain.append(
                Attempt(provider_id, deployment.model.id, "success", None, deployment.key_source)
            )
            return result, deployment, time.perf_counter() - started
        if last is None:
            raise ServiceUnavailable(
                "Every candidate deployment is cooling down after failures or a provider's "
                "Retry-After; try again shortly.",
                code="no_providers_available",
            )
        raise to_gateway_error(last[0].provider.id, last[1])

    def _byok_failed(
        self, plan: RoutePlan, deployment: Deployment, failure: AttemptFailure
    ) -> AttemptFailure:
        """Book a failed BYOK attempt: a 429 cools that workspace's key only; a rejected key
        is logged (its id is in the store, never its value); upstream faults count as usual."""
        failure = byok_failure(failure)
        row, provider_id = deployment.row, deployment.provider.id
        if failure.kind == "rate_limited":
            self.health.release(row)
            if self.byok is not None and plan.workspace_id is not None:
                wait = failure.retry_after if failure.retry_after is not None else 1.0
                self.byok.cool(plan.workspace_id, provider_id, wait)
        else:
            self.health.failure(row, failure.kind, failure.retry_after)
        if failure.kind == "auth_error":
            log.warning(
                "byok_key_rejected workspace=%s provider=%s status=%s",
                plan.workspace_id,
                provider_id,
                failure.status,
            )
        return failure
