"""Config loading: the built-in catalog, user overrides, and errors located to file:line:field."""

from __future__ import annotations

import pickle
import string
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import (
    TASKS,
    Config,
    ConfigError,
    Defaults,
    ModelConfig,
    OfferConfig,
    Price,
    ProviderConfig,
    Timeouts,
    builtin_catalog_path,
    load_config,
)
from gateway.routing_options import RoutingOptions


def write(tmp_path: Path, text: str, name: str = "routegate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(path: Path, *, include_builtin: bool = False) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, include_builtin=include_builtin)
    return info.value


MINIMAL = """\
defaults:
  baseline_model: m1
providers:
  - id: p1
    format: openai
    base_url: https://p1.example/v1
models:
  - id: m1
    aliases: [m-one]
offers:
  - model: m1
    provider: p1
    price: {input: 1, output: 2}
    context_window: 1000
    max_output: 100
"""


# ---------------------------------------------------------------- loading and merging


def test_builtin_catalog_loads_and_validates() -> None:
    config = load_config()
    assert builtin_catalog_path().is_file()
    assert config == load_config(None, include_builtin=True)
    assert config.store is None
    assert config.defaults.baseline_model == "gpt-4o"
    assert {"openai", "anthropic", "google_ai_studio", "mock"} <= {p.id for p in config.providers}
    assert {"cheapest", "fastest", "sovereign-eu", "no-training"} <= set(config.policies)
    assert config.policies["sovereign-eu"] == RoutingOptions(regions=["eu-*"], data_policy="zdr")


def test_minimal_file_without_builtin(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), include_builtin=False)
    assert config == Config(
        defaults=Defaults(baseline_model="m1"),
        providers=[ProviderConfig(id="p1", format="openai", base_url="https://p1.example/v1")],
        models=[ModelConfig(id="m1", aliases=["m-one"])],
        offers=[
            OfferConfig(
                model="m1",
                provider="p1",
                price=Price(input=1.0, output=2.0),
                context_window=1000,
                max_output=100,
            )
        ],
    )
    provider = config.providers[0]
    assert provider.regions == ["global"]
    assert provider.timeout_s == Timeouts(first_byte=10.0, total=60.0, stall=30.0)
    assert config.offers[0].upstream_model == "m1"


def test_user_file_overrides_builtin_and_adds_provider(tmp_path: Path) -> None:
    builtin = load_config()
    path = write(
        tmp_path,
        """\
        store: sqlite:///./mine.db
        defaults:
          baseline_model: claude-4-sonnet
        providers:
          - id: eu-vllm
            format: openai
            base_url: http://10.0.0.5:8000/v1
            regions: [eu-west-1]
            data_policy: zdr
            self_hosted: true
        models:
          - id: gpt-4o
            aliases: [gpt-4o-2024-08-06]
            family: gpt-4o
            quality: {chat: 0.5}
        offers:
          - model: gpt-4o-2024-08-06
            provider: oai
            provider_model_id: gpt-4o
            price: {input: 1.0, output: 4.0}
            context_window: 128000
            max_output: 16384
          - model: llama-3.3-70b-instruct
            provider: eu-vllm
            provider_model_id: meta-llama/Llama-3.3-70B-Instruct
            price: {input: 0, output: 0}
            context_window: 131072
            max_output: 8192
        policies:
          cheapest: {optimize: cheapest, data_policy: no_training}
          eu-only: {providers: [eu-vllm]}
        """,
    )
    config = load_config(path)
    assert config.store == "sqlite:///./mine.db"
    assert config.defaults.baseline_model == "claude-sonnet-4"  # alias made canonical
    assert config.defaults.routing == builtin.defaults.routing  # not set by the user: kept
    assert [p.id for p in config.providers] == [p.id for p in builtin.providers] + ["eu-vllm"]
    model_ids = [m.id for m in config.models]
    assert model_ids == [m.id for m in builtin.models]  # overridden in place
    gpt4o = config.models[model_ids.index("gpt-4o")]
    assert gpt4o.quality == {"chat": 0.5}
    assert gpt4o.aliases == ["gpt-4o-2024-08-06"]
    assert len(config.offers) == len(builtin.offers) + 1
    by_identity = {o.identity: o for o in config.offers}
    assert by_identity["gpt-4o", "openai", "gpt-4o"].price == Price(input=1.0, output=4.0)
    added = config.offers[-1]
    assert (added.model, added.provider) == ("llama-3.3-70b", "eu-vllm")
    assert config.policies["cheapest"].data_policy == "no_training"
    assert config.policies["eu-only"].providers == ["eu-vllm"]
    assert config.policies["sovereign-eu"] == builtin.policies["sovereign-eu"]


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "  - &base {model: m1, provider: p1, provider_model_id: a,\n"
        + "           price: {input: 1, output: 2}, context_window: 1000, max_output: 100}\n"
        + "  - <<: *base\n"
        + "    provider_model_id: b\n"
    )
    config = load_config(write(tmp_path, text), include_builtin=False)
    assert [o.upstream_model for o in config.offers] == ["m1", "a", "b"]


