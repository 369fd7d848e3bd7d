"""A vectorised numpy implementation of the routing decision, for ``route_bench.py``.

It makes the same decision as ``gateway.routing.RoutingTable.route`` (SPEC §3 filter and score,
as implemented by the native core): the same hard constraints in the same order, min-max
normalisation within the viable set, the same weighted sum (same operation order, so scores are
bit-for-bit equal in practice), and the same ranking (score, then lower blended price, then
lower row) via a stable ``np.lexsort``. Like the API, it compiles a query's names into id-indexed
masks once and caches them by the query's value less its token counts, so a repeated query
shape costs a key, a dictionary lookup and the vectorised pass. It answers with ``NumpyDecision``,
which has the fields of ``gateway.routing.Decision`` that the benchmark compares.

It is a yardstick, not product code: no ``explain``, no per-row rejection reasons.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt

from gateway import _router_core as core
from gateway.config import TASKS
from gateway.errors import InvalidRequest
from gateway.routing import ModelExpression, RouteQuery, resolve_model, strategy_of
from gateway.routing.catalog import CAPABILITY_BITS, DATA_POLICY_LEVELS, Catalog
from gateway.routing.presets import auto_quality_floor
from gateway.routing_options import RoutingOptions, merge

DEFAULT_EXPECTED_OUTPUT = 512  # as gateway.routing.table
CONSTRAINTS: tuple[str, ...] = core.CONSTRAINT_NAMES
FIRST_HEALTH = CONSTRAINTS.index("ttft")
FIRST_QUALITY = 6  # row of the first task's quality in NumpyTable.floats
CHEAPEST_ROWS = np.array([[0], [1], [2]])  # blended, price_input, price_output
LOWER_IS_BETTER = (True, True, False, False, False)  # cost, ttft, throughput, success, quality
_CACHE_LIMIT = 4096
_encode = msgspec.json.Encoder().encode

F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Weights = tuple[float, float, float, float, float]


class NumpyTable:
    """The candidate table's columns as numpy arrays (one entry per deployment row)."""

    def __init__(self, catalog: Catalog) -> None:
        """Build the columns from the catalog exactly as ``Catalog._table`` does."""
        rows = catalog.deployments
        offers = [d.offer for d in rows]
        self.model = np.array([catalog.model_index[d.model.id] for d in rows], dtype=np.int32)
        self.provider = np.array(
            [catalog.provider_index[d.provider.id] for d in rows], dtype=np.int32
        )
        self.region = np.array([catalog.region_index[d.region] for d in rows], dtype=np.int32)
        # The float columns scoring reads, stacked so that one fancy index gathers the viable
        # rows of all of them: blended, price_input, price_output, ttft, throughput, success,
        # then one quality row per task. The named columns below are views into it.
        self.floats = np.empty((FIRST_QUALITY + len(TASKS), len(rows)), dtype=np.float64)
        self.blended, self.price_input, self.price_output = self.floats[:3]
        self.ttft_ms, self.throughput_tps, self.success_rate = self.floats[3:FIRST_QUALITY]
        self.quality_by_task = self.floats[FIRST_QUALITY:]
        self.price_input[:] = [d.price.input for d in rows]
        self.price_output[:] = [d.price.output for d in rows]
        # f64::midpoint is (a + b) / 2 for any price below f64::MAX / 2.
        self.blended[:] = (self.price_input + self.price_output) / 2.0
        self.context_window = np.array([o.context_window for o in offers], dtype=np.int64)
        self.max_output = np.array([o.max_output for o in offers], dtype=np.int64)
        self.capabilities = np.array(
            [sum(CAPABILITY_BITS[c] for c in set(o.capabilities)) for o in offers],
            dtype=np.uint32,
        )
        self.data_policy = np.array(
            [DATA_POLICY_LEVELS[d.provider.data_policy] for d in rows], dtype=np.uint8
        )
        self.key_source = np.full(len(rows), core.KEY_SOURCE_PLATFORM, dtype=np.uint8)
        self.ttft_ms[:] = [o.ttft_ms for o in offers]
        self.throughput_tps[:] = [o.throughput_tps for o in offers]
        self.success_rate[:] = 1.0
        self.circuit_open = np.zeros(len(rows), dtype=np.bool_)
        self.quality_by_task[:] = (
            np.array(
                [[d.model.quality.get(task, 0.5) for task in TASKS] for d in rows], dtype=np.float64
            )
            .reshape(len(rows), len(TASKS))
            .T
        )
        self.all_finite = bool(np.isfinite(self.floats).all())  # lets scoring skip the checks

    def __len__(self) -> int:
        return len(self.model)

    def update_health(
        self,
        row: int,
        *,
        ttft_ms: float,
        throughput_tps: float,
        success_rate: float,
        circuit_open: bool,
    ) -> None:
        """Replace one row's live health figures (as ``CandidateTable.update_health``)."""
        self.ttft_ms[row] = ttft_ms
        self.throughput_tps[row] = throughput_tps
        self.success_rate[row] = success_rate
        self.circuit_open[row] = circuit_open
        self.all_finite = self.all_finite and bool(
            np.isfinite((ttft_ms, throughput_tps, success_rate)).all()
        )


