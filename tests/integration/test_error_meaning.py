"""Upstream 400s read by their meaning, not their status.

Most 400s are the caller's mistake and stop at once. Two are not, and each provider words
them its own way, so each wording is sent by a real upstream of that format:

- **Context length** (OpenAI ``code: context_length_exceeded`` or "maximum context length";
  Anthropic "prompt is too long: …"; Gemini "The input token count (…) exceeds the maximum
  number of tokens allowed (…)"): this deployment cannot take the prompt, a larger window
  may. The gateway moves on to a candidate whose offer has a larger ``context_window``,
  skipping every other deployment of the same model and every window no larger, and never
  retries the one that said so. Chain reason ``context_length``; with nothing larger left,
  ``400 context_length_exceeded``.
- **Content filter** (``code: content_filter`` / ``content_policy_violation``, or Azure's
  "content management policy" message): the provider's refusal *is* the answer — a 200 with
  ``finish_reason: content_filter`` and the reason as ``refusal`` (``stop_reason: refusal``
  on ``/v1/messages``), one usage record whose chain says ``content_filter``, and no other
  candidate shopped for a laxer policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.anthropic_upstream import AnthropicUpstream
from support.checks import assert_error, chat_body
from support.failover_rig import (
    GatewayFactory,
    Rig,
    anthropic_400,
    assert_left_behind,
    gemini_400,
    links,
    make_rig,
    openai_400,
    provider,
    provider_env,
    reasons,
    reply_a,
    reply_b,
    usage_record,
)
from support.faults import MODEL, NO_BREAKER, PRIMARY, post_stream, wait_usage
from support.gateway import GatewayProcess, gateway_config, offer
from support.gemini_upstream import GeminiUpstream
from support.upstream import Reply, Status, UpstreamServer

# --- context length: a small deployment, then candidates that may or may not take the prompt ------

SMALL, TWIN, EQUAL, SMALLER = "ctx-small", "ctx-twin", "ctx-equal", "ctx-smaller"
LARGE = "ctx-large"
OTHERS = (TWIN, EQUAL, SMALLER, LARGE)  # OpenAI-format candidates after the small one
FIRST_MODEL, OTHER_MODEL, BIG_MODEL = "gpt-4o", "gpt-4o-mini", "gpt-4.1"
ASK_IN_ORDER = {"models": [FIRST_MODEL, OTHER_MODEL, BIG_MODEL], "routing": {"mode": "fallback"}}

OPENAI_TOO_LONG = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted in "
    "130512 tokens. Please reduce the length of the messages."
)
ANTHROPIC_TOO_LONG = "prompt is too long: 210000 tokens > 200000 maximum"
GEMINI_TOO_LONG = (
    "The input token count (300000) exceeds the maximum number of tokens allowed (1048576)."
)
# case → (small deployment's wire format, its 400, its context window)
TOO_LONG: dict[str, tuple[str, Status, int]] = {
    "openai-code": (
        "openai",
        openai_400("context_length_exceeded", "Request too large for small-1."),
        128_000,
    ),
    "openai-message": ("openai", openai_400(None, OPENAI_TOO_LONG), 128_000),
    "anthropic": ("anthropic", anthropic_400(ANTHROPIC_TOO_LONG), 200_000),
    "gemini": ("gemini", gemini_400(GEMINI_TOO_LONG), 1_048_576),
}


@pytest.fixture(scope="module")
def ctx_ups() -> Iterator[dict[str, UpstreamServer]]:
    """The small deployment's upstream of each format, and one per other candidate."""
    ups: dict[str, UpstreamServer] = {
        "openai": UpstreamServer("ctx-openai"),
        "anthropic": AnthropicUpstream("ctx-anthropic"),
        "gemini": GeminiUpstream("ctx-gemini"),
        **{name: UpstreamServer(name) for name in OTHERS},
    }
    with contextlib.ExitStack() as stack:
        for up in ups.values():
            stack.enter_context(up)
        yield ups


@pytest.fixture(autouse=True)
def _fresh_ctx(ctx_ups: dict[str, UpstreamServer]) -> None:
    for name, up in ctx_ups.items():
        up.reset()
        if name in OTHERS:
            up.set_default(Reply(text=f"served by {name}"))


