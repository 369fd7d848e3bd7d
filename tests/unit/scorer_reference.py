"""A slow, loop-based reference of the scorer API's decision (SPEC §2-3), for property tests.

It takes the same inputs as ``RoutingTable`` (a ``Config``, the environment or
``assume_credentials``, and a ``RouteQuery``) and decides with plain Python loops over the
catalog's rows. Only ``Catalog`` is borrowed (for the row list, its order and the mock
provider's synthesised rows) and ``auto_quality_floor`` (the tunable soft floor of ``auto``);
nothing here touches ``RoutingTable`` or the native core.

Rules, in the order the SPEC gives them:

- Model expressions: a policy word (``auto``, ``cheapest``, ``fastest``, ``best``) selects every
  chat model and a strategy; ``id``/``alias`` (case-insensitive), optionally ``:suffix`` (only
  with exactly one colon), or ``provider/model`` which pins the provider for live keys.
- Precedence, highest first: the request's ``routing`` → the model suffix (or policy word) →
  the lower layers (``RouteQuery.defaults``). A layer that sets a strategy replaces whatever
  strategy a lower layer chose, custom weights included.
- Filters, in order (the first one a row fails is its rejection): model, provider, key
  source, capabilities, context window, max output, region, data policy, price, quality
  floor, ttft, throughput, success rate, circuit.
- Prompt tokens are counted with ``o200k_base``; a row's model family sees
  ``ratio × prompt_tokens`` (``FAMILY_TOKEN_RATIOS``, 1.0 for OpenAI, unknown or missing
  families): the context window must hold ``ceil(prompt_tokens × ratio)`` plus the requested
  output, and the expected cost is ``prompt_tokens × ratio × input price + expected output ×
  output price`` (docs/tokens.md).
- Scoring: min-max normalised features within the viable set (all equal → 1.0), weights
  normalised to sum 1; ``cheapest`` ranks by expected cost. Ties: lower blended price, then
  lower row. ``auto`` adds a soft quality floor that is dropped when it would empty the set.
- ``models`` with ``mode: fallback``: every candidate of the first model, then of the second,
  …; a deployment is listed once (at its first place).
- Key source (SPEC §8): a provider that needs a key (not the mock) also offers every
  deployment with the workspace's own key (BYOK). A BYOK row passes the provider filter only
  for a live key whose workspace holds a key for that provider (``RouteQuery.byok_providers``,
  names case-insensitive, aliases resolved, unknown names ignored), the platform key in the
  environment playing no part; allow/deny lists and pins apply to it as to the platform row.
  When both twins are candidates, the BYOK row is listed right ahead of its platform twin, at
  the better of the two places.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.config import Config
from gateway.errors import InvalidRequest, ModelNotFound, PermissionDenied
from gateway.routing.catalog import Catalog, Deployment
from gateway.routing.decision import RouteQuery
from gateway.routing.presets import auto_quality_floor
from gateway.routing_options import ROUTING_FIELDS, RoutingOptions

CONSTRAINTS: tuple[str, ...] = (
    "model",
    "provider",
    "key_source",
    "capabilities",
    "context_window",
    "max_output",
    "region",
    "data_policy",
    "price",
    "quality_floor",
    "ttft",
    "throughput",
    "success_rate",
    "circuit",
)
HEALTH_CONSTRAINTS = frozenset({"ttft", "throughput", "success_rate", "circuit"})

# SPEC §3 presets: (cost, ttft, throughput, reliability, quality).
PRESETS: dict[str, tuple[float, float, float, float, float]] = {
    "cheapest": (1.0, 0.0, 0.0, 0.0, 0.0),
    "cost": (0.7, 0.1, 0.05, 0.15, 0.0),
    "speed": (0.1, 0.45, 0.3, 0.15, 0.0),
    "ttft": (0.05, 0.8, 0.0, 0.15, 0.0),
    "throughput": (0.05, 0.1, 0.7, 0.15, 0.0),
    "balanced": (0.35, 0.25, 0.1, 0.2, 0.1),
    "best": (0.0, 0.05, 0.0, 0.15, 0.8),
}
POLICY_WORDS = {"auto": "balanced", "cheapest": "cheapest", "fastest": "speed", "best": "best"}
SUFFIXES = {
    "floor": "cheapest",
    "cost": "cost",
    "nitro": "speed",
    "fast": "ttft",
    "balanced": "balanced",
}
DATA_POLICY = {"none": 0, "no_training": 1, "zdr": 2}
DEFAULT_EXPECTED_OUTPUT = 512
DEFAULT_QUALITY = 0.5  # a task a model has no score for
MOCK = "mock"
# docs/tokens.md: assumed tokens of a family per o200k_base token (not measured offline).
FAMILY_TOKEN_RATIOS: dict[str, float] = {
    "gpt-4o": 1.0,
    "gpt-4.1": 1.0,
    "o-series": 1.0,
    "gpt-5": 1.0,
    "gpt-oss": 1.0,
    "text-embedding-3": 1.0,
    "claude": 1.30,
    "mistral": 1.25,
    "llama": 1.25,
    "gemini": 1.15,
    "deepseek": 1.15,
    "grok": 1.15,
    "qwen": 1.15,
}


def family_token_ratio(family: str | None) -> float:
    """A family's ratio (names compared case-insensitively); 1.0 when unknown or missing."""
    if family is None:
        return 1.0
    return FAMILY_TOKEN_RATIOS.get(family.strip().lower(), 1.0)


