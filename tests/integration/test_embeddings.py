"""POST /v1/embeddings through the official ``openai`` SDK: routed among embedding offers on
real loopback upstreams (order, dimensions, usage, cost, fallback), and served by the
built-in mock for test keys."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from support.checks import assert_error
from support.embeddings_upstream import EmbeddingsUpstream, expected_vector
from support.gateway import GatewayProcess, gateway_config, new_secret, offer, openai_provider

SMALL = "text-embedding-3-small"
EMB_A_MODEL = "emb-small-a"
EMB_B_MODEL = "emb-small-b"
PRICE_A, PRICE_B = 0.02, 0.05


@pytest.fixture(scope="module")
def emb_a() -> Iterator[EmbeddingsUpstream]:
    with EmbeddingsUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def emb_b() -> Iterator[EmbeddingsUpstream]:
    with EmbeddingsUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def emb_key() -> str:
    return new_secret("sk-emb-")


@pytest.fixture(scope="module")
def emb_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    emb_a: EmbeddingsUpstream,
    emb_b: EmbeddingsUpstream,
    emb_key: str,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    def embedding_offer(provider: str, upstream_model: str, price: float) -> dict[str, object]:
        return offer(
            SMALL,
            provider,
            upstream_model,
            price_in=price,
            price_out=0.0,
            context_window=8191,
            max_output=1,
            capabilities=["embeddings"],
        )

    config = gateway_config(
        [
            openai_provider("emb-a", emb_a.base_url, "EMB_A_KEY"),
            openai_provider("emb-b", emb_b.base_url, "EMB_B_KEY"),
        ],
        [
            embedding_offer("emb-a", EMB_A_MODEL, PRICE_A),
            embedding_offer("emb-b", EMB_B_MODEL, PRICE_B),
            offer("gpt-4o-mini", "emb-a", "chat-mini", price_in=0.001, price_out=0.001),
        ],
    )
    gw = GatewayProcess(
        tmp_path_factory.mktemp("gw-emb"),
        config=config,
        env={"EMB_A_KEY": emb_key, "EMB_B_KEY": emb_key},
        admin_key=admin_key,
        name="gw-emb",
    )
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
    assert "Traceback" not in gw.log_text(), gw.log_tail(80)


CHEAPEST = {"routing": {"optimize": "cheapest"}}


def test_sdk_embeddings_in_input_order_with_usage_and_cost(emb_gateway, emb_a, emb_key, admin_key):
    inputs = ["first input", "the second one", "third", "and a fourth input here"]
    with emb_gateway.openai(admin_key) as client:
        raw = client.embeddings.with_raw_response.create(
            model=SMALL, input=inputs, extra_body=CHEAPEST
        )
        resp = raw.parse()
    assert [d.index for d in resp.data] == [0, 1, 2, 3]
    for item, text in zip(resp.data, inputs, strict=True):
        assert item.embedding == pytest.approx(expected_vector(EMB_A_MODEL, text), abs=1e-6)
    assert resp.model == SMALL
    tokens = sum(len(t.split()) for t in inputs)
    assert resp.usage.prompt_tokens == tokens
    body = raw.http_response.json()
    meta = body["routing_metadata"]
    assert meta["provider"] == "emb-a" and meta["provider_model_id"] == EMB_A_MODEL
    assert meta["cost"]["input_tokens"] == tokens
    assert meta["cost"]["output_tokens"] == 0
    assert meta["cost"]["provider_cost_usd"] == pytest.approx(tokens * PRICE_A / 1e6)
    assert raw.http_response.headers["x-provider-used"] == "emb-a"
    assert float(raw.http_response.headers["x-cost"]) == pytest.approx(tokens * PRICE_A / 1e6)
    sent = emb_a.requests[-1]
    assert sent["path"] == "/v1/embeddings"
    assert sent["json"]["model"] == EMB_A_MODEL
    assert sent["json"]["input"] == inputs
    assert "routing" not in sent["json"]
    assert sent["headers"].get("authorization") == f"Bearer {emb_key}"


def test_dimensions_float_format_and_token_arrays(emb_gateway, emb_a, admin_key):
    token_inputs = [[1, 2, 3], [40, 50]]
    with emb_gateway.openai(admin_key) as client:
        resp = client.embeddings.create(
            model=SMALL,
            input=token_inputs,
            dimensions=4,
            encoding_format="float",
            extra_body=CHEAPEST,
        )
    assert [len(d.embedding) for d in resp.data] == [4, 4]
    assert resp.data[1].embedding == pytest.approx(expected_vector(EMB_A_MODEL, [40, 50], 4))
    assert resp.usage.prompt_tokens == 5
    assert emb_a.requests[-1]["json"]["dimensions"] == 4


def test_auto_routes_to_embedding_models_only(emb_gateway, admin_key):
    with emb_gateway.http(admin_key) as http:
        resp = http.post("/v1/embeddings", json={"input": "hello world"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == SMALL
    assert body["routing_metadata"]["model_canonical"] == SMALL
    assert body["object"] == "list" and len(body["data"]) == 1


def test_a_one_off_503_is_retried_in_place(emb_gateway, emb_a, emb_b, admin_key):
    emb_a.fail_next(503)
    with emb_gateway.http(admin_key) as http:
        resp = http.post("/v1/embeddings", json={"model": SMALL, "input": "x y", **CHEAPEST})
    assert resp.status_code == 200, resp.text
    meta = resp.json()["routing_metadata"]
    assert meta["provider"] == "emb-a"
    chain = [(a["provider"], a["status"], a["retry"]) for a in meta["fallback_chain"]]
    assert chain == [("emb-a", "failed", False), ("emb-a", "success", True)]
    assert resp.headers["x-fallback-used"] == "false"


def test_fallback_to_next_embedding_offer(emb_gateway, emb_a, emb_b, admin_key):
    emb_a.fail_next(503, count=2)  # the first attempt and its quick retry in place
    with emb_gateway.http(admin_key) as http:
        resp = http.post("/v1/embeddings", json={"model": SMALL, "input": "x y", **CHEAPEST})
    assert resp.status_code == 200, resp.text
    meta = resp.json()["routing_metadata"]
    assert meta["provider"] == "emb-b"
    assert [a["provider"] for a in meta["fallback_chain"]] == ["emb-a", "emb-a", "emb-b"]
    assert [a["retry"] for a in meta["fallback_chain"]] == [False, True, False]
    assert resp.headers["x-fallback-used"] == "true"
    assert resp.headers["x-fallback-depth"] == "1"
    assert resp.json()["data"][0]["embedding"] == pytest.approx(expected_vector(EMB_B_MODEL, "x y"))


def test_errors(emb_gateway, admin_key):
    with emb_gateway.http(admin_key) as http:
        assert_error(
            http.post("/v1/embeddings", json={"model": SMALL}),
            400,
            "missing_required_parameter",
            param="input",
        )
        assert_error(
            http.post("/v1/embeddings", json={"model": SMALL, "input": []}),
            400,
            "invalid_request",
            param="input",
        )
        assert_error(
            http.post("/v1/embeddings", json={"model": SMALL, "input": ["a", 3]}),
            400,
            "invalid_request",
            param="input.1",
        )
        assert_error(
            http.post("/v1/embeddings", json={"model": "gpt-4o-mini", "input": "a"}),
            409,
            "policy_conflict",
        )
    with emb_gateway.http("rg_live_nope") as http:
        assert_error(http.post("/v1/embeddings", json={"input": "a"}), 401, "invalid_api_key")
    with emb_gateway.openai("rg_live_nope") as client, pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model=SMALL, input="a")


def test_test_key_served_by_mock(emb_gateway, emb_a, emb_b):
    key = emb_gateway.create_key("emb-test", mode="test")["key"]
    before = len(emb_a.requests) + len(emb_b.requests)
    inputs = ["alpha", "beta", "alpha"]
    with emb_gateway.openai(key) as client:
        resp = client.embeddings.create(model=SMALL, input=inputs)
        again = client.embeddings.create(model=SMALL, input="beta", dimensions=64)
    assert [len(d.embedding) for d in resp.data] == [1536] * 3
    assert resp.data[0].embedding == resp.data[2].embedding != resp.data[1].embedding
    assert len(again.data[0].embedding) == 64
    assert resp.usage.prompt_tokens > 0
    assert len(emb_a.requests) + len(emb_b.requests) == before, "a test key reached upstream"