def test_empty_user_file_is_the_builtin_catalog(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == load_config()


def test_config_error_renders_and_pickles() -> None:
    error = ConfigError("a.yaml", 3, "providers[0].id", "bad")
    assert str(error) == "a.yaml:3: providers[0].id: bad"
    assert (error.path, error.line, error.field, error.message) == (
        "a.yaml",
        3,
        "providers[0].id",
        "bad",
    )
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)
    assert again.line == 3
    assert str(ConfigError("a.yaml", None, "", "file not found")) == "a.yaml: file not found"


# ---------------------------------------------------------------- errors, with exact lines

PROVIDER = "providers:\n  - id: p1\n    format: openai\n    base_url: https://x.example/v1\n"
MODEL = "models:\n  - id: m1\n"
OFFER = (
    "offers:\n  - model: m1\n    provider: p1\n    price: {input: 1, output: 2}\n"
    "    context_window: 1000\n    max_output: 100\n"
)
HEAD = "defaults:\n  baseline_model: m1\n" + PROVIDER + MODEL  # 8 lines

CASES = [
    # (name, yaml, line, field, message fragment)
    ("unknown field", PROVIDER + "    colour: red\n", 5, "providers[0].colour", "unknown field"),
    ("unknown top-level", "storage: x\n", 1, "storage", "unknown field"),
    ("wrong type", MODEL + "    aliases: m-one\n", 3, "models[0].aliases", "Expected `array`"),
    ("wrong scalar type", PROVIDER + "    self_hosted: 3\n", 5, "providers[0].self_hosted", "bool"),
    (
        "bad enum",
        "providers:\n  - id: p1\n    format: openia\n",
        3,
        "providers[0].format",
        "openai",
    ),
    ("bad id", "models:\n  - id: GPT-4o\n", 2, "models[0].id", "regex"),
    ("slash in alias", MODEL + "    aliases: [ok, a/b]\n", 3, "models[0].aliases[1]", "regex"),
    (
        "out of range in dict",
        MODEL + "    quality:\n      chat: 0.5\n      code: 1.5\n",
        5,
        "models[0].quality.code",
        "<= 1.0",
    ),
    (
        "unknown task",
        MODEL + "    quality:\n      poetry: 0.5\n",
        4,
        "models[0].quality.poetry",
        "task",
    ),
    (
        "negative price",
        HEAD + OFFER.replace("{input: 1,", "{input: -1,"),
        12,
        "offers[0].price.input",
        ">= 0",
    ),
    (
        "missing field",
        HEAD + "offers:\n  - model: m1\n    provider: p1\n",
        10,
        "offers[0].price",
        "missing",
    ),
    (
        "timeout out of range",
        PROVIDER + "    timeout_s:\n      total: 60\n      first_byte: 0\n",
        7,
        "providers[0].timeout_s.first_byte",
        "> 0",
    ),
    (
        "duplicate id",
        PROVIDER + "  - id: p1\n    format: mock\n",
        5,
        "providers[1].id",
        "duplicate provider id (first given at line 2)",
    ),
    (
        "alias collides with id",
        MODEL + "  - id: m2\n    aliases: [m3, m1]\n",
        4,
        "models[1].aliases[1]",
        "already id of model 'm1'",
    ),
    (
        "alias collides with alias",
        "models:\n  - id: m1\n    aliases: [x]\n  - id: m2\n    aliases:\n      - x\n",
        6,
        "models[1].aliases[0]",
        "already an alias of model 'm1'",
    ),
    (
        "provider alias collision",
        PROVIDER + "    aliases: [p2]\n  - id: p2\n    format: mock\n",
        5,
        "providers[0].aliases[0]",
        "already id of provider 'p2'",
    ),
    ("reserved model id", "models:\n  - id: auto\n", 2, "models[0].id", "reserved"),
    (
        "offer unknown model",
        HEAD + OFFER.replace("model: m1", "model: m9"),
        10,
        "offers[0].model",
        "unknown model 'm9'",
    ),
    (
        "offer unknown provider",
        HEAD + OFFER.replace("provider: p1", "provider: p9"),
        11,
        "offers[0].provider",
        "unknown provider 'p9'",
    ),
    (
        "max_output over context",
        HEAD + OFFER.replace("max_output: 100", "max_output: 2000"),
        14,
        "offers[0].max_output",
        "context_window",
    ),
    (
        "duplicate offer",
        HEAD + OFFER + OFFER.removeprefix("offers:\n"),
        15,
        "offers[1]",
        "duplicate offer",
    ),
    (
        "unknown baseline",
        "defaults:\n  baseline_model: m9\n" + MODEL,
        2,
        "defaults.baseline_model",
        "m9",
    ),
    (
        "missing base_url",
        "providers:\n  - id: p1\n    format: anthropic\n",
        2,
        "providers[0].base_url",
        "needs base_url",
    ),
    ("bad base_url", PROVIDER.replace("https://", "ftp://"), 4, "providers[0].base_url", "regex"),
    ("bad policy name", "policies:\n  EU: {data_policy: zdr}\n", 2, "policies.EU", "policy names"),
    (
        "bad policy value",
        "policies:\n  a: {optimize: cheapest}\n  b:\n    optimize: quick\n",
        4,
        "policies.b.optimize",
        "expected one of 'balanced'",
    ),
    (
        "unknown field in policy",
        "policies:\n  a:\n    speed: 1\n",
        3,
        "policies.a.speed",
        "unknown field",
    ),
    (
        "policy names unknown provider",
        PROVIDER + "policies:\n  a: {providers: [p1, nope]}\n",
        6,
        "policies.a.providers[1]",
        "unknown provider 'nope'",
    ),
    (
        "duplicate yaml key",
        MODEL + "    family: a\n    family: b\n",
        4,
        "models[0].family",
        "duplicate key",
    ),
    ("top level not a mapping", "- a\n- b\n", 1, "", "mapping"),
]


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    error = error_of(path)
    assert (error.path, error.line, error.field) == (str(path), line, field), str(error)
    assert fragment in error.message
    prefix = f"{path}:{line}: {field}: " if field else f"{path}:{line}: "
    assert str(error).startswith(prefix)


