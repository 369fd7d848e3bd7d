"""The attempt loop: try the ranked deployments in order, fail over only when it is safe.

Retryable failures (429, 5xx, connect errors, timeouts) move to the next candidate while
``allow_fallbacks`` holds and attempts remain, unless ``failover.in_place_delay`` says one
retry on the same deployment is cheaper (a short ``Retry-After``, a one-off 5xx or reset on
the request's first attempt); request errors (400, 401, other 4xx) stop at once. A
context-length 400 moves on only to larger context windows; a content-policy 400 is the
answer (``ContentFiltered``). Every attempt is appended to the caller's ``chain``, which
becomes ``routing_metadata.fallback_chain`` and the usage record's, whatever the outcome.

A BYOK deployment is called with the workspace's own key, fetched for that attempt only
(``byok_keys``) and passed to a per-attempt view of the provider client. Its failures differ in
two ways: a 401/403 is the workspace key's fault, so it fails over (to the platform twin,
ranked right behind) and, if nothing serves, ends as 401 ``provider_auth_error``; a 429 cools
only that workspace's key (``ByokKeyring.cool``), not the deployment's shared health.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec

from gateway.config import FailoverSettings
from gateway.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidRequest,
    ProviderAuthFailed,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServiceUnavailable,
    provider_headers,
)
from gateway.providers import AttemptFailure, Provider, ProviderPool
from gateway.providers.failover import in_place_delay, larger_context
from gateway.routing.catalog import Deployment
from gateway.routing.health import HealthTracker
from gateway.routing.planner import RoutePlan
from gateway.secrets_held import hold_for_request

if TYPE_CHECKING:
    from gateway.providers.byok_keys import ByokKeyring

T = TypeVar("T")
_TIMER_SLACK_S = 0.005
_encoder = msgspec.json.Encoder()
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
    retry: bool = False
    """The attempt retried the deployment of the attempt before it, in place."""
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
    if failure.kind == "context_length":
        return ContextLengthExceeded(message, headers=headers)
    if failure.kind == "auth_error":
        return ProviderAuthFailed(message, headers=headers)
    return ProviderError(message, headers=headers)


def byok_failure(failure: AttemptFailure) -> AttemptFailure:
    """How a failure of the workspace's own key reads: 403 is a rejected key too (SPEC §6
    ``provider_auth_error``: "BYOK key rejected upstream")."""
    if failure.kind == "client_error" and failure.status == 403:
        return replace(failure, kind="auth_error")
    return failure


class ContentFiltered(InvalidRequest):
    """A provider refused the request under its content policy: that refusal is the answer
    (``api/refusal.py`` turns it into a ``content_filter`` finish), never failed over.
    Where no answer shape fits (embeddings), it is this 400."""

    code = "content_filter"

    def __init__(self, deployment: Deployment, reason: str, headers: dict[str, str]) -> None:
        super().__init__(f"Provider '{deployment.provider.id}': {reason}", headers=headers)
        self.deployment = deployment
        self.reason = reason


class Dispatcher:
    def __init__(
        self,
        pool: ProviderPool,
        health: HealthTracker,
        byok: ByokKeyring | None = None,
        failover: FailoverSettings | None = None,
    ) -> None:
        self.pool = pool
        self.health = health
        self.byok = byok
        self.failover = failover or FailoverSettings()

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
        begun, attempts = time.monotonic(), 0
        too_long: Deployment | None = None  # the last deployment whose window was too small
        for deployment in plan.deployments:
            if budget == 0:
                break
            if too_long is not None and not larger_context(too_long, deployment):
                continue
            row = deployment.row
            client = self._client(plan, deployment)
            if client is None or not self.health.claim(row):
                continue
            budget -= 1
            times: list[float] = []
            failed: AttemptFailure | None = None
            while True:
                attempts += 1
                times.append(time.monotonic())
                started = time.perf_counter()
                try:
                    result = await call(client, deployment, payload_for(deployment))
                except AttemptFailure as failure:
                    failed = self._failed(plan, deployment, failure)
                    chain.append(_attempt(deployment, failed.kind, retry=len(times) > 1))
                    last = (deployment, failed)
                    if await self._retry_in_place(deployment, failed, attempts, times, begun):
                        continue
                    break
                except BaseException:
                    self.health.release(row)
                    raise
                self.health.success(row)
                chain.append(_attempt(deployment, None, retry=len(times) > 1))
                return result, deployment, time.perf_counter() - started
            assert failed is not None
            if failed.kind == "content_filter":
                headers = provider_headers(deployment.provider.id, failed.kind, False)
                raise ContentFiltered(deployment, failed.message, headers)
            if failed.kind == "context_length":
                too_long = deployment
            own_key = deployment.key_source == "byok"
            if not (
                failed.retryable
                or failed.kind == "context_length"
                or (own_key and failed.kind == "auth_error")
            ):
                break
        if last is None:
            raise ServiceUnavailable(
                "Every candidate deployment is cooling down after failures or a provider's "
                "Retry-After; try again shortly.",
                code="no_providers_available",
            )
        raise to_gateway_error(last[0].provider.id, last[1])

    def _failed(
        self, plan: RoutePlan, deployment: Deployment, failure: AttemptFailure
    ) -> AttemptFailure:
        """Book a failed attempt in the deployment's health (or its workspace key's)."""
        if deployment.key_source == "byok":
            return self._byok_failed(plan, deployment, failure)
        self.health.failure(deployment.row, failure.kind, failure.retry_after)
        return failure

    async def _retry_in_place(
        self,
        deployment: Deployment,
        failure: AttemptFailure,
        attempts: int,
        times: list[float],
        begun: float,
    ) -> bool:
        """Wait and claim the deployment again when the failover rules say to retry it in
        place; False to move on (or when its circuit opened meanwhile, or another request
        took its probe)."""
        delay = in_place_delay(
            failure,
            self.failover,
            first_attempt=attempts == 1,
            retried=len(times) > 1,
            times=times,
            elapsed_s=time.monotonic() - begun,
            total_s=deployment.provider.timeout_s.total,
        )
        if delay is None:
            return False
        # A 429 cooled the provider until exactly now + delay; uvloop's timers may wake a
        # fraction of a millisecond early, when the circuit would still be closed to us.
        await asyncio.sleep(delay + _TIMER_SLACK_S)
        self.health.refresh()
        return self.health.claim(deployment.row)

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


def _attempt(deployment: Deployment, reason: str | None, *, retry: bool) -> Attempt:
    if reason is None and not retry:
        return first_try_success(deployment)
    return Attempt(
        deployment.provider.id,
        deployment.model.id,
        "failed" if reason is not None and reason != "content_filter" else "success",
        reason,
        deployment.key_source,
        retry=retry,
    )


_SUCCESSES: dict[tuple[str, str, str], tuple[Attempt, str]] = {}
"""(provider, model, key source) → the shared first-try success and its record text."""
_CACHE_MAX = 4096


def first_try_success(deployment: Deployment) -> Attempt:
    """The chain entry of almost every request: one shared, immutable value per deployment,
    with its record text (``chain_text``) encoded once."""
    key = (deployment.provider.id, deployment.model.id, deployment.key_source)
    found = _SUCCESSES.get(key)
    if found is None:
        if len(_SUCCESSES) >= _CACHE_MAX:
            _SUCCESSES.clear()
        attempt = Attempt(key[0], key[1], "success", None, key[2])
        found = _SUCCESSES[key] = (attempt, _encoder.encode([attempt]).decode())
    return found[0]


def chain_text(chain: list[Attempt]) -> str | None:
    """The usage record's ``fallback_chain``: the chain as JSON text (None when empty)."""
    if not chain:
        return None
    if len(chain) == 1:
        only = chain[0]
        known = _SUCCESSES.get((only.provider, only.model, only.key_source))
        if known is not None and known[0] is only:
            return known[1]
    return _encoder.encode(chain).decode()
