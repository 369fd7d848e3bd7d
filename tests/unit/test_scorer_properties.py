"""Properties of the public scorer API (``gateway.routing.RoutingTable``), SPEC §2-3.

Small random catalogs (providers with regions, data policies, aliases and credentials;
models with per-task quality; offers with prices, limits, capabilities and speeds) and random
queries (every ``RouteQuery`` and ``RoutingOptions`` field) are routed by the product and by
``scorer_reference``, a loop-based reference written from the SPEC.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from gateway import _router_core as core
from gateway.config import TASKS, Config, ModelConfig, OfferConfig, Price, ProviderConfig
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from gateway.routing import CONSTRAINT_MEANINGS, RouteQuery, RoutingOptions, RoutingTable
from gateway.routing_options import Weights

from .scorer_reference import RefDecision, ReferenceScorer

TOL = 1e-9
# No "explain" phase: its line tracing is slow on Python < 3.12 and adds nothing here.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
EXPLAIN_READY = hasattr(core.RouteResult, "rejected_by")
needs_explain = pytest.mark.skipif(
    not EXPLAIN_READY, reason="native core without RouteResult.rejected_by (explain=True)"
)

PROVIDER_IDS = ["openai", "anthropic", "groq", "p1", "p.two", "p-3", "vllm_local"]
PROVIDER_ALIASES = ["oa", "claude-co", "x1", "alias.p", "grq"]
MODEL_IDS = ["m-a", "m-b", "m.c", "m_d", "gpt-x", "llama-3", "cost"]
MODEL_ALIASES = ["ma", "mb-alias", "big", "fast", "tiny.1"]
REGIONS = ["global", "eu-west", "eu-central", "us-east", "us-west", "ap-south"]
REGION_PATTERNS = [*REGIONS, "eu-*", "us-?ast", "*", "EU-WEST", "Us-*", "nowhere", "*-west"]
KEY_ENVS = ["KEY_A", "KEY_B", "KEY_C"]
CAPABILITIES = ["tools", "vision", "json_object", "json_schema", "audio", "reasoning"]
PRICES = [0.0, 0.1, 0.15, 0.5, 1.0, 2.5, 3.0, 10.0, 15.0, 60.0]
TTFTS = [80.0, 150.0, 300.0, 500.0, 900.0, 2000.0]
THROUGHPUTS = [20.0, 50.0, 80.0, 150.0, 400.0]
QUALITIES = [0.2, 0.45, 0.5, 0.6, 0.72, 0.85, 0.95]
CONTEXTS = [4096, 8192, 32000, 128000, 200000]
TOKENS = [0, 1, 100, 1000, 3072, 4096, 7168, 8192, 30000, 120000, 190000]


def _mixed(pool: list[float], low: float, high: float) -> st.SearchStrategy[float]:
    """Values from a small pool (ties and boundaries) or anywhere in a range."""
    return st.one_of(
        st.sampled_from(pool),
        st.floats(low, high, allow_nan=False, allow_infinity=False),
    )


# Strategies are built once: building them per draw costs more than routing.
INDEX = [st.integers(0, n - 1) for n in range(1, 65)]
MASK = [st.integers(0, 2**n - 1) for n in range(9)]
BOOL = st.booleans()
SOMETIMES = st.integers(0, 3)  # 3: set (so examples shrink to unset)
RARELY = st.integers(0, 15)  # 15: set
PRICE = _mixed(PRICES, 0.0, 100.0)
TTFT = _mixed(TTFTS, 1.0, 5000.0)
THROUGHPUT = _mixed(THROUGHPUTS, 1.0, 1000.0)
QUALITY = _mixed(QUALITIES, 0.0, 1.0)
CONTEXT = st.sampled_from(CONTEXTS) | st.integers(1, 300_000)
WEIGHT = _mixed([0.0, 0.05, 0.1, 0.5, 1.0, 2.0], 0.0, 10.0)
MIN_THROUGHPUT = _mixed(THROUGHPUTS, 0.5, 1000.0)
SUCCESS = _mixed([0.0, 0.5, 1.0], 0.0, 1.0)
MAX_COST = _mixed([0.05, *PRICES[1:]], 0.01, 100.0)
PROMPT = st.sampled_from(TOKENS) | st.integers(0, 20_000)
MAX_OUTPUT = st.sampled_from([0, 0, 256, 1024, 4096, 16384]) | st.integers(0, 20_000)
EXPECTED_OUTPUT = st.sampled_from([0, 100, 512, 2000]) | st.integers(1, 10_000)
UNIT = st.floats(0.0, 1.0)
ATTEMPTS = st.integers(0, 10)
OFFER_COUNT = st.integers(1, 25)


def pick(draw: st.DrawFn, items: list[Any]) -> Any:
    return items[draw(INDEX[len(items) - 1])]


def subset(draw: st.DrawFn, items: list[Any], max_size: int | None = None) -> list[Any]:
    mask = draw(MASK[len(items)])
    chosen = [item for i, item in enumerate(items) if mask >> i & 1]
    return chosen if max_size is None else chosen[:max_size]


def sometimes(draw: st.DrawFn) -> bool:
    return draw(SOMETIMES) == 3


def rarely(draw: st.DrawFn) -> bool:
    return draw(RARELY) == 15


def maybe(draw: st.DrawFn, strategy: st.SearchStrategy[Any]) -> Any:
    return draw(strategy) if sometimes(draw) else None


def cased(draw: st.DrawFn, name: str) -> str:
    return pick(draw, [name, name.upper(), name.capitalize()])


# ---------------------------------------------------------------- catalogs


@dataclass(frozen=True)
class World:
    config: Config
    environ: dict[str, str]
    assume_credentials: bool

    def table(self) -> RoutingTable:
        return RoutingTable.from_config(
            self.config, environ=self.environ, assume_credentials=self.assume_credentials
        )

    def reference(self) -> ReferenceScorer:
        return ReferenceScorer(
            self.config, self.environ, assume_credentials=self.assume_credentials
        )

    def names(self) -> tuple[list[str], list[str]]:
        models = [n for m in self.config.models for n in (m.id, *m.aliases)]
        providers = [n for p in self.config.providers for n in (p.id, *p.aliases)]
        return models, providers


def _assign_aliases(
    draw: st.DrawFn, owners: list[str], pool: list[str], taken: set[str]
) -> dict[str, list[str]]:
    aliases: dict[str, list[str]] = {owner: [] for owner in owners}
    for alias in subset(draw, pool, 3):
        if alias not in taken:
            aliases[pick(draw, owners)].append(alias)
    return aliases


@st.composite
def worlds(draw: st.DrawFn) -> World:
    provider_ids = subset(draw, PROVIDER_IDS, 5) or [pick(draw, PROVIDER_IDS)]
    all_ids = provider_ids if draw(SOMETIMES) == 3 else [*provider_ids, "mock"]
    provider_aliases = _assign_aliases(draw, all_ids, PROVIDER_ALIASES, set(all_ids))
    providers = []
    for pid in all_ids:
        providers.append(
            ProviderConfig(
                id=pid,
                format="mock" if pid == "mock" else "openai",
                base_url=None if pid == "mock" else f"https://{pid}.example/v1",
                api_key_env=None if pid == "mock" or draw(BOOL) else pick(draw, KEY_ENVS),
                regions=subset(draw, REGIONS, 3) or [pick(draw, REGIONS)],
                data_policy=pick(draw, ["none", "no_training", "zdr"]),
                aliases=provider_aliases[pid],
            )
        )

    model_ids = subset(draw, MODEL_IDS, 6) or [pick(draw, MODEL_IDS)]
    model_aliases = _assign_aliases(draw, model_ids, MODEL_ALIASES, set(model_ids))
    models = []
    for mid in model_ids:
        models.append(
            ModelConfig(
                id=mid,
                aliases=model_aliases[mid],
                kind=pick(draw, ["chat", "chat", "chat", "embedding"]),
                quality={t: draw(QUALITY) for t in subset(draw, list(TASKS))},
            )
        )

    offers: dict[tuple[str, str, str], OfferConfig] = {}
    for _ in range(draw(OFFER_COUNT)):
        context = draw(CONTEXT)
        limits = [c for c in (1024, 4096, 8192, 16384) if c <= context]
        max_output = pick(draw, limits) if limits and draw(BOOL) else min(context, draw(CONTEXT))
        offer = OfferConfig(
            model=pick(draw, model_ids),
            provider=pick(draw, provider_ids),
            provider_model_id=pick(draw, [None, None, "up-1", "up-2"]),
            price=Price(input=draw(PRICE), output=draw(PRICE)),
            context_window=context,
            max_output=max_output,
            capabilities=subset(draw, CAPABILITIES, 4),
            ttft_ms=draw(TTFT),
            throughput_tps=draw(THROUGHPUT),
            regions=None if draw(BOOL) else (subset(draw, REGIONS, 2) or None),
        )
        offers.setdefault(offer.identity, offer)

    environ = {}
    for env in KEY_ENVS:
        value = pick(draw, ["sk-live", "sk-live", None, "", "   "])
        if value is not None:
            environ[env] = value
    config = Config(providers=providers, models=models, offers=list(offers.values()))
    return World(config, environ, draw(BOOL))


# ---------------------------------------------------------------- queries


def _model_atom(draw: st.DrawFn, world: World, valid_only: bool) -> str:
    models, providers = world.names()
    kind = pick(
        draw,
        ["word", "word", "model", "model", "suffix", "pin", "pin_suffix"]
        + ([] if valid_only or not rarely(draw) else ["unknown"]),
    )
    if kind == "word":
        word = cased(draw, pick(draw, ["auto", "cheapest", "fastest", "best"]))
        return f" {word} " if draw(BOOL) else word
    model = cased(draw, pick(draw, models))
    if kind == "model":
        return model
    suffix = cased(draw, pick(draw, ["floor", "cost", "nitro", "fast", "balanced"]))
    if kind == "suffix":
        return f"{model}:{suffix}"
    provider = cased(draw, pick(draw, providers))
    if draw(BOOL):  # usually pin a provider that offers the model
        offer = pick(draw, world.config.offers)
        provider, model = cased(draw, offer.provider), cased(draw, offer.model)
    if kind == "pin":
        return f"{provider}/{model}"
    if kind == "pin_suffix":
        return f"{provider}/{model}:{suffix}"
    return pick(
        draw, ["nope", f"{model}:warp", f"ft:{model}:org:x", f"nobody/{model}", f"auto:{suffix}"]
    )


def _provider_list(
    draw: st.DrawFn, world: World, valid_only: bool, sizes: range
) -> list[str] | None:
    if not sometimes(draw):
        return None
    _, providers = world.names()
    pool = providers if valid_only or not rarely(draw) else [*providers, "no-such-provider"]
    return [cased(draw, pick(draw, pool)) for _ in range(pick(draw, list(sizes)))]


def _weights(draw: st.DrawFn) -> Weights:
    return Weights(
        cost=draw(WEIGHT),
        ttft=draw(WEIGHT),
        throughput=draw(WEIGHT),
        reliability=draw(WEIGHT),
        quality=draw(WEIGHT),
    )


def _options(draw: st.DrawFn, world: World, valid_only: bool) -> RoutingOptions:
    def opt(choices: list[Any]) -> Any:
        return pick(draw, choices) if sometimes(draw) else None

    return RoutingOptions(
        optimize=opt(["cost", "cheapest", "speed", "ttft", "throughput", "balanced", "best"]),
        weights=_weights(draw) if sometimes(draw) else None,
        max_ttft_ms=maybe(draw, TTFT),
        min_throughput_tps=maybe(draw, MIN_THROUGHPUT),
        min_success_rate=maybe(draw, SUCCESS),
        max_cost_per_1m=maybe(draw, MAX_COST),
        providers=_provider_list(draw, world, valid_only, range(1, 4)),
        exclude_providers=_provider_list(draw, world, valid_only, range(2)),
        regions=[pick(draw, REGION_PATTERNS) for _ in range(draw(INDEX[3]))]
        if sometimes(draw)
        else None,
        data_policy=opt(["none", "no_training", "zdr"]),
        only_byok=rarely(draw) if sometimes(draw) else None,
        only_platform=rarely(draw) if sometimes(draw) else None,
        allow_fallbacks=opt([True, False]),
        max_fallback_attempts=maybe(draw, ATTEMPTS),
        mode=opt(["pool", "fallback"]),
        quality_floor=maybe(draw, QUALITY),
    )


@st.composite
def queries(draw: st.DrawFn, world: World, valid_only: bool = False) -> RouteQuery:
    models, _ = world.names()
    if draw(INDEX[3]) == 0:
        model: str | tuple[str, ...] = tuple(
            _model_atom(draw, world, valid_only) for _ in range(1 + draw(INDEX[2]))
        )
    else:
        model = _model_atom(draw, world, valid_only)
    routing = _options(draw, world, valid_only)
    defaults = _options(draw, world, valid_only) if draw(BOOL) else RoutingOptions()
    if valid_only and (routing.only_byok or defaults.only_byok):
        both = msgspec.structs.replace
        routing, defaults = both(routing, only_platform=None), both(defaults, only_platform=None)
    allowed = None
    if rarely(draw):
        allowed = frozenset(
            cased(draw, pick(draw, [*models, "unknown-model"])) for _ in range(draw(INDEX[4]))
        )
    byok = frozenset()
    if draw(BOOL):  # the workspace holds its own keys for some providers
        _, providers = world.names()
        pool = [*providers, "gone"]
        byok = frozenset(cased(draw, pick(draw, pool)) for _ in range(1 + draw(INDEX[3])))
    prompt_tokens, max_output_tokens = draw(PROMPT), draw(MAX_OUTPUT)
    if sometimes(draw):  # exactly at an offer's limits
        offer = pick(draw, world.config.offers)
        max_output_tokens = min(max_output_tokens, offer.max_output)
        if draw(BOOL):
            max_output_tokens = offer.max_output
        prompt_tokens = offer.context_window - max_output_tokens
    return RouteQuery(
        model=model,
        routing=routing,
        defaults=defaults,
        prompt_tokens=prompt_tokens,
        max_output_tokens=max_output_tokens,
        expected_output_tokens=maybe(draw, EXPECTED_OUTPUT),
        capabilities=frozenset(subset(draw, CAPABILITIES, 2) if sometimes(draw) else ()),
        task=pick(draw, list(TASKS)),
        difficulty=draw(UNIT),
        key_mode=pick(draw, ["live", "live", "test"]),
        allowed_models=allowed,
        data_policy_floor=pick(draw, ["none", "no_training", "zdr"]) if sometimes(draw) else None,
        byok_providers=byok,
    )


@st.composite
def cases(draw: st.DrawFn, valid_only: bool = False) -> tuple[World, RouteQuery]:
    world = draw(worlds())
    return world, draw(queries(world, valid_only))


# ---------------------------------------------------------------- comparing


def _outcome(route: Any, query: RouteQuery) -> Any:
    try:
        return route(query)
    except GatewayError as exc:
        return exc


def _same_error(product: Any, reference: Any) -> bool:
    """Both raised: the same class and parameter; neither raised: ``False``."""
    p_err, r_err = isinstance(product, GatewayError), isinstance(reference, GatewayError)
    assert p_err == r_err, f"product: {product!r}; reference: {reference!r}"
    if p_err:
        assert type(product) is type(reference), (product, reference)
        assert product.param == reference.param, (product.param, reference.param)
    return p_err


def assert_same_ranking(
    rows_a: list[int],
    scores_a: list[float],
    rows_b: list[int],
    scores_b: list[float],
    *,
    exact_ties: bool = True,
) -> None:
    """Identical order, except that rows whose scores are within TOL (but, with
    ``exact_ties``, not exactly equal on both sides, where the tie-break rule decides) may
    swap places."""
    assert len(rows_a) == len(rows_b), (rows_a, rows_b)
    assert sorted(rows_a) == sorted(rows_b), (rows_a, rows_b)
    score_a, score_b = (
        dict(zip(rows_a, scores_a, strict=True)),
        dict(zip(rows_b, scores_b, strict=True)),
    )
    for row, score in score_a.items():
        assert abs(score - score_b[row]) <= TOL, (row, score, score_b[row])
    for i, (ra, rb) in enumerate(zip(rows_a, rows_b, strict=True)):
        if ra == rb:
            continue
        tied = score_a[ra] == score_a[rb] and score_b[ra] == score_b[rb]
        assert abs(score_a[ra] - score_a[rb]) <= TOL and not (exact_ties and tied), (
            f"position {i}: {ra} (score {score_a[ra]}) vs {rb} (score {score_a[rb]})",
            rows_a,
            rows_b,
        )


def assert_matches_reference(decision: Any, expected: RefDecision) -> None:
    assert decision.strategy == expected.strategy
    assert_same_ranking(
        decision.ranked_rows.tolist(), decision.scores.tolist(), expected.ranked, expected.scores
    )
    assert decision.candidates_total == expected.candidates_total
    assert decision.candidates_viable == expected.candidates_viable
    assert decision.emptied_by == expected.emptied_by
    assert decision.health_only == expected.health_only


def _decide(world: World, query: RouteQuery) -> tuple[Any, Any, ReferenceScorer]:
    reference = world.reference()
    product = _outcome(world.table().route, query)
    expected = _outcome(reference.route, query)
    return product, expected, reference


# ---------------------------------------------------------------- properties


@SETTINGS
@given(cases())
def test_no_candidate_violates_a_constraint(case: tuple[World, RouteQuery]) -> None:
    world, query = case
    product, expected, reference = _decide(world, query)
    if _same_error(product, expected):
        return
    rows = reference.rows
    for candidate in product.candidates:
        failed = reference.violations(candidate.row, expected)
        assert not failed, (candidate, failed)
        d = rows[candidate.row]
        assert (candidate.model, candidate.provider, candidate.region) == (
            d.model.id,
            d.provider.id,
            d.region,
        )
        assert (candidate.price_input, candidate.price_output) == (d.price.input, d.price.output)
    assert [c.rank for c in product.candidates] == list(range(1, len(product) + 1))


@SETTINGS
@given(cases())
def test_nothing_that_satisfies_every_constraint_is_dropped(
    case: tuple[World, RouteQuery],
) -> None:
    world, query = case
    product, expected, reference = _decide(world, query)
    if _same_error(product, expected):
        return
    kept = set(product.ranked_rows.tolist())
    for row in range(len(reference.rows)):
        if not reference.violations(row, expected):
            assert row in kept, (row, reference.rows[row])


@SETTINGS
@given(
    cases(valid_only=True),
    st.builds(
        Weights, cost=WEIGHT, ttft=WEIGHT, throughput=WEIGHT, reliability=WEIGHT, quality=WEIGHT
    ),
    st.sampled_from([1e-3, 0.5, 3.0, 1e3]) | st.floats(1e-3, 1e3),
)
def test_scaling_the_weights_changes_nothing(
    case: tuple[World, RouteQuery], weights: Weights, factor: float
) -> None:
    world, query = case
    assume(sum(weights.as_tuple()) > 0)
    query = replace(query, routing=msgspec.structs.replace(query.routing, weights=weights))
    scaled = Weights(**{k: v * factor for k, v in msgspec.structs.asdict(weights).items()})
    scaled_query = replace(query, routing=msgspec.structs.replace(query.routing, weights=scaled))
    table = world.table()
    try:
        base = table.route(query)
    except GatewayError:
        return
    other = table.route(scaled_query)
    assert base.strategy == other.strategy == "custom"
    assert_same_ranking(
        base.ranked_rows.tolist(),
        base.scores.tolist(),
        other.ranked_rows.tolist(),
        other.scores.tolist(),
        exact_ties=False,
    )
    assert (base.candidates_viable, base.emptied_by) == (other.candidates_viable, other.emptied_by)


@SETTINGS
@given(cases(valid_only=True))
def test_cheapest_picks_the_minimum_expected_cost_above_the_floor(
    case: tuple[World, RouteQuery],
) -> None:
    world, query = case
    query = replace(
        query,
        routing=msgspec.structs.replace(query.routing, optimize="cheapest", weights=None),
        defaults=msgspec.structs.replace(query.defaults, weights=None),
    )
    product, expected, reference = _decide(world, query)
    if _same_error(product, expected):
        return
    assert product.strategy == "cheapest"
    plan = expected.plan
    eligible = [r for r in range(len(reference.rows)) if not reference.violations(r, expected)]
    assert bool(eligible) == bool(len(product))
    if not eligible:
        return
    first = int(product.ranked_rows[0])
    cheapest = min(reference.expected_cost(r, plan) for r in eligible)
    assert reference.expected_cost(first, plan) <= cheapest * (1 + 1e-12)
    if expected.floor_used is not None:
        assert reference.quality(first, plan.task) >= expected.floor_used


@SETTINGS
@given(cases(valid_only=True), st.data())
def test_a_cheaper_candidate_never_ranks_lower_under_cost(
    case: tuple[World, RouteQuery], data: st.DataObject
) -> None:
    world, query = case
    # Few hard constraints, so that most examples have candidates to compare.
    query = replace(
        query,
        routing=RoutingOptions(
            optimize="cost", regions=query.routing.regions, mode=query.routing.mode
        ),
        defaults=RoutingOptions(),
        capabilities=frozenset(),
        allowed_models=None,
        max_output_tokens=min(query.max_output_tokens, 1000),
        prompt_tokens=min(query.prompt_tokens, 3000),
    )
    try:
        before = world.table().route(query)
    except GatewayError:
        return
    assume(len(before) > 0)
    ranked = before.ranked_rows.tolist()
    position = data.draw(st.integers(0, len(ranked) - 1), label="position")
    row = ranked[position]
    offer = world.reference().rows[row].offer
    factor = data.draw(st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 0.99), label="factor")
    cheaper = msgspec.structs.replace(
        offer, price=Price(input=offer.price.input * factor, output=offer.price.output * factor)
    )
    old_cost = world.reference().expected_cost(row, world.reference().plan(query))
    assume(old_cost > 0)
    offers = [cheaper if o is offer else o for o in world.config.offers]
    cheaper_world = replace(world, config=msgspec.structs.replace(world.config, offers=offers))
    after = cheaper_world.table().route(query)
    new_ranked = after.ranked_rows.tolist()
    assert sorted(new_ranked) == sorted(ranked)
    new_position = new_ranked.index(row)
    if new_position > position:  # allowed only among (numerically) tied scores
        mine = after.scores[new_position]
        assert all(abs(after.scores[i] - mine) <= TOL for i in range(position, new_position)), (
            row,
            position,
            new_position,
            before.scores.tolist(),
            after.scores.tolist(),
        )


@settings(SETTINGS, max_examples=200)
@given(cases())
def test_same_decision_as_the_reference(case: tuple[World, RouteQuery]) -> None:
    world, query = case
    product, expected, _ = _decide(world, query)
    if _same_error(product, expected):
        return
    assert_matches_reference(product, expected)


@SETTINGS
@given(cases(valid_only=True), st.sampled_from([None, 1, 2, 3, 5]), BOOL)
def test_byok_rows_need_the_workspace_key_and_rank_right_ahead_of_their_twin(
    case: tuple[World, RouteQuery], limit: int | None, every_provider: bool
) -> None:
    """SPEC §8: a BYOK deployment is a candidate only for a provider in ``byok_providers``
    (never for a test key), and when its platform twin is a candidate too it comes first,
    immediately ahead of the twin, with or without ``limit``."""
    world, query = case
    # Few hard constraints, so that most examples have twins to compare.
    routing = query.routing
    query = replace(
        query,
        routing=RoutingOptions(
            optimize=routing.optimize,
            weights=routing.weights,
            providers=routing.providers,
            exclude_providers=routing.exclude_providers,
            mode=routing.mode,
        ),
        defaults=RoutingOptions(),
        capabilities=frozenset(),
        allowed_models=None,
        max_output_tokens=min(query.max_output_tokens, 1000),
        prompt_tokens=min(query.prompt_tokens, 3000),
    )
    if every_provider:  # a workspace with a key of its own for every provider
        ids = frozenset(p.id.upper() for p in world.config.providers)
        query = replace(query, byok_providers=ids, key_mode="live")
    table = world.table()
    product, expected, _ = _decide(world, query)
    if _same_error(product, expected):
        return
    assert_matches_reference(product, expected)
    full = table.route(query)
    rows = table.catalog.deployments
    own = {table.catalog.provider(name) for name in query.byok_providers}
    candidates = [rows[r] for r in full.ranked_rows.tolist()]
    for d in candidates:
        if d.key_source == "byok":
            assert query.key_mode == "live" and table.catalog.provider(d.provider.id) in own
    identity = [(d.model.id, d.provider.id, d.region, d.provider_model_id) for d in candidates]
    for place, d in enumerate(candidates):
        if d.key_source != "platform":
            continue
        twin = [i for i, other in enumerate(identity) if other == identity[place] and i != place]
        if twin:
            assert twin == [place - 1], (place, twin, identity)
    limited = table.route(query, limit=limit)
    expected = full.ranked_rows[:limit] if limit is not None else full.ranked_rows
    assert np.array_equal(limited.ranked_rows, expected)


@SETTINGS
@given(st.data())
def test_invalid_queries_raise_in_both(data: st.DataObject) -> None:
    world = data.draw(worlds())
    query = replace(data.draw(queries(world, valid_only=True)), allowed_models=None)
    kind = data.draw(st.sampled_from(["model", "provider", "exclude", "key_source"]))
    options = query.routing if data.draw(st.booleans()) or kind == "key_source" else None
    if kind == "model":
        model = data.draw(
            st.sampled_from(
                ["nope", "auto:nitro", "nobody/m-a", "ft:m-a:org:x", "m-a:warp", "cheapest/m-a"]
            )
        )
        query = replace(query, model=model if data.draw(st.booleans()) else ("auto", model))
        error: type[GatewayError] = ModelNotFound
    else:
        error = InvalidRequest
        field = {"provider": "providers", "exclude": "exclude_providers"}.get(kind)
        if field is not None:  # in the request, or in a lower layer the request leaves alone
            change = {field: ["openai", "No-Such-Provider"]}
        else:
            change = {"only_byok": True, "only_platform": True}
        if options is None:
            query = replace(
                query,
                defaults=msgspec.structs.replace(query.defaults, **change),
                routing=msgspec.structs.replace(query.routing, **dict.fromkeys(change)),
            )
        else:
            query = replace(query, routing=msgspec.structs.replace(options, **change))
    product, expected, _ = _decide(world, query)
    assert _same_error(product, expected)
    assert isinstance(expected, error), expected
    assert isinstance(product, error), product


@SETTINGS
@given(cases())
def test_routing_is_deterministic(case: tuple[World, RouteQuery]) -> None:
    world, query = case
    table = world.table()
    first = _outcome(table.route, query)
    if isinstance(first, GatewayError):
        again = _outcome(table.route, query)
        assert type(again) is type(first) and again.param == first.param
        return
    for again in (table.route(query), world.table().route(query)):
        assert np.array_equal(again.ranked_rows, first.ranked_rows)
        assert np.array_equal(again.scores, first.scores)
        assert (
            again.candidates_total,
            again.candidates_viable,
            again.emptied_by,
            again.health_only,
            again.strategy,
        ) == (
            first.candidates_total,
            first.candidates_viable,
            first.emptied_by,
            first.health_only,
            first.strategy,
        )


@needs_explain
@SETTINGS
@given(cases())
def test_rejections_name_the_first_failed_constraint(case: tuple[World, RouteQuery]) -> None:
    world, query = case
    reference = world.reference()
    table = world.table()
    product = _outcome(lambda q: table.route(q, explain=True), query)
    expected = _outcome(reference.route, query)
    if _same_error(product, expected):
        return
    rejections = product.rejections
    rejected = {r.row: r.constraint for r in rejections}
    assert len(rejected) == len(rejections)
    kept = set(product.ranked_rows.tolist())
    assert not kept & set(rejected)
    assert kept | set(rejected) == set(range(len(reference.rows)))
    for r in rejections:
        d = reference.rows[r.row]
        assert (r.model, r.provider, r.region) == (d.model.id, d.provider.id, d.region)
        assert r.reason == CONSTRAINT_MEANINGS[r.constraint]
    reasons = [rejected.get(row) for row in range(len(reference.rows))]
    assert reasons == expected.rejected_by
    assert_matches_reference(product, expected)
    # Without explain the decision is the same, and asks for explain when read.
    plain = table.route(query)
    assert np.array_equal(plain.ranked_rows, product.ranked_rows)
    with pytest.raises(ValueError, match="explain=True"):
        _ = plain.rejections


# ---------------------------------------------------------------- the smallest cases found


def _two_model_world(quality: float = 0.5) -> World:
    provider = ProviderConfig(
        id="p1", format="openai", base_url="https://p1.example/v1", regions=["eu-west", "us-east"]
    )
    offers = [
        OfferConfig(
            model=m,
            provider="p1",
            price=Price(input=p, output=p),
            context_window=8192,
            max_output=1024,
        )
        for m, p in (("m-a", 5.0), ("m-b", 1.0))
    ]
    models = [ModelConfig(id=m, quality={"chat": quality}) for m in ("m-a", "m-b")]
    return World(Config(providers=[provider], models=models, offers=offers), {}, False)


def test_request_optimize_beats_lower_layer_weights() -> None:
    """SPEC §2 precedence: the request's ``routing`` outranks lower layers, so its strategy
    replaces a lower layer's custom weights (as a model suffix already does)."""
    world = _two_model_world()
    query = RouteQuery(
        model="m-a",
        routing=RoutingOptions(optimize="ttft"),
        defaults=RoutingOptions(weights=Weights(cost=1.0)),
    )
    assert world.reference().route(query).strategy == "ttft"
    assert world.table().route(query).strategy == "ttft"


