"""HTTP request → ``RouteQuery`` → ``Decision`` → ``RoutePlan``, or the SPEC §6 error.

The precedence chain of SPEC §2, lowest first: built-in defaults → workspace routing
defaults → key default policy → ``X-Routing-Policy`` (the ``layers``) → model suffix →
the request's ``routing`` object. ``RoutingTable`` applies the last two.

A live key's workspace brings the providers it holds its own keys for (``byok_keys``); their
BYOK deployments join the candidates, and dispatch calls them with the workspace's key.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from gateway import _router_core as core
from gateway.config import TASKS
from gateway.errors import ContextLengthExceeded, PolicyConflict, RateLimited, ServiceUnavailable
from gateway.routing.catalog import Deployment
from gateway.routing.decision import CONSTRAINT_MEANINGS, Capability, Decision, RouteQuery
from gateway.routing.health import HealthTracker
from gateway.routing.table import RoutingTable
from gateway.routing_options import NOTHING_SET, RoutingOptions, merge
from gateway.store.records import ApiKey

if TYPE_CHECKING:
    from gateway.providers.byok_keys import ByokKeyring

_CONTEXT_CONSTRAINTS = frozenset({"context_window", "max_output"})
_CAPABILITY_NAMES: dict[int, Capability] = {
    core.CAP_TOOLS: "tools",
    core.CAP_VISION: "vision",
    core.CAP_JSON_OBJECT: "json_object",
    core.CAP_JSON_SCHEMA: "json_schema",
    core.CAP_AUDIO: "audio",
    core.CAP_REASONING: "reasoning",
    core.CAP_EMBEDDINGS: "embeddings",
}
_capability_sets: dict[int, frozenset[Capability]] = {}


def capabilities_of(bits: int) -> frozenset[Capability]:
    """The names of a ``CAP_*`` bitmask (memoised: there are few distinct masks)."""
    names = _capability_sets.get(bits)
    if names is None:
        names = _capability_sets[bits] = frozenset(
            name for bit, name in _CAPABILITY_NAMES.items() if bits & bit
        )
    return names


class PromptFacts(Protocol):
    """What routing reads of a request: ``core.Analysis`` for chat, or an embeddings
    handler's own count."""

    @property
    def prompt_tokens(self) -> int: ...
    @property
    def max_output_tokens(self) -> int | None: ...
    @property
    def required_capabilities(self) -> int: ...
    @property
    def task(self) -> int: ...
    @property
    def difficulty(self) -> float: ...


@dataclass
class RoutePlan:
    """What dispatch needs: the ranked deployments and the facts for routing_metadata."""

    deployments: list[Deployment]
    strategy: str
    policy: str | None
    candidates_total: int
    candidates_viable: int
    decision_ms: float
    allow_fallbacks: bool
    max_fallback_attempts: int
    prompt_tokens: int
    warnings: list[str] = field(default_factory=list)
    workspace_id: str | None = None
    """Whose BYOK keys the plan's BYOK deployments are called with."""


class Router:
    """Builds and runs one routing decision per HTTP request."""

    def __init__(
        self,
        table: RoutingTable,
        health: HealthTracker | None = None,
        byok: ByokKeyring | None = None,
    ) -> None:
        self.table = table
        self.health = health
        self.byok = byok

    def byok_providers(self, key: ApiKey) -> frozenset[str]:
        """Providers the key's workspace has a usable key of its own for (none for test keys)."""
        if self.byok is None or key.mode != "live":
            return frozenset()
        return self.byok.providers(key.workspace_id)

    def plan(
        self,
        *,
        expressions: list[str],
        analysis: PromptFacts,
        key: ApiKey,
        layers: list[tuple[str | None, RoutingOptions]],
        request_options: RoutingOptions | None,
        data_policy_floor: str | None = None,
        started: float | None = None,
    ) -> RoutePlan:
        """``layers`` is the chain below the model expression, lowest first, each with the
        name of the policy it came from (if any)."""
        begin = time.perf_counter() if started is None else started
        defaults = NOTHING_SET
        policy = None
        for name, layer in layers:
            defaults = merge(defaults, layer)
            policy = name or policy
        routing = request_options or NOTHING_SET
        query = RouteQuery(
            model=expressions[0] if len(expressions) == 1 else tuple(expressions),
            routing=routing,
            defaults=defaults,
            prompt_tokens=analysis.prompt_tokens,
            max_output_tokens=analysis.max_output_tokens or 0,
            capabilities=capabilities_of(analysis.required_capabilities),
            task=TASKS[analysis.task],
            difficulty=analysis.difficulty,
            key_mode=key.mode,
            allowed_models=frozenset(key.allowed_models) if key.allowed_models else None,
            data_policy_floor=data_policy_floor,  # type: ignore[arg-type]
            byok_providers=self.byok_providers(key),
        )
        merged = merge(defaults, routing)
        attempts = merged.max_fallback_attempts if merged.max_fallback_attempts is not None else 3
        allow_fallbacks = merged.allow_fallbacks is not False
        if self.health is not None:
            self.health.refresh()
        # dispatch never tries more than this; circuit-open rows are already filtered out
        decision = self.table.route(query, limit=1 + (attempts if allow_fallbacks else 0))
        if not len(decision):
            self._raise_if_cooling(query, key)
            _raise_empty(decision)
        return RoutePlan(
            deployments=decision.deployments(),
            strategy=decision.strategy,
            policy=policy,
            candidates_total=decision.candidates_total,
            candidates_viable=decision.candidates_viable,
            decision_ms=(time.perf_counter() - begin) * 1000.0,
            allow_fallbacks=allow_fallbacks,
            max_fallback_attempts=attempts,
            prompt_tokens=analysis.prompt_tokens,
            warnings=list(decision.warnings),
            workspace_id=key.workspace_id,
        )

    def _raise_if_cooling(self, query: RouteQuery, key: ApiKey) -> None:
        """Nothing is viable, but would be with the workspace's rate-limited keys: that is a
        429 with ``Retry-After`` (e.g. ``only_byok`` while its key cools), not a 409."""
        if self.byok is None or key.mode != "live":
            return
        cooling = self.byok.cooling(key.workspace_id)
        if not cooling:
            return
        widened = replace(query, byok_providers=query.byok_providers | frozenset(cooling))
        if len(self.table.route(widened, limit=1)):
            wait = max(1, math.ceil(max(cooling.values())))
            raise RateLimited(
                "The workspace's own key for "
                + ", ".join(f"'{p}'" for p in sorted(cooling))
                + " is rate-limited by the provider; retry shortly.",
                headers={"retry-after": str(wait)},
            )


def _raise_empty(decision: Decision) -> None:
    """SPEC §3: static constraints → 409 (400 for context), health-only → 503."""
    constraint = decision.emptied_by or "model"
    if decision.health_only:
        raise ServiceUnavailable(
            f"No healthy provider is available: '{constraint}' removed the last candidates "
            f"({CONSTRAINT_MEANINGS[constraint]}).",
            code="no_providers_available",
        )
    if constraint in _CONTEXT_CONSTRAINTS:
        raise ContextLengthExceeded(
            "The prompt plus the requested output exceed what every candidate deployment "
            f"accepts ({CONSTRAINT_MEANINGS[constraint]}).",
            param="messages",
        )
    raise PolicyConflict(
        f"No candidate satisfies the routing constraints: '{constraint}' emptied the "
        f"candidate set ({CONSTRAINT_MEANINGS[constraint]})."
    )