@dataclass(frozen=True, slots=True)
class Request:
    """One compiled request: ``core.RouteRequest``'s fields except the query's token counts."""

    model_mask: Mask
    provider_mask: Mask
    region_mask: Mask | None
    required_capabilities: int
    min_data_policy: int
    key_source: int
    max_price_per_1m: float | None
    max_ttft_ms: float | None
    min_throughput_tps: float | None
    min_success_rate: float | None
    weights: Weights
    task: int
    quality_floor: float | None
    cheapest: bool
    gather: npt.NDArray[np.intp]  # rows of NumpyTable.floats that scoring reads, as a column
    weight_column: F64  # ``weights`` shaped (5, 1)


@dataclass(frozen=True, slots=True)
class Compiled:
    """What the cache holds per query value (as ``RoutingTable._compiled``)."""

    requests: list[Request]
    strategy: str
    weights: Weights
    warnings: list[str]
    relaxed: Request | None


@dataclass(frozen=True, slots=True)
class Result:
    """One vectorised decision over the table (``core.RouteResult``'s fields)."""

    ranked: npt.NDArray[np.int64]
    scores: F64
    candidates_total: int
    emptied_by: str | None
    health_only: bool


class NumpyDecision:
    """The reference's answer: the comparable fields of ``gateway.routing.Decision``."""

    __slots__ = (
        "candidates_total",
        "candidates_viable",
        "emptied_by",
        "health_only",
        "ranked_rows",
        "scores",
        "strategy",
        "warnings",
        "weights",
    )

    def __init__(  # noqa: PLR0917
        self,
        strategy: str,
        weights: Weights,
        warnings: list[str],
        ranked_rows: npt.NDArray[np.int64],
        scores: F64,
        candidates_total: int,
        candidates_viable: int,
        emptied_by: str | None,
        health_only: bool,
        /,
    ) -> None:
        self.strategy = strategy
        self.weights = weights
        self.warnings = warnings
        self.ranked_rows = ranked_rows
        self.scores = scores
        self.candidates_total = candidates_total
        self.candidates_viable = candidates_viable
        self.emptied_by = emptied_by
        self.health_only = health_only

    def __len__(self) -> int:
        return len(self.ranked_rows)


def _mask(size: int, allowed: set[int]) -> Mask:
    mask = np.zeros(size, dtype=np.bool_)
    if allowed:
        mask[list(allowed)] = True
    return mask


def _normalised_weights(raw: Weights) -> Weights:
    """As the core's ``Weights::new``: divide by the sum, summed left to right."""
    total = 0.0
    for w in raw:
        if not np.isfinite(w) or w < 0.0:
            raise ValueError(f"weights must be finite and non-negative, got {raw}")
        total += w
    if total <= 0.0:
        raise ValueError("weights must have at least one positive entry")
    return (raw[0] / total, raw[1] / total, raw[2] / total, raw[3] / total, raw[4] / total)


