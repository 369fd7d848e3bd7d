"""``RoutingTable``: the scorer API. A catalog compiled once; a query routed in one native call.

Python turns a query's names (models, providers, region globs: small sets) into masks and
caches the compiled ``RouteRequest`` by the query's value, so a repeated query shape costs a
dictionary lookup plus the core's filter-and-score pass.

BYOK (SPEC §8): a workspace's own-key deployments are rows of their own (``catalog``), enabled
per query by ``RouteQuery.byok_providers``. When a BYOK row and its platform twin are both
viable, the BYOK row is moved to just ahead of its twin (``_byok_first``), so the platform
key is that deployment's fallback.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from gateway import _router_core as core
from gateway.config import TASKS, Config, load_config
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.routing.catalog import CAPABILITY_BITS, DATA_POLICY_LEVELS, Catalog
from gateway.routing.decision import Decision, RouteQuery
from gateway.routing.expressions import ModelExpression, resolve_model
from gateway.routing.presets import auto_quality_floor, strategy_of
from gateway.routing_options import RoutingOptions, merge

DEFAULT_EXPECTED_OUTPUT = 512
_CACHE_LIMIT = 4096
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled query shape: its ``RouteRequest`` per model group, built once and cached;
    each call passes the request's token counts to the core alongside it."""

    requests: list[core.RouteRequest]  # one per model group, with any configured floor
    soft_floor: bool  # ``auto`` without a configured floor: the prompt's floor, per call
    group_masks: list[npt.NDArray[np.bool_]]  # models each group lists (first place only)
    overlap: bool  # some model is in two groups: it is scored in both, listed in the first
    strategy: str
    weights: tuple[float, float, float, float, float]
    warnings: list[str]
    byok: bool  # some BYOK row may be viable: rank in full, then put twins together


def _route(
    table: core.CandidateTable,
    request: core.RouteRequest,
    query: RouteQuery,
    *,
    limit: int | None,
    explain: bool = False,
    quality_floor: float | None = None,
) -> core.RouteResult:
    """One core call: a cached ``RouteRequest`` plus this request's token counts (and,
    under ``auto``, the floor its prompt calls for)."""
    return table.route(
        request,
        prompt_tokens=query.prompt_tokens,
        max_output_tokens=query.max_output_tokens,
        expected_output_tokens=(
            query.expected_output_tokens or query.max_output_tokens or DEFAULT_EXPECTED_OUTPUT
        ),
        limit=limit,
        explain=explain,
        quality_floor=quality_floor,
    )


_OPTION_KEYS: dict[int, tuple[RoutingOptions, bytes]] = {}


def _options_key(options: RoutingOptions) -> bytes:
    """``options`` as a cache-key part: its encoding, remembered for the objects every
    request passes again (the built-in, workspace and policy layers, ``NOTHING_SET``)."""
    known = _OPTION_KEYS.get(id(options))
    if known is not None and known[0] is options:
        return known[1]
    encoded = _encode(options)
    if len(_OPTION_KEYS) >= 256:
        _OPTION_KEYS.clear()
    _OPTION_KEYS[id(options)] = (options, encoded)  # the entry keeps the object, and its id
    return encoded


def _mask(size: int, allowed: set[int]) -> npt.NDArray[np.bool_]:
    mask = np.zeros(size, dtype=np.bool_)
    if allowed:
        mask[list(allowed)] = True
    return mask


