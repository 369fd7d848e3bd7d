"""Model expressions of SPEC §2: policy words, ids, aliases, suffixes, provider pins."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.errors import ModelNotFound
from gateway.routing import POLICY_WORDS, SUFFIXES, resolve_model
from gateway.routing.catalog import Catalog

CATALOG = Catalog(load_config(None), environ={})
MODEL_NAMES = sorted(CATALOG.model_index)


@given(st.sampled_from(MODEL_NAMES))
def test_every_id_and_alias_resolves_to_its_model(name: str) -> None:
    expression = resolve_model(CATALOG, name)
    assert expression.models == frozenset({CATALOG.model_index[name]})
    assert expression.optimize is None


@given(st.sampled_from(MODEL_NAMES), st.sampled_from(sorted(SUFFIXES)))
def test_suffix_sets_the_strategy_and_keeps_the_model(name: str, suffix: str) -> None:
    expression = resolve_model(CATALOG, f"{name}:{suffix}")
    assert expression.models == frozenset({CATALOG.model_index[name]})
    assert expression.optimize == SUFFIXES[suffix]


@given(st.sampled_from(sorted(POLICY_WORDS)))
def test_policy_words_select_the_whole_catalog(word: str) -> None:
    expression = resolve_model(CATALOG, word.upper())
    expected = None if word == "auto" else POLICY_WORDS[word]  # auto defers to the defaults
    assert expression.models is None and expression.optimize == expected


@given(st.sampled_from(sorted(CATALOG.provider_index)), st.sampled_from(MODEL_NAMES))
def test_provider_pin(provider: str, model: str) -> None:
    expression = resolve_model(CATALOG, f"{provider}/{model}")
    assert expression.pinned_provider == CATALOG.provider_index[provider]
    assert expression.models == frozenset({CATALOG.model_index[model]})


@pytest.mark.parametrize("name", ["ft:gpt-4o:org:x", "gpt-4o:warp", "no-such-model", ""])
def test_unknown_expressions_are_404(name: str) -> None:
    with pytest.raises(ModelNotFound):
        resolve_model(CATALOG, name)
