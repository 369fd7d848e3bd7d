"""``merge``: each layer of the precedence chain overlays the fields it sets."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.routing_options import NOTHING_SET, ROUTING_FIELDS, RoutingOptions, Weights, merge

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "optimize": st.sampled_from(["cost", "speed", "ttft", "balanced", "best"]),
    "weights": st.builds(Weights, cost=st.floats(0, 1), quality=st.floats(0, 1)),
    "max_ttft_ms": st.floats(1, 5000),
    "min_throughput_tps": st.floats(1, 500),
    "min_success_rate": st.floats(0, 1),
    "max_cost_per_1m": st.floats(0.01, 100),
    "providers": st.lists(st.sampled_from(["openai", "anthropic", "groq"]), max_size=2),
    "exclude_providers": st.lists(st.sampled_from(["openai", "mistral"]), max_size=2),
    "regions": st.lists(st.sampled_from(["us", "eu"]), max_size=2),
    "data_policy": st.sampled_from(["none", "no_training", "zdr"]),
    "only_byok": st.booleans(),
    "only_platform": st.booleans(),
    "allow_fallbacks": st.booleans(),
    "max_fallback_attempts": st.integers(0, 10),
    "mode": st.sampled_from(["pool", "fallback"]),
    "quality_floor": st.floats(0, 1),
}
assert set(_VALUES) == set(ROUTING_FIELDS)


@st.composite
def layers(draw: st.DrawFn) -> RoutingOptions:
    chosen = draw(st.sets(st.sampled_from(ROUTING_FIELDS)))
    return RoutingOptions(**{name: draw(_VALUES[name]) for name in chosen})


def _overlaid(lower: RoutingOptions, higher: RoutingOptions) -> RoutingOptions:
    """The rule spelled out: a field set above wins; ``optimize`` alone drops weights below."""
    out = msgspec.structs.asdict(lower)
    for name in ROUTING_FIELDS:
        if getattr(higher, name) is not None:
            out[name] = getattr(higher, name)
    if higher.optimize is not None and higher.weights is None:
        out["weights"] = None
    return RoutingOptions(**out)


@settings(max_examples=300, deadline=None)
@given(lower=layers(), higher=layers())
def test_merge_overlays_every_field_the_higher_layer_sets(
    lower: RoutingOptions, higher: RoutingOptions
) -> None:
    assert merge(lower, higher) == _overlaid(lower, higher)


@settings(max_examples=100, deadline=None)
@given(layer=layers())
def test_an_empty_layer_changes_nothing_on_either_side(layer: RoutingOptions) -> None:
    assert merge(layer, NOTHING_SET) == layer
    assert merge(NOTHING_SET, layer) == layer