def family_prompt_tokens(prompt_tokens: int, ratio: float) -> int:
    """Prompt tokens the family sees: ``ceil(prompt_tokens × ratio)``, the count itself at 1."""
    if ratio == 1.0:
        return prompt_tokens
    return max(prompt_tokens, math.ceil(prompt_tokens * ratio))


@dataclass(frozen=True)
class Expression:
    models: frozenset[str] | None  # model ids; None: every chat model
    pinned: str | None = None  # provider id
    optimize: str | None = None
    word: str | None = None


@dataclass(frozen=True)
class Plan:
    """Everything a query compiles to: the per-row tests and the scoring inputs."""

    strategy: str
    weights: tuple[float, float, float, float, float]
    cheapest: bool
    groups: list[frozenset[str]]  # model ids per group (one group unless mode=fallback)
    providers: frozenset[str]  # provider ids allowed (platform rows)
    byok_providers: frozenset[str]  # provider ids whose BYOK rows are allowed
    regions: tuple[str, ...] | None  # lowered globs
    capabilities: frozenset[str]
    prompt_tokens: int
    max_output_tokens: int
    expected_output_tokens: int
    data_policy: int
    key_source: str  # any | platform | byok
    max_price: float | None
    max_ttft: float | None
    min_throughput: float | None
    min_success: float | None
    task: str
    quality_floor: float | None  # the hard floor, or the soft one of `auto`
    soft_floor: bool


@dataclass
class GroupResult:
    ranked: list[int]
    scores: list[float]
    total: int
    emptied_by: str | None
    rejected_by: list[str | None]


@dataclass
class RefDecision:
    strategy: str
    weights: tuple[float, float, float, float, float]
    ranked: list[int]
    scores: list[float]
    candidates_total: int
    candidates_viable: int
    emptied_by: str | None
    health_only: bool
    rejected_by: list[str | None]  # per row: None when a candidate
    relaxed: bool
    plan: Plan
    floor_used: float | None = field(default=None)