def _normalise(values: F64, lower_is_better: bool) -> F64:
    """Min-max to [0, 1], 1 = best; all-equal gives 1.0; infinities sit at their end."""
    finite = np.isfinite(values)
    if finite.all():
        lo, hi = values.min(), values.max()
        spread = hi - lo
        if not (spread > 0.0 and np.isfinite(spread)):
            return np.ones(len(values))
        position = (values - lo) / spread
        return 1.0 - position if lower_is_better else position
    kept = values[finite]
    lo = kept.min() if len(kept) else np.inf
    hi = kept.max() if len(kept) else -np.inf
    spread = hi - lo
    usable = bool(spread > 0.0 and np.isfinite(spread))
    with np.errstate(invalid="ignore", divide="ignore"):
        position = (values - lo) / spread if usable else np.ones(len(values))
    position = np.where(values == np.inf, 1.0, np.where(values == -np.inf, 0.0, position))
    flipped = 1.0 - position if lower_is_better else position
    if not usable:  # finite values score 1.0 whatever the direction
        flipped = np.where(finite, 1.0, flipped)
    return np.where(np.isnan(values), 0.0, flipped)


def _scores(x: F64, w: F64, finite: bool) -> F64:
    """Weighted sum of the five normalised features, rows of ``x``: cost, ttft, throughput,
    success rate, quality (``w`` is the normalised weights as a (5, 1) column)."""
    if finite:  # the core's min-max rule for all five at once (no infinity cases)
        lo = x.min(axis=1, keepdims=True)
        spread = x.max(axis=1, keepdims=True) - lo
        if spread.min() > 0.0:
            f = (x - lo) / spread
        else:  # an all-equal feature scores 1.0 whatever its direction
            flat = ~(spread > 0.0)
            f = (x - lo) / np.where(flat, 1.0, spread)
            f[:2] = 1.0 - f[:2]
            f[flat[:, 0]] = 1.0
            f = f * w
            return (((f[0] + f[1]) + f[2]) + f[3]) + f[4]
        np.subtract(1.0, f[:2], out=f[:2])  # cost and ttft: lower is better
    else:
        f = np.array([_normalise(x[i], LOWER_IS_BETTER[i]) for i in range(5)])
    # The core sums w[i] * f[i] left to right; keep that order so that the floats agree.
    f *= w
    scores = f[0] + f[1]
    scores += f[2]
    scores += f[3]
    scores += f[4]
    return scores


