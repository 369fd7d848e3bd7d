"""Routegate configuration (SPEC §9): YAML → frozen msgspec structs, validated at start.

Loading is two-step so every error can say ``file:line: field: message``: ``yaml`` composes
nodes (which keep their lines) and ``msgspec.convert(strict=True)`` decodes the plain data
(whose error paths ``config_errors`` maps back to lines). The built-in catalog
(``data/catalog.yaml``) is the first layer and a user's file extends it: providers and models
with the same id, and offers with the same (model, provider, upstream id), replace the built-in
ones in place; policies merge by name; ``store`` and each ``defaults`` field come from the user
file when it sets them. Cross-references are checked after the merge, and aliases in offers and
``defaults.baseline_model`` are rewritten to canonical ids so consumers never resolve them.

>>> config = load_config()
>>> config.defaults.baseline_model
'gpt-4o'
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
from collections.abc import Callable, Hashable, Iterable
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

import msgspec

from gateway.config_errors import ConfigError, DataPath, LineMap, parse_yaml
from gateway.config_errors import locate_validation_error as _locate
from gateway.routing_options import DataPolicy, RoutingOptions

__all__ = [
    "POLICY_WORDS",
    "TASKS",
    "Config",
    "ConfigError",
    "Defaults",
    "HealthSettings",
    "ModelConfig",
    "OfferConfig",
    "Price",
    "ProviderConfig",
    "Timeouts",
    "builtin_catalog_path",
    "load_config",
]

TASKS: tuple[str, ...] = (
    "chat",
    "code",
    "math",
    "extraction",
    "summarization",
    "creative",
    "vision",
)
"""The prompt tasks, in the column order of the core's quality matrix."""

POLICY_WORDS: frozenset[str] = frozenset({"auto", "cheapest", "fastest", "best"})
"""``model`` values that select a strategy, so no model may be called that (SPEC §2)."""

ProviderFormat = Literal["openai", "anthropic", "gemini", "mock"]
Capability = Literal[
    "tools", "vision", "json_object", "json_schema", "audio", "reasoning", "embeddings"
]
ModelKind = Literal["chat", "embedding"]
PrefillStyle = Literal["none", "assistant", "continue_final_message", "prefix", "prefix_echo"]
"""How an offer continues a partial answer (docs/behaviour.md, "Continuing a broken stream"):
``assistant``, a final assistant message (Anthropic); ``continue_final_message`` (vLLM);
``prefix``, ``"prefix": true`` on it (DeepSeek); ``prefix_echo``, the same with the prefix
repeated in the answer (Mistral); ``none``, it cannot."""