def ctx_gateway(
    make_gateway: GatewayFactory,
    ups: dict[str, UpstreamServer],
    case: str,
    others: tuple[str, ...],
) -> GatewayProcess:
    """The small deployment (``FIRST_MODEL``, cheapest) of ``case``'s format, and ``others``:
    the twin (``FIRST_MODEL`` again, 4× the window), equal and smaller (``OTHER_MODEL``, the
    same and half the window) and large (``BIG_MODEL``, twice the window)."""
    fmt, _, window = TOO_LONG[case]
    windows = {TWIN: 4 * window, EQUAL: window, SMALLER: window // 2, LARGE: 2 * window}
    models = {TWIN: FIRST_MODEL, EQUAL: OTHER_MODEL, SMALLER: OTHER_MODEL, LARGE: BIG_MODEL}
    providers = [provider(SMALL, ups[fmt].base_url, fmt=fmt)]
    offers = [
        offer(FIRST_MODEL, SMALL, "small-1", price_in=0.1, price_out=0.2, context_window=window)
    ]
    for name in others:
        providers.append(provider(name, ups[name].base_url))
        offers.append(
            offer(
                models[name],
                name,
                f"{name}-1",
                price_in=5.0,
                price_out=20.0,
                context_window=windows[name],
            )
        )
    config = gateway_config(providers, offers, health=NO_BREAKER)
    return make_gateway(config, provider_env(config), name="gw-ctx")


def calls(up: UpstreamServer) -> int:
    return sum(1 for r in up.requests if r.method == "POST")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", list(TOO_LONG))
def test_context_length_moves_on_to_a_larger_window_only(
    make_gateway: GatewayFactory, ctx_ups: dict[str, UpstreamServer], case: str, stream: bool
):
    gw = ctx_gateway(make_gateway, ctx_ups, case, (EQUAL, SMALLER, LARGE))
    small = ctx_ups[TOO_LONG[case][0]]
    small.set_default(TOO_LONG[case][1])
    key = gw.create_key("ctx")["key"]
    with gw.http(key) as http:
        if stream:
            result = post_stream(http, chat_body(**ASK_IN_ORDER))
            assert result.status == 200 and result.done and not result.errors, result.raw[-600:]
            headers, text = result.headers, result.text
            chain = result.final["routing_metadata"]["fallback_chain"]
        else:
            resp = http.post("/v1/chat/completions", json=chat_body(**ASK_IN_ORDER))
            assert resp.status_code == 200, resp.text
            headers, body = resp.headers, resp.json()
            text = body["choices"][0]["message"]["content"]
            chain = body["routing_metadata"]["fallback_chain"]
    tried = {name: calls(ctx_ups[name]) for name in (EQUAL, SMALLER, LARGE)}
    assert calls(small) == 1, "the deployment that said the prompt is too long was retried"
    assert tried == {EQUAL: 0, SMALLER: 0, LARGE: 1}, f"only a larger window may be tried: {tried}"
    assert text == f"served by {LARGE}"
    assert headers["x-provider-used"] == LARGE
    assert links(chain) == [(SMALL, "failed", False), (LARGE, "success", False)]
    assert reasons(chain)[0] == "context_length", chain
    assert_left_behind(headers, [SMALL])
    body_usage = wait_usage(gw, key, 1, timeout=5.0)
    assert {p: b["requests"] for p, b in body_usage["by_provider"].items()} == {LARGE: 1}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_context_length_skips_the_same_model_whatever_its_window(
    make_gateway: GatewayFactory, ctx_ups: dict[str, UpstreamServer], stream: bool
):
    """The twin serves the same model with 4× the window, ranked right behind the small one:
    skipped all the same ("every other deployment of the same model"); large serves."""
    gw = ctx_gateway(make_gateway, ctx_ups, "openai-code", (TWIN, LARGE))
    ctx_ups["openai"].set_default(TOO_LONG["openai-code"][1])
    with gw.http(gw.create_key("ctx")["key"]) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(**ASK_IN_ORDER, stream=stream))
    assert resp.status_code == 200, resp.text
    tried = {name: calls(ctx_ups[name]) for name in (TWIN, LARGE)}
    assert tried == {TWIN: 0, LARGE: 1}, f"another deployment of {FIRST_MODEL} was tried: {tried}"
    assert calls(ctx_ups["openai"]) == 1
    assert resp.headers["x-provider-used"] == LARGE


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_context_length_without_a_larger_candidate_is_a_400(
    make_gateway: GatewayFactory, ctx_ups: dict[str, UpstreamServer], stream: bool
):
    gw = ctx_gateway(make_gateway, ctx_ups, "openai-code", (EQUAL, SMALLER))
    ctx_ups["openai"].set_default(TOO_LONG["openai-code"][1])
    with gw.http(gw.create_key("ctx")["key"]) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(**ASK_IN_ORDER, stream=stream))
    err = assert_error(resp, 400, "context_length_exceeded")
    assert "Request too large for small-1." in err["message"], err
    assert calls(ctx_ups["openai"]) == 1, "the deployment that said so was retried"
    tried = {name: calls(ctx_ups[name]) for name in (EQUAL, SMALLER)}
    assert tried == {EQUAL: 0, SMALLER: 0}, f"a window no larger was tried: {tried}"