def test_error_against_builtin_is_reported_in_user_file(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - id: my-4o\n    aliases: [gpt-4o]\n")
    error = error_of(path, include_builtin=True)
    assert (error.path, error.line, error.field) == (str(path), 3, "models[0].aliases[0]")
    assert "already id of model 'gpt-4o'" in error.message


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  - id: p1\n    format: openai: x\n")
    error = error_of(path)
    assert (error.path, error.line, error.field) == (str(path), 3, "")
    assert error.message.startswith("invalid YAML")
    assert str(error).startswith(f"{path}:3: invalid YAML")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    error = error_of(path, include_builtin=True)
    assert (error.path, error.line) == (str(path), None)
    assert str(error) == f"{path}: file not found"


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    error = error_of(tmp_path)
    assert error.line is None
    assert "cannot read" in error.message


# ---------------------------------------------------------------- properties

ident = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,9}", fullmatch=True).filter(
    lambda s: s not in {"auto", "cheapest", "fastest", "best"}
)
text = st.text(string.ascii_lowercase + string.digits + " -_./", min_size=1, max_size=12)
positive = st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False)
usd = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)
fraction = st.floats(min_value=0, max_value=1, allow_nan=False)


@st.composite
def named(draw: st.DrawFn) -> list[tuple[str, list[str]]]:
    """Unique ids, each with its own aliases, from one pool so that nothing collides."""
    names = draw(st.lists(ident, min_size=1, max_size=7, unique=True))
    count = draw(st.integers(1, min(3, len(names))))
    owners = draw(
        st.lists(
            st.integers(0, count - 1), min_size=len(names) - count, max_size=len(names) - count
        )
    )
    aliases: list[list[str]] = [[] for _ in range(count)]
    for owner, alias in zip(owners, names[count:], strict=True):
        aliases[owner].append(alias)
    return list(zip(names[:count], aliases, strict=True))


@st.composite
def providers(draw: st.DrawFn, pid: str, aliases: list[str]) -> ProviderConfig:
    fmt = draw(st.sampled_from(["openai", "anthropic", "gemini", "mock"]))
    total = draw(positive)
    return ProviderConfig(
        id=pid,
        format=fmt,
        base_url=draw(st.sampled_from(["https://a.example/v1", "http://10.0.0.5:8000/v1"]))
        if fmt != "mock" or draw(st.booleans())
        else None,
        api_key_env=draw(st.none() | st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)),
        regions=draw(st.lists(ident, min_size=1, max_size=2)),
        data_policy=draw(st.sampled_from(["none", "no_training", "zdr"])),
        aliases=aliases,
        timeout_s=Timeouts(
            first_byte=draw(st.floats(0.001, total)), total=total, stall=draw(positive)
        ),
        self_hosted=draw(st.booleans()),
        headers=draw(st.dictionaries(text, text, max_size=2)),
    )