def test_fallback_mode_lists_each_deployment_once() -> None:
    """``mode: fallback`` orders candidates model by model; a repeated model (or a policy
    word next to a model) must not list a deployment twice nor count it twice."""
    world = _two_model_world()
    for model in (("m-a", "m-a"), ("auto", "m-b")):
        query = RouteQuery(model=model, routing=RoutingOptions(mode="fallback"))
        decision = world.table().route(query)
        rows = decision.ranked_rows.tolist()
        assert len(rows) == len(set(rows)), (model, rows)
        expected = world.reference().route(query)
        assert decision.candidates_total == expected.candidates_total, model
        assert decision.candidates_viable == len(rows), model


def test_fallback_mode_keeps_model_order_when_auto_floor_is_dropped() -> None:
    """Dropping ``auto``'s soft floor must not turn ``mode: fallback`` into a pool."""
    world = _two_model_world(quality=0.1)  # below every soft floor, so the floor is dropped
    query = RouteQuery(model=("m-a", "auto"), routing=RoutingOptions(mode="fallback"))
    expected = world.reference().route(query)
    rows = world.reference().rows
    assert expected.relaxed
    assert [rows[r].model.id for r in expected.ranked] == ["m-a", "m-a", "m-b", "m-b"]
    decision = world.table().route(query)
    assert [d.model.id for d in decision.deployments()][:2] == ["m-a", "m-a"]