# `/` pins a provider (`anthropic/claude-sonnet-4`) and `:` starts a suffix (`gpt-4o:nitro`).
Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9._-]+$", max_length=128)]
EnvName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$")]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Usd = Annotated[float, msgspec.Meta(ge=0)]
Tokens = Annotated[int, msgspec.Meta(gt=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

_POLICY_NAME = re.compile(r"^[a-z0-9_-]+$")
_REMOTE_FORMATS = ("openai", "anthropic", "gemini")


def _global_region() -> list[str]:
    return ["global"]


class Timeouts(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-attempt deadlines in seconds (SPEC §3 step 6), overridable per provider."""

    first_byte: Seconds = 10.0
    total: Seconds = 60.0
    stall: Seconds = 30.0


class ProviderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An upstream API; ``api_key_env`` names the platform key (BYOK keys live in the store)."""

    id: Id
    format: ProviderFormat
    base_url: Url | None = None
    api_key_env: EnvName | None = None
    regions: Annotated[list[Id], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=_global_region
    )
    data_policy: DataPolicy = "none"
    aliases: list[Id] = msgspec.field(default_factory=list)
    timeout_s: Timeouts = msgspec.field(default_factory=Timeouts)
    self_hosted: bool = False
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class ModelConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A canonical model; ``quality`` maps a task of TASKS to an expected quality in 0..1."""

    id: Id
    aliases: list[Id] = msgspec.field(default_factory=list)
    family: NonEmpty | None = None
    kind: ModelKind = "chat"
    quality: dict[str, Fraction] = msgspec.field(default_factory=dict)
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """An embedding model's native vector size: the largest ``dimensions`` it is asked for."""


class Price(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """USD per 1M tokens."""

    input: Usd
    output: Usd
    cached_input: Usd | None = None


class OfferConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One model on one provider; ``regions`` None means the provider's regions."""

    model: Id
    provider: Id
    provider_model_id: NonEmpty | None = None
    price: Price
    context_window: Tokens
    max_output: Tokens
    capabilities: list[Capability] = msgspec.field(default_factory=list)
    ttft_ms: Positive = 500.0
    throughput_tps: Positive = 80.0
    tier: NonEmpty = "standard"
    regions: list[Id] | None = None
    prefill: PrefillStyle | None = None
    """None: the provider format's default (``assistant`` for anthropic, else ``none``)."""

    @property
    def upstream_model(self) -> str:
        """The model name sent to the provider."""
        return self.provider_model_id or self.model

    @property
    def identity(self) -> tuple[str, str, str]:
        """What a user file must repeat to override this offer."""
        return (self.model, self.provider, self.upstream_model)


class HealthSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How deployments' live health is learned (SPEC §3 step 7)."""

    learn_latency: bool = True  # false: route on the catalog's TTFT/throughput priors only
    ewma_alpha: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.2
    min_samples: Annotated[int, msgspec.Meta(ge=1)] = 5  # observations before priors yield
    failure_threshold: Annotated[int, msgspec.Meta(ge=1)] = 5  # consecutive failures: open
    failure_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5  # …or this rate over window
    window: Annotated[int, msgspec.Meta(ge=2)] = 20
    cooldown_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0  # open → one probe after this
    # Each failed probe doubles the cool-down, up to this (or cooldown_s, if larger).
    max_cooldown_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0


class FailoverSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a failed attempt is retried on the same deployment instead of moving on
    (docs/behaviour.md, "Failover"): a 429 whose ``Retry-After`` is at most
    ``retry_after_max_s`` (0: never), and one quick retry after a random
    ``quick_retry_min_s``–``quick_retry_max_s`` when a request's first attempt meets a
    500/502/503 or a reset connection."""

    retry_after_max_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 2.0
    quick_retry: bool = True
    quick_retry_min_s: Annotated[float, msgspec.Meta(ge=0, le=5)] = 0.05
    quick_retry_max_s: Annotated[float, msgspec.Meta(ge=0, le=5)] = 0.25

    def __post_init__(self) -> None:
        if self.quick_retry_max_s < self.quick_retry_min_s:
            raise ValueError("quick_retry_max_s must not be below quick_retry_min_s")


class StorePool(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Connections from one gateway process to a shared store (Redis). A request that finds
    every connection in use waits for one (back-pressure), at most ``wait_timeout_s``, and is
    then answered 503 with ``Retry-After``, in either ``store_unavailable`` mode."""

    max_connections: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 64
    wait_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``allow_private_targets``: may budget alert webhooks go to loopback, link-local or
    private addresses (docs/governance.md, "Alert webhooks")? Off: a workspace admin must not
    make the gateway POST into its own network."""

    allow_private_targets: bool = False


class Defaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Gateway-wide defaults: the savings baseline, the routing base layer, the body limit
    and read timeout, and what to do when the store is unreachable (``closed``: 503;
    ``open``: serve ungoverned, metering kept in the spool until the store is back)."""

    baseline_model: Id = "gpt-4o"
    routing: RoutingOptions = msgspec.field(default_factory=RoutingOptions)
    max_body_bytes: Annotated[int, msgspec.Meta(gt=0)] = 16 * 1024 * 1024
    body_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0  # whole body read: else 408
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)
    failover: FailoverSettings = msgspec.field(default_factory=FailoverSettings)
    store_unavailable: Literal["closed", "open"] = "closed"
    store_pool: StorePool = msgspec.field(default_factory=StorePool)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One config file, or the validated merge of the built-in catalog and a user file."""

    store: NonEmpty | None = None
    defaults: Defaults = msgspec.field(default_factory=Defaults)
    providers: list[ProviderConfig] = msgspec.field(default_factory=list)
    models: list[ModelConfig] = msgspec.field(default_factory=list)
    offers: list[OfferConfig] = msgspec.field(default_factory=list)
    policies: dict[str, RoutingOptions] = msgspec.field(default_factory=dict)


def builtin_catalog_path() -> pathlib.Path:
    """The catalog shipped in the package (next to this module, so it works from a wheel)."""
    return pathlib.Path(__file__).resolve().parent / "data" / "catalog.yaml"


def load_config(
    path: str | os.PathLike[str] | None = None, *, include_builtin: bool = True
) -> Config:
    """Load, merge and validate: the built-in catalog, extended by ``path`` when given.

    Raises ConfigError naming the file, line and field of the first problem found.
    """
    layers = [_builtin_layer()] if include_builtin else []
    if path is not None:
        layers.append(_read_layer(path))
    return _merge(layers)


# ---------------------------------------------------------------- reading one file


class _Layer(NamedTuple):
    config: Config
    raw: dict[str, Any]
    lines: LineMap


class _Src(NamedTuple):
    """Where a merged item came from: its file's lines and its path there."""

    lines: LineMap
    at: DataPath
    layer: int

    def error(self, sub: DataPath, message: str) -> ConfigError:
        return self.lines.error((*self.at, *sub), message)


def _builtin_layer() -> _Layer:
    """The built-in layer, parsed once per file version: every test and worker loads it."""
    path = builtin_catalog_path()
    try:
        stat = path.stat()
    except OSError:
        return _read_layer(path)
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _read_cached(file: str, mtime_ns: int, size: int) -> _Layer:
    return _read_layer(file)


def _read_layer(path: str | os.PathLike[str]) -> _Layer:
    file = str(os.fspath(path))
    try:
        text = pathlib.Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(file, None, "", "file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(file, None, "", "not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(file, None, "", f"cannot read: {exc.strerror or exc}") from None
    data, lines = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise lines.error((), "the top level must be a mapping")
    try:
        config = msgspec.convert(data, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise _locate(exc, data, lines, Config) from None
    return _Layer(config, data, lines)


# ---------------------------------------------------------------- merging and validating

T = TypeVar("T")
Sourced = list[tuple[T, _Src]]


def _sourced(
    layers: list[_Layer], section: str, pick: Callable[[Config], list[T]]
) -> list[Sourced[T]]:
    return [
        [(item, _Src(layer.lines, (section, i), n)) for i, item in enumerate(pick(layer.config))]
        for n, layer in enumerate(layers)
    ]


def _merge_by(
    per_layer: Iterable[Sourced[T]], key: Callable[[T], Hashable], what: str, field: DataPath
) -> Sourced[T]:
    """Later layers replace earlier items with the same key in place; repeats in one file fail."""
    merged: dict[Hashable, tuple[T, _Src]] = {}
    for items in per_layer:
        first: dict[Hashable, _Src] = {}
        for item, src in items:
            k = key(item)
            if k in first:
                line = first[k].lines.line(first[k].at)
                raise src.error(field, f"duplicate {what} (first given at line {line})")
            first[k] = src
            merged[k] = (item, src)
    return list(merged.values())


def _names(items: Sourced[Any], what: str, reserved: frozenset[str]) -> dict[str, str]:
    """Id and alias → id; checked in layer order so a clash is reported in the later file."""
    names: dict[str, str] = {item.id: item.id for item, _ in items}
    for item, src in sorted(items, key=lambda pair: pair[1].layer):
        if item.id in reserved:
            raise src.error(("id",), f"{item.id!r} is reserved for a routing policy word")
        for j, alias in enumerate(item.aliases):
            owner = names.setdefault(alias, item.id)
            if alias in reserved:
                raise src.error(("aliases", j), f"{alias!r} is reserved for a routing policy word")
            if owner != item.id:
                kind = "id" if alias == owner else "an alias"
                raise src.error(("aliases", j), f"{alias!r} is already {kind} of {what} {owner!r}")
    return names


def _merge(layers: list[_Layer]) -> Config:
    providers = _merge_by(
        _sourced(layers, "providers", lambda c: c.providers), lambda p: p.id, "provider id", ("id",)
    )
    models = _merge_by(
        _sourced(layers, "models", lambda c: c.models), lambda m: m.id, "model id", ("id",)
    )
    provider_names = _names(providers, "provider", frozenset())
    model_names = _names(models, "model", POLICY_WORDS)
    for provider, src in providers:
        _check_provider(provider, src)
    for model, src in models:
        for task in model.quality:
            if task not in TASKS:
                raise src.error(("quality", task), f"unknown task; expected one of {list(TASKS)}")

    def canonical(offer: OfferConfig, src: _Src) -> OfferConfig:
        model = model_names.get(offer.model)
        if model is None:
            raise src.error(("model",), f"unknown model {offer.model!r}")
        provider = provider_names.get(offer.provider)
        if provider is None:
            raise src.error(("provider",), f"unknown provider {offer.provider!r}")
        if offer.max_output > offer.context_window:
            raise src.error(("max_output",), "must not exceed context_window")
        if (model, provider) == (offer.model, offer.provider):
            return offer
        return msgspec.structs.replace(offer, model=model, provider=provider)

    offers = _merge_by(
        (
            [(canonical(o, src), src) for o, src in layer]
            for layer in _sourced(layers, "offers", lambda c: c.offers)
        ),
        lambda o: o.identity,
        "offer for this (model, provider, provider_model_id)",
        (),
    )

    policies: dict[str, RoutingOptions] = {}
    for n, layer in enumerate(layers):
        for name, options in layer.config.policies.items():
            src = _Src(layer.lines, ("policies", name), n)
            if not _POLICY_NAME.match(name):
                raise src.error((), "policy names are lowercase [a-z0-9_-]+")
            _check_routing(options, src, provider_names)
            policies[name] = options

    defaults, store = _merge_defaults(layers, model_names, provider_names)
    return Config(
        store=store,
        defaults=defaults,
        providers=[p for p, _ in providers],
        models=[m for m, _ in models],
        offers=[o for o, _ in offers],
        policies=policies,
    )


def _check_provider(provider: ProviderConfig, src: _Src) -> None:
    if provider.format in _REMOTE_FORMATS and provider.base_url is None:
        raise src.error(("base_url",), f"a provider of format {provider.format!r} needs base_url")
    if provider.timeout_s.first_byte > provider.timeout_s.total:
        raise src.error(("timeout_s", "first_byte"), "must not exceed timeout_s.total")


def _check_routing(options: RoutingOptions, src: _Src, provider_names: dict[str, str]) -> None:
    """What RoutingOptions' types cannot say: known providers, one key source."""
    for field in ("providers", "exclude_providers"):
        for j, name in enumerate(getattr(options, field) or ()):
            if name.lower() not in provider_names:
                raise src.error((field, j), f"unknown provider {name!r}")
    if options.only_byok and options.only_platform:
        raise src.error(("only_byok",), "only_byok and only_platform cannot both be true")


def _merge_defaults(
    layers: list[_Layer], model_names: dict[str, str], provider_names: dict[str, str]
) -> tuple[Defaults, str | None]:
    """Each ``defaults`` field and ``store`` from the last file that sets it."""
    defaults, store = Defaults(), None
    baseline_src: _Src | None = None
    for n, layer in enumerate(layers):
        if "store" in layer.raw:
            store = layer.config.store
        raw_defaults = layer.raw.get("defaults")
        if not isinstance(raw_defaults, dict):
            continue
        given = {name: getattr(layer.config.defaults, name) for name in raw_defaults}
        defaults = msgspec.structs.replace(defaults, **given)
        if "baseline_model" in given:
            baseline_src = _Src(layer.lines, ("defaults", "baseline_model"), n)
        if "routing" in given:
            _check_routing(
                defaults.routing, _Src(layer.lines, ("defaults", "routing"), n), provider_names
            )
    if model_names:
        baseline = model_names.get(defaults.baseline_model)
        if baseline is None:
            src = baseline_src or _Src(layers[-1].lines, ("defaults", "baseline_model"), 0)
            raise src.error((), f"unknown model {defaults.baseline_model!r}")
        defaults = msgspec.structs.replace(defaults, baseline_model=baseline)
    return defaults, store