# --- content filter and other 400s on the pair (primary, secondary) ------------------------------

POLICY_REASON = "Your request was rejected as a result of our safety system."
AZURE_REASON = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry."
)
REFUSALS: dict[str, tuple[Status, str]] = {  # case → (the upstream's 400, its reason)
    "content_filter": (openai_400("content_filter", POLICY_REASON), POLICY_REASON),
    "content_policy_violation": (
        openai_400("content_policy_violation", POLICY_REASON),
        POLICY_REASON,
    ),
    "azure-message": (openai_400(None, AZURE_REASON), AZURE_REASON),  # no code: the words only
}
RigFactory = Callable[[], Rig]


@pytest.fixture
def pair_rig(
    make_gateway: GatewayFactory,
    upstream_a: UpstreamServer,
    upstream_b: UpstreamServer,
    provider_key_a: str,
    provider_key_b: str,
) -> Rig:
    upstream_a.set_default(reply_a())
    upstream_b.set_default(reply_b())
    env = {"UPSTREAM_A_KEY": provider_key_a, "UPSTREAM_B_KEY": provider_key_b}
    return make_rig(make_gateway, upstream_a, upstream_b, env, health=NO_BREAKER)


def assert_refusal_recorded(rig: Rig, request_id: str) -> None:
    wait_usage(rig.gw, rig.key, 1, timeout=5.0)
    record = usage_record(rig.gw, request_id)
    chain = record["fallback_chain"]
    assert [(link["provider"], link["reason"]) for link in chain] == [
        (PRIMARY, "content_filter")
    ], record
    assert rig.counts() == (1, 0), "a refusal was retried or shopped to another candidate"


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_content_filter_400_is_the_answer(pair_rig: Rig, case: str):
    refusal, reason = REFUSALS[case]
    pair_rig.primary.set_default(refusal)
    with pair_rig.sdk() as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.http_response.status_code == 200
    completion = raw.parse()
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content is None
    assert choice.message.refusal is not None and reason in choice.message.refusal
    assert raw.headers["x-provider-used"] == PRIMARY
    assert_refusal_recorded(pair_rig, raw.headers["x-request-id"])


def test_a_content_filter_400_streams_as_a_filtered_answer(pair_rig: Rig):
    pair_rig.primary.set_default(REFUSALS["content_filter"][0])
    result = pair_rig.stream()
    assert result.status == 200 and result.errors == [], result.raw[-800:]
    assert result.events[-1] == (None, "[DONE]"), result.raw[-300:]
    with_choices = [c for c in result.chunks if c.get("choices")]
    assert with_choices[-1]["choices"][0]["finish_reason"] == "content_filter", result.raw
    assert result.chunks[-1] == result.final, "the usage chunk is not the last one"
    assert result.text == "", "a refusal streamed as content"
    assert_refusal_recorded(pair_rig, result.headers["x-request-id"])
    # …and the openai SDK reads it as a finished, filtered answer.
    with pair_rig.sdk() as client:
        chunks = list(
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "content_filter", finishes
    assert pair_rig.counts() == (2, 0)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_content_filter_400_on_messages_is_a_refusal(pair_rig: Rig, stream: bool):
    pair_rig.primary.set_default(REFUSALS["content_policy_violation"][0])
    question: Any = [{"role": "user", "content": "hi"}]
    with pair_rig.anthropic() as client:
        if stream:
            with client.messages.stream(model=MODEL, max_tokens=100, messages=question) as s:
                message = s.get_final_message()
        else:
            message = client.messages.create(model=MODEL, max_tokens=100, messages=question)
    assert message.stop_reason == "refusal"
    text = "".join(block.text for block in message.content if block.type == "text")
    assert POLICY_REASON in text, message
    assert pair_rig.counts() == (1, 0)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_any_other_400_stops_at_once(pair_rig: Rig, stream: bool):
    message = "Invalid value for 'temperature': expected a number between 0 and 2."
    pair_rig.primary.set_default(openai_400("invalid_value", message))
    resp, _ = pair_rig.chat(stream=stream)
    err = assert_error(resp, 400, "invalid_request")
    assert message in err["message"]
    assert resp.headers.get("x-error-provider") == PRIMARY
    assert pair_rig.counts() == (1, 0), "a plain 400 was retried or failed over"