class RoutingTable:
    """A catalog compiled into the core's candidate table.

    >>> table = RoutingTable.from_config(assume_credentials=True)
    >>> decision = table.route(RouteQuery(model="cheapest", prompt_tokens=500))
    >>> decision.candidates[0].rank
    1
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._chat_models = {i for i, m in enumerate(catalog.models) if m.kind == "chat"}
        self._embedding_models = {i for i, m in enumerate(catalog.models) if m.kind == "embedding"}
        self._cache: dict[tuple[object, ...], Template] = {}
        self._row_model = np.array(
            [catalog.model_index[d.model.id] for d in catalog.deployments], dtype=np.intp
        )

    @classmethod
    def from_config(
        cls,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        assume_credentials: bool = False,
    ) -> RoutingTable:
        """Build from a ``Config``, a YAML path, or the built-in catalog (``None``).

        Credentials are read from ``environ`` (default ``os.environ``); with
        ``assume_credentials`` every provider counts as having a usable key.
        """
        loaded = config if isinstance(config, Config) else load_config(config)
        catalog = Catalog(loaded, environ)
        if assume_credentials:
            catalog.usable_providers[:] = True
        return cls(catalog)

    def route(
        self, query: RouteQuery, *, explain: bool = False, limit: int | None = None
    ) -> Decision:
        """Enumerate, filter and score; ``explain`` adds each dropped row's reason, and
        ``limit`` ranks only the best ``limit`` rows (counts still cover every viable row)."""
        template = self._template(query)
        if explain or len(template.requests) > 1:
            return self._route_groups(template, query, explain, limit)
        table = self.catalog.table
        # A BYOK row may rank anywhere below its twin, so rank every row before reordering.
        core_limit = None if template.byok else limit
        floor = auto_quality_floor(query.difficulty) if template.soft_floor else None
        result = _route(table, template.requests[0], query, limit=core_limit, quality_floor=floor)
        if floor is not None and result.emptied_by == "quality_floor":
            result = _route(table, template.requests[0], query, limit=core_limit)
        ranked, scores = result.ranked, result.scores
        if template.byok:
            ranked, scores = self._byok_first(ranked, scores, limit)
        return Decision(
            self.catalog,
            template.strategy,
            template.weights,
            template.warnings,
            ranked,
            scores,
            result.candidates_total,
            result.candidates_viable,
            result.emptied_by,
            result.health_only,
            None,
        )

    def _route_groups(
        self, template: Template, query: RouteQuery, explain: bool, limit: int | None
    ) -> Decision:
        """``models`` in fallback mode (one pass per model, in order) and ``explain``.

        Each group is filtered and scored over all of its models (SPEC §3: normalised within
        that group's viable set), then lists only the rows whose model no earlier group holds,
        so a deployment appears once, at its first place."""
        table = self.catalog.table
        # With overlapping groups some ranked rows are dropped, so rank each group in full.
        core_limit = None if template.byok or template.overlap else limit
        floor = auto_quality_floor(query.difficulty) if template.soft_floor else None
        results = [
            _route(table, request, query, limit=core_limit, explain=explain, quality_floor=floor)
            for request in template.requests
        ]
        relax = floor is not None and not any(len(r.ranked) for r in results)
        if relax and any(r.emptied_by == "quality_floor" for r in results):
            results = [
                _route(table, request, query, limit=core_limit, explain=explain)
                for request in template.requests
            ]
        if template.overlap:
            kept = [
                mask[self._row_model[r.ranked]]
                for mask, r in zip(template.group_masks, results, strict=True)
            ]
            ranked = np.concatenate([r.ranked[k] for r, k in zip(results, kept, strict=True)])
            scores = np.concatenate([r.scores[k] for r, k in zip(results, kept, strict=True)])
            viable = len(ranked)
            listed = np.logical_or.reduce(template.group_masks)
            total = int(np.count_nonzero(listed[self._row_model]))
        else:
            ranked = np.concatenate([r.ranked for r in results])
            scores = np.concatenate([r.scores for r in results])
            viable = sum(r.candidates_viable for r in results)
            total = sum(r.candidates_total for r in results)
        if template.byok:  # twins share a model, so they never straddle two groups
            ranked, scores = self._byok_first(ranked, scores, limit)
        elif limit is not None:
            ranked, scores = ranked[:limit], scores[:limit]
        rejected_by = None
        if explain:  # each row's reason comes from the group that holds its model
            rejected_by = np.zeros(len(self.catalog.deployments), dtype=np.int8)  # "model"
            for mask, result in zip(template.group_masks, results, strict=True):
                assert result.rejected_by is not None
                owned = mask[self._row_model]
                rejected_by[owned] = result.rejected_by[owned]
        first_empty = next((r for r in results if r.emptied_by is not None), results[0])
        return Decision(
            self.catalog,
            template.strategy,
            template.weights,
            template.warnings,
            ranked,
            scores,
            total,
            viable,
            None if len(ranked) else first_empty.emptied_by,
            not len(ranked) and all(r.health_only for r in results),
            rejected_by,
        )

    def _template(self, query: RouteQuery) -> Template:
        key = (
            query.model,
            _options_key(query.routing),
            _options_key(query.defaults),
            query.capabilities,
            query.task,  # not the difficulty: ``auto``'s floor is passed per call
            query.key_mode,
            query.allowed_models,
            query.data_policy_floor,
            query.byok_providers,
        )
        template = self._cache.get(key)
        if template is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            template = self._cache[key] = self._compile(query)
        return template

    def _compile(self, query: RouteQuery) -> Template:
        catalog = self.catalog
        names = (query.model,) if isinstance(query.model, str) else query.model
        parsed = [resolve_model(catalog, name) for name in names]
        options = query.defaults
        for expression in parsed:  # SPEC §2: request routing > model suffix > lower layers
            if expression.optimize is not None:
                options = msgspec.structs.replace(
                    options, optimize=expression.optimize, weights=None
                )
        options = merge(options, query.routing)
        if options.only_byok and options.only_platform:
            raise InvalidRequest(
                "routing.only_byok and routing.only_platform cannot both be true.",
                param="routing.only_byok",
            )
        strategy, weights, cheapest = strategy_of(options)
        warnings = _warnings(options, query)
        groups, owned = self._model_groups(parsed, query, options.mode == "fallback")
        provider_mask = self._provider_mask(options, query, parsed)
        region_mask = self._region_mask(options)
        floor = DATA_POLICY_LEVELS[options.data_policy or "none"]
        if query.data_policy_floor is not None:
            floor = max(floor, DATA_POLICY_LEVELS[query.data_policy_floor])
        caps = 0
        for capability in query.capabilities:
            caps |= CAPABILITY_BITS[capability]
        soft_floor = options.quality_floor is None and any(e.word == "auto" for e in parsed)

        settings: dict[str, Any] = {
            "provider_mask": provider_mask,
            "region_mask": region_mask,
            "required_capabilities": caps,
            "min_data_policy": floor,
            "key_source": (
                core.KEY_SOURCE_BYOK
                if options.only_byok
                else core.KEY_SOURCE_PLATFORM
                if options.only_platform
                else core.KEY_SOURCE_ANY
            ),
            "max_price_per_1m": options.max_cost_per_1m,
            "max_ttft_ms": options.max_ttft_ms,
            "min_throughput_tps": options.min_throughput_tps,
            "min_success_rate": options.min_success_rate,
            "weights": weights,
            "task": TASKS.index(query.task),
            "cheapest": cheapest,
        }
        models = len(catalog.models)
        byok = bool(provider_mask[catalog.byok_offset :].any())
        masks = [_mask(models, g) for g in groups]
        overlap = sum(len(g) for g in groups) != len(set().union(*groups))
        return Template(
            requests=[
                core.RouteRequest(**settings, model_mask=m, quality_floor=options.quality_floor)
                for m in masks
            ],
            soft_floor=soft_floor,
            group_masks=[_mask(models, g) for g in owned] if overlap else masks,
            overlap=overlap,
            strategy=strategy,
            weights=weights,
            warnings=warnings,
            byok=byok,
        )

    def _byok_first(
        self,
        ranked: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
        limit: int | None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Each deployment's BYOK row right ahead of its platform twin, at the better of
        their two places; everything else keeps its order. Then the first ``limit``."""
        catalog = self.catalog
        if len(ranked) and catalog.is_byok[ranked].any():
            groups = catalog.twin_group[ranked]
            _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
            # lexsort: the last key is the primary one (the pair's best place), then BYOK
            order = np.lexsort((~catalog.is_byok[ranked], first[inverse]))
            ranked, scores = ranked[order], scores[order]
        if limit is not None:
            ranked, scores = ranked[:limit], scores[:limit]
        return ranked, scores

    def _model_groups(
        self, parsed: list[ModelExpression], query: RouteQuery, fallback_mode: bool
    ) -> tuple[list[set[int]], list[set[int]]]:
        """Each group's models, and the models each group lists: a model named twice is
        listed once, at its first place (the same sets unless groups overlap)."""
        allowed = None
        if query.allowed_models is not None:
            allowed = {
                i for name in query.allowed_models if (i := self.catalog.model(name)) is not None
            }
        groups: list[set[int]] = []
        for expression in parsed:
            if expression.models is None:  # a policy word: every model of the request's kind
                embedding = "embeddings" in query.capabilities
                models = set(self._embedding_models if embedding else self._chat_models)
            else:
                models = set(expression.models)
                if allowed is not None and not models <= allowed:
                    raise PermissionDenied(
                        "This API key is not allowed to use this model.",
                        code="model_not_allowed",
                        param="model",
                    )
            groups.append(models & allowed if allowed is not None else models)
        if not fallback_mode:
            pool = [set().union(*groups)]
            return pool, pool
        seen: set[int] = set()
        disjoint = []
        for models in groups:  # a model listed twice is tried once, at its first place
            disjoint.append(models - seen)
            seen |= models
        return groups, disjoint

    def _provider_mask(
        self, options: RoutingOptions, query: RouteQuery, parsed: list[ModelExpression]
    ) -> npt.NDArray[np.bool_]:
        """Indexed by the core's provider column: platform rows at a provider's index, BYOK
        rows at ``index + byok_offset``. Allow/deny lists and pins apply to both."""
        catalog = self.catalog
        mock = catalog.mock_index
        everyone = range(len(catalog.providers))
        if query.key_mode == "test":
            allowed: set[int | None] = {mock} if mock is not None else set()
            own: set[int | None] = set()
        else:
            allowed = {i for i in everyone if catalog.usable_providers[i] and i != mock}
            own = {
                i
                for name in query.byok_providers
                if (i := catalog.provider(name)) is not None and catalog.byok_capable[i]
            }
        if options.providers is not None:
            listed = self._provider_ids(options.providers, "routing.providers")
            allowed, own = allowed & listed, own & listed
        if options.exclude_providers is not None:
            denied = self._provider_ids(options.exclude_providers, "routing.exclude_providers")
            allowed, own = allowed - denied, own - denied
        pins: set[int | None] = {e.pinned_provider for e in parsed if e.pinned_provider is not None}
        if pins and query.key_mode == "live":
            allowed, own = allowed & pins, own & pins
        offset = catalog.byok_offset
        return _mask(
            2 * offset,
            {i for i in allowed if i is not None} | {i + offset for i in own if i is not None},
        )

    def _provider_ids(self, names: list[str], param: str) -> set[int | None]:
        ids: set[int | None] = set()
        for name in names:
            index = self.catalog.provider(name)
            if index is None:
                raise InvalidRequest(f"Unknown provider '{name}' in {param}.", param=param)
            ids.add(index)
        return ids

    def _region_mask(self, options: RoutingOptions) -> npt.NDArray[np.bool_] | None:
        if options.regions is None:
            return None
        regions = self.catalog.regions
        return _mask(
            len(regions),
            {
                i
                for i, name in enumerate(regions)
                if any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in options.regions)
            },
        )


def _warnings(options: RoutingOptions, query: RouteQuery) -> list[str]:
    """Options that were accepted but have no effect here (``routing_metadata.warnings``)."""
    notes = []
    if options.weights is not None and options.optimize is not None:
        notes.append("routing.optimize is ignored because routing.weights is set")
    if options.mode is not None and isinstance(query.model, str):
        notes.append("routing.mode is ignored without 'models'")
    if options.allow_fallbacks is False and options.max_fallback_attempts:
        notes.append("routing.max_fallback_attempts is ignored because allow_fallbacks is false")
    return notes