class ReferenceScorer:
    """The reference decision over one config."""

    def __init__(
        self,
        config: Config,
        environ: Mapping[str, str] | None = None,
        *,
        assume_credentials: bool = False,
    ) -> None:
        env = {} if environ is None else environ
        self.config = config
        self.rows: list[Deployment] = Catalog(config, env).deployments
        self.model_names: dict[str, str] = {}
        for model in config.models:
            for name in (model.id, *model.aliases):
                self.model_names[name.lower()] = model.id
        self.provider_names: dict[str, str] = {}
        for provider in config.providers:
            for name in (provider.id, *provider.aliases):
                self.provider_names[name.lower()] = provider.id
        self.chat_models = frozenset(m.id for m in config.models if m.kind == "chat")
        self.takes_byok = frozenset(
            p.id for p in config.providers if p.api_key_env is not None and p.id != MOCK
        )
        self.usable = {
            p.id: assume_credentials
            or p.api_key_env is None
            or bool(env.get(p.api_key_env, "").strip())
            for p in config.providers
        }

    # ------------------------------------------------------------------ compiling a query

    def resolve(self, expression: str) -> Expression:
        word = expression.strip()
        if word.lower() in POLICY_WORDS:
            optimize = None if word.lower() == "auto" else POLICY_WORDS[word.lower()]
            return Expression(None, optimize=optimize, word=word.lower())
        optimize = None
        if word.count(":") == 1:
            base, suffix = word.split(":")
            if suffix.lower() in SUFFIXES and (base.lower() in self.model_names or "/" in base):
                word, optimize = base, SUFFIXES[suffix.lower()]
        model = self.model_names.get(word.lower())
        pinned = None
        if model is None and "/" in word:
            provider, name = word.split("/", 1)
            pinned = self.provider_names.get(provider.lower())
            if pinned is not None:
                model = self.model_names.get(name.lower())
        if model is None:
            raise ModelNotFound(f"The model '{expression}' does not exist.", param="model")
        return Expression(frozenset({model}), pinned=pinned, optimize=optimize)

    def plan(self, query: RouteQuery) -> Plan:
        names = (query.model,) if isinstance(query.model, str) else tuple(query.model)
        expressions = [self.resolve(name) for name in names]

        # Lower layers, then the suffix / policy word, then the request's own options.
        options = {name: getattr(query.defaults, name) for name in ROUTING_FIELDS}
        for expression in expressions:
            if expression.optimize is not None:
                options["optimize"] = expression.optimize
                options["weights"] = None
        request: RoutingOptions = query.routing
        if request.optimize is not None and request.weights is None:
            options["weights"] = None  # the request chose a strategy: lower weights yield
        for name in ROUTING_FIELDS:
            value = getattr(request, name)
            if value is not None:
                options[name] = value

        if options["only_byok"] and options["only_platform"]:
            raise InvalidRequest("both key sources", param="routing.only_byok")

        weights = options["weights"]
        raw = weights.as_tuple() if weights is not None else None
        if raw is not None and _total(raw) > 0:
            strategy, chosen, cheapest = "custom", raw, False
        else:
            strategy = options["optimize"] or "balanced"
            chosen, cheapest = PRESETS[strategy], strategy == "cheapest"

        allowed_models = None
        if query.allowed_models is not None:
            allowed_models = {
                self.model_names[n.lower()]
                for n in query.allowed_models
                if n.lower() in self.model_names
            }
        groups = []
        for expression in expressions:
            models = self.chat_models if expression.models is None else expression.models
            if allowed_models is not None:
                if expression.models is not None and not models <= allowed_models:
                    raise PermissionDenied("not allowed", code="model_not_allowed", param="model")
                models = models & allowed_models
            groups.append(frozenset(models))
        if options["mode"] != "fallback":
            groups = [frozenset().union(*groups)]

        byok: set[str] = set()
        if query.key_mode == "test":
            providers = {p for p in self.usable if p == MOCK}
        else:
            providers = {p for p, usable in self.usable.items() if usable and p != MOCK}
            for name in query.byok_providers:
                pid = self.provider_names.get(name.lower())
                if pid is not None and pid in self.takes_byok:
                    byok.add(pid)
        for param, key in (
            ("routing.providers", "providers"),
            ("routing.exclude_providers", "exclude_providers"),
        ):
            if options[key] is None:
                continue
            ids = set()
            for name in options[key]:
                if name.lower() not in self.provider_names:
                    raise InvalidRequest(f"Unknown provider '{name}'", param=param)
                ids.add(self.provider_names[name.lower()])
            providers = providers & ids if key == "providers" else providers - ids
            byok = byok & ids if key == "providers" else byok - ids
        pins = {e.pinned for e in expressions if e.pinned is not None}
        if pins and query.key_mode == "live":
            providers &= pins
            byok &= pins

        data_policy = DATA_POLICY[options["data_policy"] or "none"]
        if query.data_policy_floor is not None:
            data_policy = max(data_policy, DATA_POLICY[query.data_policy_floor])

        floor, soft = options["quality_floor"], False
        if floor is None and any(e.word == "auto" for e in expressions):
            floor, soft = auto_quality_floor(query.difficulty), True

        return Plan(
            strategy=strategy,
            weights=chosen,
            cheapest=cheapest,
            groups=groups,
            providers=frozenset(providers),
            byok_providers=frozenset(byok),
            regions=None
            if options["regions"] is None
            else tuple(r.lower() for r in options["regions"]),
            capabilities=frozenset(query.capabilities),
            prompt_tokens=query.prompt_tokens,
            max_output_tokens=query.max_output_tokens,
            expected_output_tokens=(
                query.expected_output_tokens or query.max_output_tokens or DEFAULT_EXPECTED_OUTPUT
            ),
            data_policy=data_policy,
            key_source="byok"
            if options["only_byok"]
            else "platform"
            if options["only_platform"]
            else "any",
            max_price=options["max_cost_per_1m"],
            max_ttft=options["max_ttft_ms"],
            min_throughput=options["min_throughput_tps"],
            min_success=options["min_success_rate"],
            task=query.task,
            quality_floor=floor,
            soft_floor=soft,
        )

    # ------------------------------------------------------------------ per-row facts

    def quality(self, row: int, task: str) -> float:
        return self.rows[row].model.quality.get(task, DEFAULT_QUALITY)

    def blended_price(self, row: int) -> float:
        price = self.rows[row].price
        return (price.input + price.output) / 2

    def token_ratio(self, row: int) -> float:
        return family_token_ratio(self.rows[row].model.family)

    def expected_cost(self, row: int, plan: Plan) -> float:
        price = self.rows[row].price
        prompt = plan.prompt_tokens * self.token_ratio(row)  # unrounded
        return prompt * price.input + plan.expected_output_tokens * price.output

    def passes(
        self, row: int, constraint: str, plan: Plan, group: frozenset[str], floor: float | None
    ) -> bool:
        d = self.rows[row]
        offer = d.offer
        if constraint == "model":
            return d.model.id in group
        if constraint == "provider":
            if d.key_source == "byok":
                return d.provider.id in plan.byok_providers
            return d.provider.id in plan.providers
        if constraint == "key_source":
            return plan.key_source in ("any", d.key_source)
        if constraint == "capabilities":
            return plan.capabilities <= set(offer.capabilities)
        if constraint == "context_window":
            prompt = family_prompt_tokens(plan.prompt_tokens, self.token_ratio(row))
            return offer.context_window >= prompt + plan.max_output_tokens
        if constraint == "max_output":
            return plan.max_output_tokens == 0 or offer.max_output >= plan.max_output_tokens
        if constraint == "region":
            return plan.regions is None or any(
                fnmatch.fnmatchcase(d.region, pattern) for pattern in plan.regions
            )
        if constraint == "data_policy":
            return DATA_POLICY[d.provider.data_policy] >= plan.data_policy
        if constraint == "price":
            return plan.max_price is None or self.blended_price(row) <= plan.max_price
        if constraint == "quality_floor":
            return floor is None or self.quality(row, plan.task) >= floor
        if constraint == "ttft":
            return plan.max_ttft is None or offer.ttft_ms <= plan.max_ttft
        if constraint == "throughput":
            return plan.min_throughput is None or offer.throughput_tps >= plan.min_throughput
        if constraint == "success_rate":
            return plan.min_success is None or plan.min_success <= 1.0  # fresh rows: 100 %
        if constraint == "circuit":
            return True  # fresh rows: every breaker closed
        raise AssertionError(constraint)

    def first_failed(
        self, row: int, plan: Plan, group: frozenset[str], floor: float | None
    ) -> str | None:
        for constraint in CONSTRAINTS:
            if not self.passes(row, constraint, plan, group, floor):
                return constraint
        return None

    # ------------------------------------------------------------------ deciding

    def route_group(self, plan: Plan, group: frozenset[str], floor: float | None) -> GroupResult:
        rejected_by = [self.first_failed(r, plan, group, floor) for r in range(len(self.rows))]
        viable = [r for r, reason in enumerate(rejected_by) if reason is None]
        total = sum(1 for r in range(len(self.rows)) if self.passes(r, "model", plan, group, floor))

        emptied_by = None
        remaining = list(range(len(self.rows)))
        for constraint in CONSTRAINTS:  # narrow step by step, as the SPEC's pipeline reads
            remaining = [r for r in remaining if self.passes(r, constraint, plan, group, floor)]
            if not remaining:
                emptied_by = constraint
                break

        ranked, scores = self.rank(plan, viable)
        return GroupResult(ranked, scores, total, emptied_by, rejected_by)

    def rank(self, plan: Plan, viable: list[int]) -> tuple[list[int], list[float]]:
        costs = [self.expected_cost(r, plan) for r in viable]
        cost_score = _normalise(costs, lower_is_better=True)
        if plan.cheapest:
            scores = cost_score
        else:
            features = [
                cost_score,
                _normalise([self.rows[r].offer.ttft_ms for r in viable], lower_is_better=True),
                _normalise(
                    [self.rows[r].offer.throughput_tps for r in viable], lower_is_better=False
                ),
                _normalise([1.0 for _ in viable], lower_is_better=False),
                _normalise([self.quality(r, plan.task) for r in viable], lower_is_better=False),
            ]
            total = _total(plan.weights)
            weights = [w / total for w in plan.weights]
            scores = []
            for i in range(len(viable)):
                score = 0.0
                for feature, weight in zip(features, weights, strict=True):
                    score += weight * feature[i]
                scores.append(score)

        def key(i: int) -> tuple[float, float, int]:
            primary = costs[i] if plan.cheapest else -scores[i]
            return (primary, self.blended_price(viable[i]), viable[i])

        order = sorted(range(len(viable)), key=key)
        return [viable[i] for i in order], [scores[i] for i in order]

    def twin(self, row: int) -> tuple[str, str, str, str]:
        """What a deployment's platform row and its BYOK twin have in common."""
        d = self.rows[row]
        return (d.model.id, d.provider.id, d.region, d.provider_model_id)

    def byok_first(self, ranked: list[int], scores: list[float]) -> tuple[list[int], list[float]]:
        """Each BYOK row right ahead of its platform twin, at the better of their places."""
        first: dict[tuple[str, str, str, str], int] = {}
        for place, row in enumerate(ranked):
            first.setdefault(self.twin(row), place)

        def key(i: int) -> tuple[int, bool]:
            row = ranked[i]
            return (first[self.twin(row)], self.rows[row].key_source != "byok")

        order = sorted(range(len(ranked)), key=key)
        return [ranked[i] for i in order], [scores[i] for i in order]

    def route(self, query: RouteQuery) -> RefDecision:
        plan = self.plan(query)
        results = [self.route_group(plan, g, plan.quality_floor) for g in plan.groups]
        relaxed = False
        if (
            plan.soft_floor
            and not any(r.ranked for r in results)
            and any(r.emptied_by == "quality_floor" for r in results)
        ):
            results = [self.route_group(plan, g, None) for g in plan.groups]
            relaxed = True

        ranked: list[int] = []
        scores: list[float] = []
        for result in results:
            for row, score in zip(result.ranked, result.scores, strict=True):
                if row not in ranked:
                    ranked.append(row)
                    scores.append(score)
        ranked, scores = self.byok_first(ranked, scores)
        union = frozenset().union(*plan.groups)
        total = sum(1 for d in self.rows if d.model.id in union)

        rejected_by: list[str | None] = []
        for row, d in enumerate(self.rows):
            if row in ranked:
                rejected_by.append(None)
                continue
            owner = next((i for i, g in enumerate(plan.groups) if d.model.id in g), None)
            rejected_by.append("model" if owner is None else results[owner].rejected_by[row])

        emptied_by = None if ranked else results[0].emptied_by
        return RefDecision(
            strategy=plan.strategy,
            weights=plan.weights,
            ranked=ranked,
            scores=scores,
            candidates_total=total,
            candidates_viable=len(ranked),
            emptied_by=emptied_by,
            health_only=not ranked and all(r.emptied_by in HEALTH_CONSTRAINTS for r in results),
            rejected_by=rejected_by,
            relaxed=relaxed,
            plan=plan,
            floor_used=None if relaxed else plan.quality_floor,
        )

    def violations(self, row: int, decision: RefDecision) -> list[str]:
        """Every constraint ``row`` fails under ``decision``'s plan (its own model's group)."""
        plan = decision.plan
        model = self.rows[row].model.id
        group = next((g for g in plan.groups if model in g), frozenset())
        return [c for c in CONSTRAINTS if not self.passes(row, c, plan, group, decision.floor_used)]


def _total(values: Sequence[float]) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


def _normalise(values: list[float], *, lower_is_better: bool) -> list[float]:
    """Min-max to [0, 1] with 1 the best; a feature equal for everyone gives everyone 1.0."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo <= 0:
        return [1.0 for _ in values]
    out = []
    for value in values:
        position = (value - lo) / (hi - lo)
        out.append(1.0 - position if lower_is_better else position)
    return out