class NumpyRouter:
    """``RoutingTable.route`` re-implemented with vectorised numpy over ``NumpyTable``."""

    def __init__(self, catalog: Catalog, table: NumpyTable | None = None) -> None:
        self.catalog = catalog
        self.table = NumpyTable(catalog) if table is None else table
        self._chat_models = {i for i, m in enumerate(catalog.models) if m.kind == "chat"}
        self._cache: dict[tuple[object, ...], Compiled] = {}

    # ------------------------------------------------------------------ per request

    def route(self, query: RouteQuery) -> NumpyDecision:
        """Filter, score and rank: the decision ``RoutingTable.route`` makes."""
        compiled = self.compiled(query)
        tokens = (
            query.prompt_tokens,
            query.max_output_tokens,
            query.expected_output_tokens or query.max_output_tokens or DEFAULT_EXPECTED_OUTPUT,
        )
        results = [self.route_request(r, *tokens) for r in compiled.requests]
        if compiled.relaxed is not None and all(r.emptied_by == "quality_floor" for r in results):
            results = [self.route_request(compiled.relaxed, *tokens)]
        if len(results) == 1:
            ranked, scores = results[0].ranked, results[0].scores
        else:
            ranked = np.concatenate([r.ranked for r in results])
            scores = np.concatenate([r.scores for r in results])
        first_empty = next((r for r in results if r.emptied_by is not None), results[0])
        return NumpyDecision(
            compiled.strategy,
            compiled.weights,
            compiled.warnings,
            ranked,
            scores,
            sum(r.candidates_total for r in results),
            len(ranked),
            None if len(ranked) else first_empty.emptied_by,
            not len(ranked) and all(r.health_only for r in results),
        )

    def compiled(self, query: RouteQuery) -> Compiled:
        """The cached compilation of ``query``, keyed like the API's cache (no token counts)."""
        key = (
            query.model,
            _encode(query.routing),
            _encode(query.defaults),
            query.capabilities,
            query.task,
            query.difficulty,
            query.key_mode,
            query.allowed_models,
            query.data_policy_floor,
        )
        compiled = self._cache.get(key)
        if compiled is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            compiled = self._cache[key] = self._compile(query)
        return compiled

    def route_request(
        self, r: Request, prompt_tokens: int, max_output_tokens: int, expected_output_tokens: int
    ) -> Result:
        """The core's filter-score-rank pass, vectorised over every row."""
        t = self.table
        steps = self._constraint_masks(r, prompt_tokens, max_output_tokens)
        model_ok = steps[0][1]
        viable = model_ok.copy()
        for _, ok in steps[1:]:
            viable &= ok
        rows = np.flatnonzero(viable)
        total = int(np.count_nonzero(model_ok))
        if len(rows) == 0:
            emptied = self._emptied_at(steps, len(t))
            return Result(
                np.empty(0, np.int64),
                np.empty(0),
                total,
                CONSTRAINTS[emptied],
                emptied >= FIRST_HEALTH,
            )
        g = t.floats[r.gather, rows]  # one gather: blended, prices, then the features
        cost = float(prompt_tokens) * g[1] + float(expected_output_tokens) * g[2]
        if r.cheapest:
            scores = _normalise(cost, lower_is_better=True)
            order = np.lexsort((g[0], cost))  # stable: equal keys keep the lower row first
        else:
            g[2] = cost  # rows 2..6 are now the five features, in weight order
            scores = _scores(g[2:], r.weight_column, t.all_finite)
            order = np.lexsort((g[0], -scores))
        return Result(rows[order], scores[order], total, None, False)

    def _constraint_masks(
        self, r: Request, prompt_tokens: int, max_output_tokens: int
    ) -> list[tuple[int, Mask]]:
        """(constraint index, row mask) for every constraint that restricts anything."""
        t = self.table
        steps: list[tuple[int, Mask]] = [
            (0, r.model_mask[t.model]),
            (1, r.provider_mask[t.provider]),
        ]
        if r.key_source != core.KEY_SOURCE_ANY:
            steps.append((2, t.key_source == r.key_source))
        if r.required_capabilities:
            caps = r.required_capabilities
            steps.append((3, (t.capabilities & np.uint32(caps)) == caps))
        needed = prompt_tokens + max_output_tokens
        if needed:
            steps.append((4, t.context_window >= needed))
        if max_output_tokens:
            steps.append((5, t.max_output >= max_output_tokens))
        if r.region_mask is not None:
            steps.append((6, r.region_mask[t.region]))
        if r.min_data_policy:
            steps.append((7, t.data_policy >= r.min_data_policy))
        if r.max_price_per_1m is not None:
            steps.append((8, t.blended <= r.max_price_per_1m))
        if r.quality_floor is not None:
            steps.append((9, t.quality_by_task[r.task] >= r.quality_floor))
        if r.max_ttft_ms is not None:
            steps.append((10, t.ttft_ms <= r.max_ttft_ms))
        if r.min_throughput_tps is not None:
            steps.append((11, t.throughput_tps >= r.min_throughput_tps))
        if r.min_success_rate is not None:
            steps.append((12, t.success_rate >= r.min_success_rate))
        steps.append((13, ~t.circuit_open))
        return steps

    @staticmethod
    def _emptied_at(steps: list[tuple[int, Mask]], rows: int) -> int:
        """The first constraint after which nothing survived (only on an empty result)."""
        if rows == 0:
            return 0
        alive = np.ones(rows, dtype=np.bool_)
        for index, ok in steps:
            alive &= ok
            if not alive.any():
                return index
        raise AssertionError("called with a non-empty result")

    # ------------------------------------------------------------------ compilation

    def _compile(self, query: RouteQuery) -> Compiled:
        """SPEC §2-3 names → masks and limits, as ``RoutingTable._compile``."""
        catalog = self.catalog
        names = (query.model,) if isinstance(query.model, str) else query.model
        parsed = [resolve_model(catalog, name) for name in names]
        options = query.defaults
        for expression in parsed:
            if expression.optimize is not None:
                options = msgspec.structs.replace(
                    options, optimize=expression.optimize, weights=None
                )
        options = merge(options, query.routing)
        if options.only_byok and options.only_platform:
            raise InvalidRequest("routing.only_byok and routing.only_platform cannot both be true.")
        strategy, weights, cheapest = strategy_of(options)
        groups = self._model_groups(parsed, query, options.mode == "fallback")
        provider_mask = self._provider_mask(options, query, parsed)
        region_mask = None
        if options.regions is not None:
            region_mask = _mask(
                len(catalog.regions),
                {
                    i
                    for i, name in enumerate(catalog.regions)
                    if any(fnmatch.fnmatchcase(name, p.lower()) for p in options.regions)
                },
            )
        floor = DATA_POLICY_LEVELS[options.data_policy or "none"]
        if query.data_policy_floor is not None:
            floor = max(floor, DATA_POLICY_LEVELS[query.data_policy_floor])
        caps = 0
        for capability in query.capabilities:
            caps |= CAPABILITY_BITS[capability]
        soft_floor = None
        if options.quality_floor is None and any(e.word == "auto" for e in parsed):
            soft_floor = auto_quality_floor(query.difficulty)
        normalised = _normalised_weights(weights)

        def request(models: set[int], quality_floor: float | None) -> Request:
            return Request(
                model_mask=_mask(len(catalog.models), models),
                provider_mask=provider_mask,
                region_mask=region_mask,
                required_capabilities=caps,
                min_data_policy=floor,
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
                weights=normalised,
                task=TASKS.index(query.task),
                quality_floor=quality_floor,
                cheapest=cheapest,
                weight_column=np.array(normalised).reshape(5, 1),
                gather=CHEAPEST_ROWS
                if cheapest
                else np.array(
                    [[0], [1], [2], [3], [4], [5], [FIRST_QUALITY + TASKS.index(query.task)]]
                ),
            )

        hard = options.quality_floor
        requests = [request(g, hard if soft_floor is None else soft_floor) for g in groups]
        relaxed = request(set().union(*groups), None) if soft_floor is not None else None
        return Compiled(requests, strategy, weights, _warnings(options, query), relaxed)

    def _model_groups(
        self, parsed: list[ModelExpression], query: RouteQuery, fallback_mode: bool
    ) -> list[set[int]]:
        allowed = None
        if query.allowed_models is not None:
            allowed = {
                i for name in query.allowed_models if (i := self.catalog.model(name)) is not None
            }
        groups = []
        for expression in parsed:
            models = set(self._chat_models if expression.models is None else expression.models)
            groups.append(models & allowed if allowed is not None else models)
        return groups if fallback_mode else [set().union(*groups)]

    def _provider_mask(
        self, options: RoutingOptions, query: RouteQuery, parsed: list[ModelExpression]
    ) -> Mask:
        catalog = self.catalog
        mock = catalog.mock_index
        if query.key_mode == "test":
            allowed = {mock} if mock is not None else set()
        else:
            allowed = {
                i
                for i in range(len(catalog.providers))
                if catalog.usable_providers[i] and i != mock
            }
        if options.providers is not None:
            allowed &= {catalog.provider(n) for n in options.providers}  # type: ignore[misc]
        if options.exclude_providers is not None:
            allowed -= {catalog.provider(n) for n in options.exclude_providers}  # type: ignore[misc]
        pins = {e.pinned_provider for e in parsed if e.pinned_provider is not None}
        if pins and query.key_mode == "live":
            allowed &= pins
        return _mask(len(catalog.providers), {i for i in allowed if i is not None})


def _warnings(options: RoutingOptions, query: RouteQuery) -> list[str]:
    notes = []
    if options.weights is not None and options.optimize is not None:
        notes.append("routing.optimize is ignored because routing.weights is set")
    if options.mode is not None and isinstance(query.model, str):
        notes.append("routing.mode is ignored without 'models'")
    if options.allow_fallbacks is False and options.max_fallback_attempts:
        notes.append("routing.max_fallback_attempts is ignored because allow_fallbacks is false")
    return notes
