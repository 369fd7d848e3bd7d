"""Routing options change which provider serves (SPEC §2 fields, §3 semantics, §4, §6).

One gateway for the module in front of five real upstream servers (``support.fleet``); every
test reads the served provider from ``routing_metadata.provider`` and checks it against
``X-Provider-Used`` and the upstream that actually received the request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.checks import assert_error, read_sse, sse_json_events
from support.fleet import (
    GPT4O,
    MINI,
    MINI_ALIAS,
    NAMES,
    Fleet,
    Served,
    reply_text,
    running_fleet,
    spec_rank,
    spec_winner,
)
from support.upstream import Status

ALL_OFFERS = 7  # five gpt-4o-mini offers, two gpt-4o offers


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, admin_key: str) -> Iterator[Fleet]:
    with running_fleet(tmp_path_factory.mktemp("gw-fleet-opts"), admin_key, "gw-fleet-opts") as f:
        yield f
        f.gateway.assert_no_secrets(admin_key, f.live_key, *f.secrets.values())
        assert "Traceback" not in f.gateway.log_text(), f.gateway.log_tail(80)


@pytest.fixture(autouse=True)
def _fresh(fleet: Fleet) -> None:
    fleet.reset()


def _served_by(served: Served, provider: str, *, strategy: str | None = None) -> None:
    assert served.provider == provider, f"expected {provider}; {served.summary()}"
    if strategy is not None:
        assert served.strategy == strategy, f"expected strategy {strategy!r}; {served.summary()}"


def _viable(served: Served, count: int) -> None:
    meta = served.meta
    assert meta.get("candidates_viable") == count, f"expected {count} viable; {served.summary()}"
    total = meta.get("candidates_total")
    assert isinstance(total, int) and total >= count, f"candidates_total {total!r} < {count}"


def _policy_conflict(fleet: Fleet, routing: dict[str, Any], *names: str, **body: Any) -> str:
    resp, received = fleet.post(
        {
            "model": body.pop("model", MINI),
            "messages": body.pop("messages", [{"role": "user", "content": "Say hello."}]),
            "routing": routing,
            **body,
        }
    )
    err = assert_error(resp, 409, "policy_conflict")
    message = err["message"].lower()
    assert any(n in message for n in names), f"message does not name {names}: {err['message']!r}"
    assert not any(received.values()), "a 409 must not reach any upstream"
    return message


# ------------------------------------------------------------------ the fleet itself


def test_fleet_design_gives_each_strategy_its_own_winner() -> None:
    """Pure check of the test data against the SPEC §3 presets (no gateway)."""
    expected = {
        "cheapest": "alpha",
        "cost": "alpha",
        "speed": "echo",
        "ttft": "bravo",
        "throughput": "charlie",
        "balanced": "delta",
    }
    for strategy, provider in expected.items():
        ranked = spec_rank(strategy)
        assert ranked[0][0] == provider, (strategy, ranked)
        assert ranked[0][2] - ranked[1][2] >= 0.03, f"{strategy}: margin too small {ranked[:2]}"
    assert spec_rank("best", models=(MINI, GPT4O))[0][:2] == ("bravo", GPT4O)
    assert spec_winner("balanced", models=(MINI, GPT4O)) == "delta"
    assert spec_winner("speed", models=(MINI, GPT4O)) == "echo"


# ------------------------------------------------------------------ strategies


def test_default_is_balanced_over_all_five(fleet: Fleet) -> None:
    served = fleet.route(MINI)
    _served_by(served, "delta", strategy="balanced")
    _viable(served, 5)
    assert served.meta.get("policy") is None, served.summary()
    assert not served.meta.get("warnings"), served.summary()
    assert served.body["model"] == MINI
    assert served.headers.get("x-model-canonical") == MINI


@pytest.mark.parametrize(
    ("optimize", "provider"),
    [
        ("cost", "alpha"),
        ("cheapest", "alpha"),
        ("speed", "echo"),
        ("ttft", "bravo"),
        ("throughput", "charlie"),
        ("balanced", "delta"),
    ],
)
def test_optimize_picks_the_strategy_winner(fleet: Fleet, optimize: str, provider: str) -> None:
    served = fleet.route(MINI, routing={"optimize": optimize})
    _served_by(served, provider, strategy=optimize)
    _viable(served, 5)


@pytest.mark.parametrize(("optimize", "provider"), [("throughput", "charlie"), ("ttft", "bravo")])
def test_optimize_through_the_openai_sdk(fleet: Fleet, optimize: str, provider: str) -> None:
    served = fleet.route_sdk(MINI, routing={"optimize": optimize})
    _served_by(served, provider, strategy=optimize)


@pytest.mark.parametrize(
    ("weights", "provider"),
    [
        ({"throughput": 1}, "charlie"),
        ({"ttft": 3, "cost": 0}, "bravo"),
        ({"cost": 1, "throughput": 0}, "alpha"),
    ],
)
def test_custom_weights_are_reported_as_custom(
    fleet: Fleet, weights: dict[str, float], provider: str
) -> None:
    served = fleet.route(MINI, routing={"weights": weights})
    _served_by(served, provider, strategy="custom")


def test_weights_override_optimize_with_a_warning(fleet: Fleet) -> None:
    served = fleet.route(MINI, routing={"optimize": "cheapest", "weights": {"throughput": 1}})
    _served_by(served, "charlie", strategy="custom")
    warnings = served.meta.get("warnings") or []
    assert any("optimize" in w for w in warnings), served.summary()


@pytest.mark.parametrize(
    ("suffix", "provider", "strategy"),
    [
        ("floor", "alpha", "cheapest"),
        ("cost", "alpha", "cost"),
        ("nitro", "echo", "speed"),
        ("fast", "bravo", "ttft"),
        ("balanced", "delta", "balanced"),
    ],
)
def test_model_suffix_selects_the_strategy(
    fleet: Fleet, suffix: str, provider: str, strategy: str
) -> None:
    served = fleet.route(f"{MINI}:{suffix}")
    _served_by(served, provider, strategy=strategy)
    assert served.model == MINI
    assert served.body["model"] == MINI


def test_suffix_on_a_model_alias(fleet: Fleet) -> None:
    served = fleet.route(f"{MINI_ALIAS}:nitro")
    _served_by(served, "echo", strategy="speed")
    assert served.model == MINI


def test_id_with_several_colons_is_not_a_suffix(fleet: Fleet) -> None:
    resp, received = fleet.post(
        {"model": f"ft:{MINI}:org:nitro", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert_error(resp, 404, "model_not_found")
    assert not any(received.values())


@pytest.mark.parametrize(
    ("model", "routing"),
    [
        (f"charlie/{MINI}", None),
        (f"charlie/{MINI}", {"optimize": "cheapest"}),
        (f"cee/{MINI}", {"optimize": "ttft"}),
        (f"charlie/{MINI}:floor", None),
    ],
)
def test_provider_pin(fleet: Fleet, model: str, routing: dict[str, Any] | None) -> None:
    served = fleet.route(model, routing=routing)
    _served_by(served, "charlie")
    assert served.model == MINI
    _viable(served, 1)


@pytest.mark.parametrize(
    ("word", "provider", "model", "strategy"),
    [
        ("auto", "delta", MINI, "balanced"),
        ("cheapest", "alpha", MINI, "cheapest"),
        ("fastest", "echo", MINI, "speed"),
        ("best", "bravo", GPT4O, "best"),
    ],
)
def test_policy_words_route_over_every_live_offer(
    fleet: Fleet, word: str, provider: str, model: str, strategy: str
) -> None:
    served = fleet.route(word)
    _served_by(served, provider, strategy=strategy)
    assert served.model == model, served.summary()
    # Live keys see only the providers with a platform key: the fleet, not the mock.
    _viable(served, ALL_OFFERS)


def test_absent_model_means_auto(fleet: Fleet) -> None:
    served = fleet.route(None)
    _served_by(served, "delta", strategy="balanced")
    _viable(served, ALL_OFFERS)


# ------------------------------------------------------------------ models: pool and fallback


def test_models_pool_ranks_across_all_models(fleet: Fleet) -> None:
    served = fleet.route(None, models=[GPT4O, MINI], routing={"optimize": "cheapest"})
    _served_by(served, "alpha", strategy="cheapest")
    assert served.model == MINI
    _viable(served, ALL_OFFERS)


def test_models_explicit_pool_mode(fleet: Fleet) -> None:
    served = fleet.route(
        None, models=[GPT4O, MINI], routing={"optimize": "cheapest", "mode": "pool"}
    )
    _served_by(served, "alpha")
    assert served.model == MINI
    assert not served.meta.get("warnings"), served.summary()


def test_models_fallback_mode_serves_the_first_model_first(fleet: Fleet) -> None:
    served = fleet.route(
        None, models=[GPT4O, MINI], routing={"optimize": "cheapest", "mode": "fallback"}
    )
    _served_by(served, "charlie", strategy="cheapest")  # the cheaper gpt-4o offer
    assert served.model == GPT4O


def test_models_fallback_mode_follows_the_list_order(fleet: Fleet) -> None:
    served = fleet.route(
        None, models=[MINI, GPT4O], routing={"optimize": "ttft", "mode": "fallback"}
    )
    _served_by(served, "bravo")
    assert served.model == MINI


def test_routing_mode_without_models_is_ignored_with_a_warning(fleet: Fleet) -> None:
    served = fleet.route(MINI, routing={"mode": "fallback"})
    _served_by(served, "delta")
    warnings = served.meta.get("warnings")
    assert isinstance(warnings, list) and any("mode" in w for w in warnings), served.summary()


# ------------------------------------------------------------------ provider and region filters


def test_providers_allow_list_is_case_insensitive_and_takes_aliases(fleet: Fleet) -> None:
    served = fleet.route(MINI, routing={"providers": ["ECHO", "Cee"], "optimize": "cheapest"})
    _served_by(served, "charlie")
    _viable(served, 2)


def test_exclude_providers(fleet: Fleet) -> None:
    served = fleet.route(
        MINI, routing={"exclude_providers": ["ALPHA", "delta"], "optimize": "cheapest"}
    )
    _served_by(served, "bravo")
    _viable(served, 3)


@pytest.mark.parametrize(
    ("optimize", "provider"), [("cheapest", "bravo"), ("throughput", "charlie")]
)
def test_regions_glob(fleet: Fleet, optimize: str, provider: str) -> None:
    served = fleet.route(MINI, routing={"regions": ["eu-*"], "optimize": optimize})
    _served_by(served, provider)
    assert served.meta["region"].startswith("eu-")
    _viable(served, 2)


def test_regions_exact(fleet: Fleet) -> None:
    served = fleet.route(MINI, routing={"regions": ["ap-southeast-1"], "optimize": "cheapest"})
    _served_by(served, "delta")
    _viable(served, 1)


@pytest.mark.parametrize(
    ("data_policy", "optimize", "provider", "viable"),
    [
        ("zdr", "cheapest", "delta", 2),
        ("zdr", "throughput", "charlie", 2),
        ("no_training", "cheapest", "delta", 4),  # zdr satisfies no_training
        ("no_training", "ttft", "bravo", 4),
        ("none", "cheapest", "alpha", 5),
    ],
)
def test_data_policy_hierarchy(
    fleet: Fleet, data_policy: str, optimize: str, provider: str, viable: int
) -> None:
    served = fleet.route(MINI, routing={"data_policy": data_policy, "optimize": optimize})
    _served_by(served, provider)
    _viable(served, viable)


def test_only_platform_keeps_every_platform_offer(fleet: Fleet) -> None:
    served = fleet.route(MINI, routing={"only_platform": True})
    _served_by(served, "delta")
    _viable(served, 5)
    assert served.headers.get("x-api-key-source") == "platform"


def test_only_byok_without_byok_keys_is_a_policy_conflict(fleet: Fleet) -> None:
    _policy_conflict(fleet, {"only_byok": True}, "key_source")


# ------------------------------------------------------------------ price, latency, quality


def test_max_cost_per_1m_excludes_dearer_offers(fleet: Fleet) -> None:
    # Blended prices: alpha 0.25, delta 0.625, bravo 1.75, charlie 2.5, echo 2.875.
    served = fleet.route(MINI, routing={"max_cost_per_1m": 1.0, "optimize": "ttft"})
    _served_by(served, "delta")
    _viable(served, 2)


def test_max_ttft_ms_excludes_slow_offers(fleet: Fleet) -> None:
    served = fleet.route(MINI, routing={"max_ttft_ms": 400, "optimize": "cheapest"})
    _served_by(served, "bravo")  # alpha (1000 ms) and delta (450 ms) are out
    _viable(served, 2)


def test_min_throughput_tps_excludes_slow_offers(fleet: Fleet) -> None:
    served = fleet.route(MINI, routing={"min_throughput_tps": 450, "optimize": "cheapest"})
    _served_by(served, "charlie")
    _viable(served, 1)


@pytest.mark.parametrize("rate", [0, 0.5, 1])
def test_min_success_rate_in_range_is_accepted(fleet: Fleet, rate: float) -> None:
    served = fleet.route(MINI, routing={"min_success_rate": rate, "optimize": "cheapest"})
    _served_by(served, "alpha")


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_min_success_rate_out_of_range_is_400(fleet: Fleet, rate: float) -> None:
    resp, _ = fleet.post(
        {
            "model": MINI,
            "messages": [{"role": "user", "content": "hi"}],
            "routing": {"min_success_rate": rate},
        }
    )
    assert_error(resp, 400, "invalid_request", param="routing.min_success_rate")


def test_quality_floor_lifts_cheapest_to_the_better_model(fleet: Fleet) -> None:
    plain = fleet.route("cheapest")
    _served_by(plain, "alpha")
    assert plain.model == MINI
    served = fleet.route("cheapest", routing={"quality_floor": 0.8})  # mini's chat quality 0.78
    _served_by(served, "charlie", strategy="cheapest")
    assert served.model == GPT4O
    _viable(served, 2)


def test_vision_request_goes_to_the_only_vision_offer(fleet: Fleet) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    served = fleet.route(MINI, content=content, routing={"optimize": "cheapest"})
    _served_by(served, "charlie")
    _viable(served, 1)
    parts = fleet.upstreams["charlie"].last_chat().json["messages"][0]["content"]
    assert any(p.get("type") == "image_url" for p in parts), "the image part was not forwarded"


def test_large_max_tokens_skips_the_small_context_offer(fleet: Fleet) -> None:
    served = fleet.route(f"{MINI}:floor", max_tokens=8000)  # alpha: 4096 context and output
    _served_by(served, "delta", strategy="cheapest")
    _viable(served, 4)


def test_streaming_is_routed_the_same_way(fleet: Fleet) -> None:
    body = {
        "model": MINI,
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": True,
        "routing": {"optimize": "throughput"},
    }
    with (
        fleet.gateway.http(fleet.live_key, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200, resp.read().decode()
        assert resp.headers.get("x-provider-used") == "charlie"
        events = read_sse(resp)
    chunks = sse_json_events(events)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == reply_text("charlie")
    meta = chunks[-1].get("routing_metadata") or {}
    assert meta.get("provider") == "charlie" and meta.get("routing_strategy") == "throughput"


# ------------------------------------------------------------------ errors


def test_regions_matching_nothing_is_409(fleet: Fleet) -> None:
    _policy_conflict(fleet, {"regions": ["sa-*"]}, "region")


def test_price_ceiling_below_every_offer_is_409(fleet: Fleet) -> None:
    _policy_conflict(fleet, {"max_cost_per_1m": 0.1}, "price", "max_cost_per_1m")


def test_quality_floor_above_every_model_is_409(fleet: Fleet) -> None:
    _policy_conflict(fleet, {"quality_floor": 0.99}, "quality")


def test_provider_without_a_platform_key_is_409(fleet: Fleet) -> None:
    # "openai" is in the built-in catalog but has no key in the gateway's environment.
    _policy_conflict(fleet, {"providers": ["openai"]}, "provider")


def test_allow_and_deny_list_cancelling_out_is_409(fleet: Fleet) -> None:
    _policy_conflict(fleet, {"providers": ["alpha"], "exclude_providers": ["alpha"]}, "provider")


def test_vision_on_a_model_without_vision_offers_is_409(fleet: Fleet) -> None:
    content = [
        {"type": "text", "text": "Describe it."},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    messages = [{"role": "user", "content": content}]
    _policy_conflict(fleet, {}, "capabilit", "vision", model=GPT4O, messages=messages)


def test_latency_floor_emptying_the_set_is_503(fleet: Fleet) -> None:
    resp, received = fleet.post(
        {
            "model": MINI,
            "messages": [{"role": "user", "content": "hi"}],
            "routing": {"max_ttft_ms": 1},
        }
    )
    assert_error(resp, 503, "no_providers_available")
    assert not any(received.values())


@pytest.mark.parametrize(
    ("routing", "param"),
    [
        ({"providers": ["alpha", "nonesuch"]}, "routing.providers"),
        ({"exclude_providers": ["nonesuch"]}, "routing.exclude_providers"),
        ({"only_byok": True, "only_platform": True}, "routing.only_byok"),
        ({"optimize": "fastest-ever"}, "routing.optimize"),
        ({"data_policy": "paranoid"}, "routing.data_policy"),
        ({"max_cost_per_1m": 0}, "routing.max_cost_per_1m"),
        ({"quality_floor": 2}, "routing.quality_floor"),
    ],
)
def test_invalid_routing_is_400_naming_the_field(
    fleet: Fleet, routing: dict[str, Any], param: str
) -> None:
    resp, received = fleet.post(
        {"model": MINI, "messages": [{"role": "user", "content": "hi"}], "routing": routing}
    )
    assert_error(resp, 400, "invalid_request", param=param)
    assert not any(received.values())


def test_unknown_routing_policy_header_is_400(fleet: Fleet) -> None:
    resp, _ = fleet.post(
        {"model": MINI, "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-Routing-Policy": "no-such-policy"},
    )
    assert_error(resp, 400, "invalid_request", param="X-Routing-Policy")


def test_unknown_model_is_404(fleet: Fleet) -> None:
    resp, _ = fleet.post({"model": "gpt-17-ultra", "messages": [{"role": "user", "content": "x"}]})
    assert_error(resp, 404, "model_not_found")


def test_unknown_model_with_suffix_is_404(fleet: Fleet) -> None:
    resp, _ = fleet.post(
        {"model": "gpt-17-ultra:nitro", "messages": [{"role": "user", "content": "x"}]}
    )
    assert_error(resp, 404, "model_not_found")


def test_model_and_models_together_is_400(fleet: Fleet) -> None:
    resp, _ = fleet.post(
        {"model": MINI, "models": [GPT4O], "messages": [{"role": "user", "content": "x"}]}
    )
    assert_error(resp, 400, "invalid_request", param="models")


def test_more_than_ten_models_is_400(fleet: Fleet) -> None:
    resp, _ = fleet.post({"models": [MINI] * 11, "messages": [{"role": "user", "content": "x"}]})
    assert_error(resp, 400, "invalid_request", param="models")


# ------------------------------------------------------------------ with failing upstreams
# (last in the module: failures may feed the gateway's health state)


def test_fallback_mode_tries_every_offer_of_the_first_model_first(fleet: Fleet) -> None:
    fleet.upstreams["charlie"].set_default(Status(500, message="charlie down"))
    fleet.upstreams["bravo"].set_default(Status(503, message="bravo down"))
    served = fleet.route(
        None, models=[GPT4O, MINI], routing={"optimize": "cheapest", "mode": "fallback"}
    )
    _served_by(served, "alpha")
    assert served.model == MINI
    chain = served.meta.get("fallback_chain") or []
    # charlie's 500, the request's first attempt, is retried once in place first.
    assert [
        (c.get("provider"), c.get("model"), c.get("status"), c.get("retry")) for c in chain
    ] == [
        ("charlie", GPT4O, "failed", False),
        ("charlie", GPT4O, "failed", True),
        ("bravo", GPT4O, "failed", False),
        ("alpha", MINI, "success", False),
    ], served.summary()
    assert served.upstreams_hit == ["alpha", "bravo", "charlie"]
    assert served.headers.get("x-fallback-used") == "true"
    assert served.headers.get("x-fallback-depth") == "2"


def test_pool_mode_with_the_same_failures_serves_without_fallback(fleet: Fleet) -> None:
    fleet.upstreams["charlie"].set_default(Status(500))
    fleet.upstreams["bravo"].set_default(Status(503))
    served = fleet.route(None, models=[GPT4O, MINI], routing={"optimize": "cheapest"})
    _served_by(served, "alpha")
    assert not served.meta.get("fallback_chain"), served.summary()
    assert served.upstreams_hit == ["alpha"]


def test_pinned_model_never_falls_back_to_another_model(fleet: Fleet) -> None:
    fleet.upstreams["charlie"].set_default(Status(500))
    fleet.upstreams["bravo"].set_default(Status(502))
    resp, received = fleet.post(
        {
            "model": GPT4O,
            "messages": [{"role": "user", "content": "hi"}],
            "routing": {"optimize": "cheapest"},
        }
    )
    assert_error(resp, 502, "provider_error")
    hit = [n for n in NAMES if received[n]]
    assert hit == ["bravo", "charlie"], f"upstreams hit: {hit}"
    for name in hit:
        assert received[name][0].json["model"] == f"{name}-{GPT4O}"