def test_fallback_mode_scores_a_group_over_all_of_its_models() -> None:
    """A model that an earlier group already lists is still part of a later group's viable
    set (SPEC §3: features normalised within it), though it is listed only once: with
    ``("m-a", "auto")`` the ``auto`` group normalises m-b against m-a too (found by
    hypothesis: the product scored m-b 1.0, normalising over m-b alone)."""
    provider = ProviderConfig(id="p1", format="openai", base_url="https://p1.example/v1")
    offers = [
        OfferConfig(
            model=m,
            provider="p1",
            price=Price(input=0.0, output=0.0),
            context_window=4096,
            max_output=1024,
            ttft_ms=80.0,
            throughput_tps=tps,
        )
        for m, tps in (("m-a", 20.0), ("m-b", 1.0))
    ]
    models = [ModelConfig(id=m, quality={"chat": 0.2}) for m in ("m-a", "m-b", "m.c")]
    world = World(Config(providers=[provider], models=models, offers=offers), {}, False)
    table, reference = world.table(), world.reference()
    for limit in (None, 1, 2):
        query = RouteQuery(model=("m-a", "auto"), routing=RoutingOptions(mode="fallback"))
        decision = table.route(query, limit=limit)
        expected = reference.route(query)
        assert [reference.rows[r].model.id for r in expected.ranked] == ["m-a", "m-b"]
        assert expected.scores[1] < 1.0  # m-b is the slower of auto's two candidates
        if limit is None:
            assert_matches_reference(decision, expected)
        assert decision.ranked_rows.tolist() == expected.ranked[:limit]
        assert decision.scores.tolist() == pytest.approx(expected.scores[:limit], abs=TOL)
        assert (decision.candidates_total, decision.candidates_viable) == (2, 2)
        explained = table.route(query, explain=True)
        assert explained.ranked_rows.tolist() == expected.ranked


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12))
def test_one_compiled_template_serves_every_prompt_difficulty(difficulties: list[float]) -> None:
    """The difficulty changes only ``auto``'s floor, passed per call: a query shape compiles
    once, whatever its prompts (real prompts each have their own difficulty; compiling per
    request cost about 20 µs), and every decision still equals the reference's."""
    world = _two_model_world()
    table, reference = world.table(), world.reference()
    for model in ("auto", "m-a", ("auto", "m-b")):
        for difficulty in difficulties:
            query = RouteQuery(model=model, difficulty=difficulty, prompt_tokens=100)
            decision = table.route(query)
            expected = reference.route(query)
            assert decision.ranked_rows.tolist() == list(expected.ranked), (model, difficulty)
    assert len(table._cache) == 3  # one template per model expression