@st.composite
def offers(draw: st.DrawFn, model: str, provider: str) -> OfferConfig:
    window = draw(st.integers(1, 2_000_000))
    return OfferConfig(
        model=model,
        provider=provider,
        provider_model_id=draw(st.none() | text),
        price=Price(input=draw(usd), output=draw(usd), cached_input=draw(st.none() | usd)),
        context_window=window,
        max_output=draw(st.integers(1, window)),
        capabilities=draw(
            st.lists(st.sampled_from(["tools", "vision", "json_schema", "reasoning"]), max_size=3)
        ),
        ttft_ms=draw(positive),
        throughput_tps=draw(positive),
        tier=draw(text),
        regions=draw(st.none() | st.lists(ident, max_size=2)),
    )


@st.composite
def configs(draw: st.DrawFn) -> Config:
    provider_list = [draw(providers(pid, aliases)) for pid, aliases in draw(named())]
    model_list = [
        ModelConfig(
            id=mid,
            aliases=aliases,
            family=draw(st.none() | text),
            kind=draw(st.sampled_from(["chat", "embedding"])),
            quality=draw(st.dictionaries(st.sampled_from(TASKS), fraction, max_size=3)),
        )
        for mid, aliases in draw(named())
    ]
    pairs = draw(
        st.lists(
            st.tuples(
                st.sampled_from([m.id for m in model_list]),
                st.sampled_from([p.id for p in provider_list]),
            ),
            max_size=4,
        )
    )
    offer_list: dict[tuple[str, str, str], OfferConfig] = {}
    for model, provider in pairs:
        offer = draw(offers(model, provider))
        offer_list.setdefault(offer.identity, offer)
    provider_ids = [p.id for p in provider_list]
    policies = draw(
        st.dictionaries(
            st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True),
            st.builds(
                RoutingOptions,
                optimize=st.none() | st.sampled_from(["cheapest", "speed", "balanced"]),
                data_policy=st.none() | st.sampled_from(["no_training", "zdr"]),
                providers=st.none() | st.lists(st.sampled_from(provider_ids), max_size=2),
                max_fallback_attempts=st.none() | st.integers(0, 10),
            ),
            max_size=2,
        )
    )
    return Config(
        store=draw(st.none() | st.just("sqlite:///./x.db")),
        defaults=Defaults(
            baseline_model=draw(st.sampled_from([m.id for m in model_list])),
            routing=RoutingOptions(optimize=draw(st.sampled_from(["balanced", "cost"]))),
            max_body_bytes=draw(st.integers(1, 2**40)),
        ),
        providers=provider_list,
        models=model_list,
        offers=list(offer_list.values()),
        policies=policies,
    )


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=10**9)


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(config=configs())
def test_valid_configs_round_trip(tmp_path: Path, config: Config) -> None:
    path = write(tmp_path, dump(msgspec.to_builtins(config)))
    assert load_config(path, include_builtin=False) == config


def leaves(data: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every scalar (or null) in the document, by path."""
    if isinstance(data, dict):
        return [leaf for key, value in data.items() for leaf in leaves(value, (*path, key))]
    if isinstance(data, list):
        return [leaf for i, value in enumerate(data) for leaf in leaves(value, (*path, i))]
    return [path]


def field_name(path: tuple[str | int, ...]) -> str:
    return "".join(
        f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path)
    )


@PROPERTY
@given(config=configs(), data=st.data())
def test_a_corrupted_field_is_named_with_its_line(
    tmp_path: Path, config: Config, data: st.DataObject
) -> None:
    document = msgspec.to_builtins(config)
    target = data.draw(st.sampled_from(leaves(document)))
    parent = document
    for key in target[:-1]:
        parent = parent[key]
    parent[target[-1]] = {"ZZCORRUPT": 1}  # no scalar field accepts a mapping
    text = dump(document)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "ZZCORRUPT" in row)
    error = error_of(write(tmp_path, text))
    name = field_name(target)  # a null struct (weights) takes a mapping and names the bad key
    assert error.line == line, str(error)
    assert error.field in (name, f"{name}.ZZCORRUPT"), str(error)
