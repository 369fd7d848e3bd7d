"""Request + policy + defaults → one constraints/weights record → the core → a ranked plan.

Python only resolves names (models, providers, region globs: small sets) into masks; every
loop over candidates happens in ``CandidateTable.route``, once per request.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gateway import _router_core as core
from gateway.catalog import DATA_POLICY_LEVELS, Catalog, Deployment
from gateway.config import TASKS
from gateway.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    PolicyConflict,
    ServiceUnavailable,
)
from gateway.routing_options import RoutingOptions, merge
from gateway.store.records import ApiKey

Weights = tuple[float, float, float, float, float]
PRESETS: dict[str, Weights] = {
    "cheapest": (1.0, 0.0, 0.0, 0.0, 0.0),
    "cost": (0.7, 0.1, 0.05, 0.15, 0.0),
    "speed": (0.1, 0.45, 0.3, 0.15, 0.0),
    "ttft": (0.05, 0.8, 0.0, 0.15, 0.0),
    "throughput": (0.05, 0.1, 0.7, 0.15, 0.0),
    "balanced": (0.35, 0.25, 0.1, 0.2, 0.1),
    "best": (0.0, 0.05, 0.0, 0.15, 0.8),
}
POLICY_WORDS: dict[str, str] = {
    "auto": "balanced",
    "cheapest": "cheapest",
    "fastest": "speed",
    "best": "best",
}
SUFFIXES: dict[str, str] = {
    "floor": "cheapest",
    "cost": "cost",
    "nitro": "speed",
    "fast": "ttft",
    "balanced": "balanced",
}
DEFAULT_EXPECTED_OUTPUT = 512
CONSTRAINT_MEANINGS: dict[str, str] = {
    "model": "no deployment offers the requested model(s)",
    "capabilities": "no deployment has every capability the request needs "
    "(vision, tools, json_object/json_schema, audio, reasoning)",
    "region": "no deployment is in an allowed region",
    "data_policy": "no deployment meets the required data policy",
    "provider": "no allowed provider with a usable key offers it",
    "key_source": "no deployment has the required key source (BYOK or platform)",
    "price": "every deployment costs more than routing.max_cost_per_1m",
    "quality_floor": "no deployment reaches the quality floor for this task",
}
_CONTEXT_CONSTRAINTS = frozenset({"context_window", "max_output"})


@dataclass(frozen=True)
class ModelExpression:
    """What the ``model`` field asked for, before any routing."""

    models: frozenset[int] | None  # None: the whole chat catalog
    pinned_provider: int | None = None
    optimize: str | None = None


@dataclass
class RoutePlan:
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


def resolve_model(catalog: Catalog, expression: str) -> ModelExpression:
    """Parse a policy word, ``id``, ``id:suffix`` or ``provider/id`` (SPEC §2)."""
    word = expression.strip()
    if word.lower() in POLICY_WORDS:
        return ModelExpression(None, optimize=POLICY_WORDS[word.lower()])
    optimize = None
    if word.count(":") == 1:
        base, suffix = word.split(":")
        if suffix.lower() in SUFFIXES and (catalog.model(base) is not None or "/" in base):
            word, optimize = base, SUFFIXES[suffix.lower()]
    pinned = None
    index = catalog.model(word)
    if index is None and "/" in word:
        provider_name, model_name = word.split("/", 1)
        pinned = catalog.provider(provider_name)
        index = catalog.model(model_name) if pinned is not None else None
    if index is None:
        raise ModelNotFound(f"The model '{expression}' does not exist.", param="model")
    return ModelExpression(frozenset({index}), pinned_provider=pinned, optimize=optimize)


def _mask(size: int, allowed: set[int]) -> npt.NDArray[np.bool_]:
    mask = np.zeros(size, dtype=np.bool_)
    mask[list(allowed)] = True
    return mask


def _provider_ids(catalog: Catalog, names: list[str], param: str) -> set[int]:
    ids = set()
    for name in names:
        index = catalog.provider(name)
        if index is None:
            raise InvalidRequest(f"Unknown provider '{name}' in {param}.", param=param)
        ids.add(index)
    return ids


class Router:
    """Builds and runs one routing decision per request."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._chat_models = {i for i, m in enumerate(catalog.models) if m.kind == "chat"}

    def plan(
        self,
        *,
        expressions: list[str],
        analysis: core.Analysis,
        key: ApiKey,
        layers: list[tuple[str | None, RoutingOptions]],
        request_options: RoutingOptions | None,
        fallback_mode: bool = False,
        started: float | None = None,
    ) -> RoutePlan:
        """``layers`` is the precedence chain below the model expression, lowest first, each
        with the policy name it came from (if any)."""
        begin = time.perf_counter() if started is None else started
        catalog = self.catalog
        parsed = [resolve_model(catalog, e) for e in expressions]
        options = RoutingOptions()
        policy = None
        for name, layer in layers:
            options = merge(options, layer)
            policy = name or policy
        for expression in parsed:
            if expression.optimize is not None:
                options = merge(options, RoutingOptions(optimize=expression.optimize))  # type: ignore[arg-type]
        if request_options is not None:
            options = merge(options, request_options)
        if options.only_byok and options.only_platform:
            raise InvalidRequest(
                "routing.only_byok and routing.only_platform cannot both be true.",
                param="routing.only_byok",
            )
        groups = self._model_groups(parsed, key, fallback_mode)
        provider_mask = self._provider_mask(options, key, parsed)
        strategy = "custom" if options.weights else (options.optimize or "balanced")
        ranked: list[int] = []
        total = viable = 0
        last_result = None
        for group in groups:
            constraints = self._constraints(options, analysis, provider_mask, group)
            result = catalog.table.route(constraints)
            total += result.candidates_total
            viable += result.candidates_viable
            ranked.extend(int(r) for r in result.ranked)
            last_result = result
        if not ranked and last_result is not None:
            self._raise_empty(last_result)
        return RoutePlan(
            deployments=[catalog.deployments[r] for r in ranked],
            strategy=strategy,
            policy=policy,
            candidates_total=total,
            candidates_viable=viable,
            decision_ms=(time.perf_counter() - begin) * 1000.0,
            allow_fallbacks=options.allow_fallbacks is not False,
            max_fallback_attempts=(
                options.max_fallback_attempts if options.max_fallback_attempts is not None else 3
            ),
            prompt_tokens=analysis.prompt_tokens,
        )

    def _model_groups(
        self, parsed: list[ModelExpression], key: ApiKey, fallback_mode: bool
    ) -> list[set[int]]:
        allowed = None
        if key.allowed_models is not None:
            allowed = {
                i for name in key.allowed_models if (i := self.catalog.model(name)) is not None
            }
        groups: list[set[int]] = []
        for expression in parsed:
            models = (
                set(expression.models) if expression.models is not None else set(self._chat_models)
            )
            if allowed is not None:
                if expression.models is not None and not models <= allowed:
                    raise PermissionDenied(
                        "This API key is not allowed to use this model.",
                        code="model_not_allowed",
                        param="model",
                    )
                models &= allowed
            groups.append(models)
        if not fallback_mode:
            return [set().union(*groups)]
        return groups

    def _provider_mask(
        self, options: RoutingOptions, key: ApiKey, parsed: list[ModelExpression]
    ) -> npt.NDArray[np.bool_]:
        catalog = self.catalog
        count = len(catalog.providers)
        if key.mode == "test":
            usable = {catalog.mock_index} if catalog.mock_index is not None else set()
        else:
            usable = {
                i for i in range(count) if catalog.usable_providers[i] and i != catalog.mock_index
            }
        allowed = set(usable)
        if options.providers is not None:
            allowed &= _provider_ids(catalog, options.providers, "routing.providers")
        if options.exclude_providers is not None:
            allowed -= _provider_ids(
                catalog, options.exclude_providers, "routing.exclude_providers"
            )
        pins = {e.pinned_provider for e in parsed if e.pinned_provider is not None}
        if pins and key.mode == "live":
            allowed &= pins
        return _mask(count, {int(i) for i in allowed})

    def _constraints(
        self,
        options: RoutingOptions,
        analysis: core.Analysis,
        provider_mask: npt.NDArray[np.bool_],
        models: set[int],
    ) -> core.RouteRequest:
        catalog = self.catalog
        region_mask = None
        if options.regions is not None:
            region_mask = _mask(
                len(catalog.regions),
                {
                    i
                    for i, name in enumerate(catalog.regions)
                    if any(fnmatch.fnmatchcase(name, g) for g in options.regions)
                },
            )
        strategy = options.optimize or "balanced"
        weights = options.weights.as_tuple() if options.weights else PRESETS[strategy]
        needs_vision = bool(analysis.required_capabilities & core.CAP_VISION)
        max_output = analysis.max_output_tokens or 0
        return core.RouteRequest(
            model_mask=_mask(len(catalog.models), models),
            provider_mask=provider_mask,
            region_mask=region_mask,
            required_capabilities=analysis.required_capabilities,
            prompt_tokens=analysis.prompt_tokens,
            max_output_tokens=max_output,
            expected_output_tokens=max_output or DEFAULT_EXPECTED_OUTPUT,
            min_data_policy=DATA_POLICY_LEVELS[options.data_policy or "none"],
            key_source=(
                core.KEY_SOURCE_BYOK
                if options.only_byok
                else core.KEY_SOURCE_PLATFORM
                if options.only_platform
                else core.KEY_SOURCE_ANY
            ),
            max_price_per_1m=options.max_cost_per_1m,
            max_ttft_ms=options.max_ttft_ms,
            min_throughput_tps=options.min_throughput_tps,
            min_success_rate=options.min_success_rate,
            weights=weights if sum(weights) > 0 else PRESETS["balanced"],
            task=TASKS.index("vision") if needs_vision else TASKS.index("chat"),
            quality_floor=options.quality_floor,
            cheapest=strategy == "cheapest" and options.weights is None,
        )

    def _raise_empty(self, result: core.RouteResult) -> None:
        constraint = result.emptied_by or "model"
        if result.health_only:
            raise ServiceUnavailable(
                f"No healthy provider is available (constraint '{constraint}' removed the "
                "last candidates).",
                code="no_providers_available",
            )
        if constraint in _CONTEXT_CONSTRAINTS:
            raise ContextLengthExceeded(
                "The prompt plus the requested output exceed the context window of every "
                f"candidate deployment (constraint '{constraint}').",
                param="messages",
            )
        detail = CONSTRAINT_MEANINGS.get(constraint, "no deployment satisfies it")
        raise PolicyConflict(
            f"No candidate satisfies the routing constraints: '{constraint}' "
            f"emptied the candidate set ({detail}).",
            param=None,
        )
