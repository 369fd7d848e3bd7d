"""The built-in catalog's data: complete, priced, and consistent enough to route on."""

from __future__ import annotations

import pytest

from gateway.config import TASKS, Config, load_config

FIRST_PARTY = {
    "openai": ("OPENAI_API_KEY", "openai", "oai"),
    "anthropic": ("ANTHROPIC_API_KEY", "anthropic", "claude"),
    "google_ai_studio": ("GEMINI_API_KEY", "gemini", "gemini"),
    "deepseek": ("DEEPSEEK_API_KEY", "openai", None),
    "xai": ("XAI_API_KEY", "openai", "grok"),
    "mistral": ("MISTRAL_API_KEY", "openai", None),
    "groq": ("GROQ_API_KEY", "openai", None),
    "together_ai": ("TOGETHER_API_KEY", "openai", "together"),
    "fireworks_ai": ("FIREWORKS_API_KEY", "openai", "fireworks"),
    "openrouter": ("OPENROUTER_API_KEY", "openai", None),
}
REQUIRED_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "claude-opus-4",
    "claude-sonnet-4",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-3-5-haiku",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.0-flash",
    "deepseek-chat",
    "deepseek-reasoner",
    "grok-4",
    "grok-3-mini",
    "mistral-large",
    "mistral-small",
    "codestral",
    "llama-3.3-70b",
    "llama-3.1-8b",
    "qwen-2.5-72b",
    "text-embedding-3-small",
    "text-embedding-3-large",
]


@pytest.fixture(scope="module")
def catalog() -> Config:
    return load_config()


def test_required_providers_and_models_are_present(catalog: Config) -> None:
    assert set(FIRST_PARTY) | {"mock"} <= {p.id for p in catalog.providers}
    assert set(REQUIRED_MODELS) <= {m.id for m in catalog.models}


def test_every_first_party_provider_has_a_key_url_and_format(catalog: Config) -> None:
    providers = {p.id: p for p in catalog.providers}
    for pid, (env, fmt, alias) in FIRST_PARTY.items():
        provider = providers[pid]
        assert provider.api_key_env == env, pid
        assert provider.format == fmt, pid
        assert provider.base_url is not None and provider.base_url.startswith("https://"), pid
        assert alias is None or alias in provider.aliases, pid
        assert not provider.self_hosted


def test_mock_provider_is_keyless_zdr_and_offers_nothing(catalog: Config) -> None:
    mock = next(p for p in catalog.providers if p.id == "mock")
    assert (mock.format, mock.base_url, mock.api_key_env) == ("mock", None, None)
    assert (mock.data_policy, mock.regions) == ("zdr", ["global"])
    assert not [o for o in catalog.offers if o.provider == "mock"]


def test_every_model_has_an_offer(catalog: Config) -> None:
    offered = {o.model for o in catalog.offers}
    assert [m.id for m in catalog.models if m.id not in offered] == []


def test_offers_are_priced_and_sized_sensibly(catalog: Config) -> None:
    for offer in catalog.offers:
        where = offer.identity
        assert offer.price.input >= 0 and offer.price.output >= 0, where
        assert (
            offer.price.cached_input is None or 0 <= offer.price.cached_input <= offer.price.input
        )
        assert 0 < offer.max_output <= offer.context_window, where
        assert offer.ttft_ms > 0 and offer.throughput_tps > 0, where
        assert offer.provider_model_id, where  # every built-in offer names its upstream id


def test_embedding_models_have_embedding_offers_only(catalog: Config) -> None:
    kinds = {m.id: m.kind for m in catalog.models}
    for offer in catalog.offers:
        is_embedding = kinds[offer.model] == "embedding"
        assert ("embeddings" in offer.capabilities) == is_embedding, offer.identity


def test_chat_models_have_quality_scores(catalog: Config) -> None:
    for model in catalog.models:
        if model.kind == "chat":
            assert set(TASKS) - {"vision"} <= set(model.quality), model.id
            assert all(0 <= q <= 1 for q in model.quality.values()), model.id
            assert model.family, model.id


def test_vision_scores_only_where_some_offer_has_vision(catalog: Config) -> None:
    vision = {o.model for o in catalog.offers if "vision" in o.capabilities}
    for model in catalog.models:
        assert ("vision" in model.quality) == (model.id in vision), model.id


def test_baseline_and_policies(catalog: Config) -> None:
    assert catalog.defaults.baseline_model in {m.id for m in catalog.models}
    assert catalog.policies["cheapest"].optimize == "cheapest"
    assert catalog.policies["fastest"].optimize == "speed"
    assert catalog.policies["sovereign-eu"].regions == ["eu-*"]
    assert catalog.policies["sovereign-eu"].data_policy == "zdr"
    assert catalog.policies["no-training"].data_policy == "no_training"


def test_frontier_models_cost_more_than_their_small_siblings(catalog: Config) -> None:
    """A sanity check on the price table: catches swapped input/output or a lost digit."""

    def price(model: str, provider: str) -> float:
        offer = next(o for o in catalog.offers if (o.model, o.provider) == (model, provider))
        return offer.price.input + offer.price.output

    assert price("gpt-4o", "openai") > price("gpt-4o-mini", "openai")
    assert price("gpt-5", "openai") > price("gpt-5-mini", "openai")
    assert price("claude-opus-4", "anthropic") > price("claude-sonnet-4", "anthropic")
    assert price("claude-sonnet-4-5", "anthropic") > price("claude-haiku-4-5", "anthropic")
    assert price("gemini-2.5-pro", "google_ai_studio") > price(
        "gemini-2.5-flash", "google_ai_studio"
    )
    for offer in catalog.offers:
        assert offer.price.output >= offer.price.input or offer.price.output == 0, offer.identity
