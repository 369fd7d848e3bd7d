"""Stream rescue on ``/v1/chat/completions`` (issue 11, principles 1, 2 and 4; the rules are in
docs/behaviour.md): a stream that breaks after content reached the client is continued on a
candidate that accepts an assistant prefill; one that breaks before is failed over whole; one
that cannot be continued ends with an error event that says why, never ``[DONE]``.

Real upstream processes (``support.upstream`` / ``support.anthropic_upstream``), a real
gateway per scenario (``support.rescue.rescue_config``: ``upstream-a`` ranked first, then
``upstream-b``, then the Anthropic-format ``anthro-c``; first token 1 s, stall 1 s). Raw SSE
through httpx where exact bytes matter, the openai SDK where a client's view does. Each
scenario asserts what the caller saw, what each upstream received and, for metering, the one
usage record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.anthropic_upstream import AnthropicContinue, AnthropicUpstream
from support.breaks import (
    MALFORMED,
    Break,
    broken_stream,
    delivered,
    headers_then_silence,
    role_chunk_then_silence,
    tool_call_cut,
    with_keepalives,
)
from support.checks import chat_body
from support.continuation import Style
from support.faults import StreamResult, deepen_backlog, post_stream, wait_usage
from support.gateway import GatewayProcess
from support.rescue import (
    MODEL,
    PRICES,
    A,
    B,
    C,
    Rig,
    assert_continuation_request,
    assert_fresh_request,
    assert_one_stream,
    assert_stream_error,
    broken_share,
    chain_of,
    chain_summary,
    rescue_config,
    rescue_cost,
    usage_pair,
    usage_record,
)
from support.upstream import Continue, CutBody, Pause, Reply, ScriptedStream, UpstreamServer

FULL = "Rescued answers read as one stream: every byte once, in order, nothing missing."
B_TEXT = "served whole by the secondary"
A_TEXT = "served whole by the primary"
A_TOKENS = (12, 9)
B_TOKENS = (20, 5)  # what upstream-b reports for whatever it streams
C_TOKENS = (31, 7)
AFTER = 3  # content pieces delivered before a break: "Rescued answers read "


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, UpstreamServer]]:
    with (
        UpstreamServer("rescue-a") as a,
        UpstreamServer("rescue-b") as b,
        AnthropicUpstream("rescue-c") as c,
    ):
        for up in (a, b, c):
            deepen_backlog(up)
        yield {A: a, B: b, C: c}


@pytest.fixture(autouse=True)
def _fresh(ups: dict[str, UpstreamServer]) -> None:
    for up in ups.values():
        up.reset()
    ups[A].set_default(Reply(text=A_TEXT, prompt_tokens=A_TOKENS[0], completion_tokens=A_TOKENS[1]))
    ups[B].set_default(Reply(text=B_TEXT, prompt_tokens=B_TOKENS[0], completion_tokens=B_TOKENS[1]))


@pytest.fixture
def rig(
    make_gateway: Callable[..., GatewayProcess],
    ups: dict[str, UpstreamServer],
    provider_key_a: str,
    provider_key_b: str,
) -> Callable[..., Rig]:
    env = {"UPSTREAM_A_KEY": provider_key_a, "UPSTREAM_B_KEY": provider_key_b}
    env["ANTHRO_C_KEY"] = provider_key_b + "-anthropic"

    def make(providers: tuple[str, ...] = (A, B), **prefill: Style | str) -> Rig:
        urls = {pid: ups[pid].base_url for pid in providers}
        by_id = {pid.replace("_", "-"): style for pid, style in prefill.items()}
        gw = make_gateway(rescue_config(urls, by_id), env, name="gw-rescue")
        return Rig(gw, gw.create_key("rescue")["key"])

    return make


def stream(rig: Rig, **extra: Any) -> StreamResult:
    with rig.http() as http:
        return post_stream(http, chat_body(model=MODEL, **extra))


def chats(up: UpstreamServer) -> list[Any]:
    return up.chat_requests()


# --- continuation: one continuous stream ----------------------------------------------------


@pytest.mark.parametrize("style", ["prefix", "continue_final_message", "prefix_echo"])
def test_cut_is_continued_in_each_openai_style(rig, ups, style: Style):
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"))
    ups[B].enqueue(Continue(FULL, style, *B_TOKENS))
    result = stream(rig(upstream_b=style))
    final = assert_one_stream(result, FULL)
    assert chain_summary(chain_of(result)) == [
        (A, "failed", "stream_cut", False),
        (B, "success", None, True),
    ]
    broken_share(final, B_TOKENS)
    (first,), (cont,) = chats(ups[A]), chats(ups[B])
    assert_continuation_request(cont, first, style, delivered(FULL, AFTER))


def test_assistant_prefill_continues_on_an_anthropic_provider(rig, ups):
    # Delivered text ends in a space; Anthropic's prefill must not, and the continuation
    # (which starts with that space) must not double it.
    text = delivered(FULL, AFTER)
    assert text.endswith(" ")
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"))
    ups[C].enqueue(AnthropicContinue(FULL, *C_TOKENS))
    result = stream(rig((A, C)))
    final = assert_one_stream(result, FULL)
    assert chain_summary(chain_of(result)) == [
        (A, "failed", "stream_cut", False),
        (C, "success", None, True),
    ]
    broken_share(final, C_TOKENS)
    (first,), (cont,) = chats(ups[A]), ups[C].message_requests()  # type: ignore[attr-defined]
    assert_continuation_request(cont, first, "assistant", text)


def test_stall_is_continued(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "stall", hang_s=6.0))
    ups[B].enqueue(Continue(FULL, "prefix", *B_TOKENS))
    result = stream(rig(upstream_b="prefix"))
    final = assert_one_stream(result, FULL)
    assert chain_summary(chain_of(result)) == [
        (A, "failed", "stream_stalled", False),
        (B, "success", None, True),
    ]
    # the stall deadline is 1 s: noticed after it, and well before the upstream gives up (6 s)
    assert 0.9 <= result.elapsed_s <= 4.5, f"stall rescued after {result.elapsed_s:.2f} s"
    broken_share(final, B_TOKENS)
    assert_continuation_request(
        chats(ups[B])[0], chats(ups[A])[0], "prefix", delivered(FULL, AFTER)
    )


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_malformed_chunk_after_content_is_continued(rig, ups, shape: str):
    # The bad event stands where the 4th piece was; the upstream then goes on to [DONE]. A
    # relay that skipped it would deliver the answer with that piece missing.
    ups[A].enqueue(broken_stream(FULL, AFTER, "malformed", malformed=shape))
    ups[B].enqueue(Continue(FULL, "prefix", *B_TOKENS))
    result = stream(rig(upstream_b="prefix"))
    final = assert_one_stream(result, FULL)
    assert chain_summary(chain_of(result)) == [
        (A, "failed", "malformed_chunk", False),
        (B, "success", None, True),
    ]
    broken_share(final, B_TOKENS)
    assert_continuation_request(
        chats(ups[B])[0], chats(ups[A])[0], "prefix", delivered(FULL, AFTER)
    )


@pytest.mark.parametrize("how", ["malformed", "error_event"])
def test_a_break_in_the_same_read_as_the_content_still_sums_usage(rig, ups, how: Break):
    # No pause between the delivered pieces and the break: the gateway may read them at once.
    # The client's text then still holds upstream-a's pieces, so its usage holds their tokens.
    broken = broken_stream(FULL, AFTER, how)
    ups[A].enqueue(ScriptedStream(tuple(s for s in broken.steps if not isinstance(s, Pause))))
    ups[B].enqueue(Continue(FULL, "prefix", *B_TOKENS))
    result = stream(rig(upstream_b="prefix"))
    final = assert_one_stream(result, FULL)
    broken_share(final, B_TOKENS)


def test_upstream_error_event_after_content_is_continued(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "error_event"))
    ups[B].enqueue(Continue(FULL, "prefix", *B_TOKENS))
    result = stream(rig(upstream_b="prefix"))
    final = assert_one_stream(result, FULL)
    assert chain_summary(chain_of(result)) == [
        (A, "failed", "upstream_error_event", False),
        (B, "success", None, True),
    ]
    broken_share(final, B_TOKENS)


def test_the_deployment_that_broke_continues_when_it_is_the_only_one(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"), Continue(FULL, "prefix", *A_TOKENS))
    result = stream(rig((A,), upstream_a="prefix"))
    final = assert_one_stream(result, FULL)
    assert chain_summary(chain_of(result)) == [
        (A, "failed", "stream_cut", False),
        (A, "success", None, True),
    ]
    broken_share(final, A_TOKENS)
    first, cont = chats(ups[A])
    assert_continuation_request(cont, first, "prefix", delivered(FULL, AFTER))


def test_openai_sdk_sees_one_continuous_stream(rig, ups):
    ups[A].enqueue(broken_stream(FULL, 5, "cut"))
    ups[B].enqueue(Continue(FULL, "prefix_echo", *B_TOKENS))
    r = rig(upstream_b="prefix_echo")
    with r.gw.openai(r.key, timeout=20.0) as client:
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FULL
    assert len({c.id for c in chunks}) == 1
    finals = [c for c in chunks if not c.choices]
    assert len(finals) == 1 and finals[0].usage is not None
    assert finals[0].usage.completion_tokens > B_TOKENS[1]


# --- before any content: fail over whole ----------------------------------------------------


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_malformed_chunk_before_content_fails_over(rig, ups, shape: str):
    ups[A].enqueue(broken_stream(A_TEXT, 0, "malformed", malformed=shape))
    result = stream(rig())
    assert_one_stream(result, B_TEXT)
    assert chain_summary(chain_of(result)) == [
        (A, "failed", "malformed_chunk", False),
        (B, "success", None, False),
    ]
    assert_fresh_request(chats(ups[B])[0])


@pytest.mark.parametrize(
    "silence", [headers_then_silence, role_chunk_then_silence], ids=["headers", "role-chunk"]
)
def test_silence_after_headers_fails_over_at_the_first_token_deadline(rig, ups, silence):
    ups[A].enqueue(silence(hang_s=6.0))
    result = stream(rig())
    assert_one_stream(result, B_TEXT)
    chain = chain_summary(chain_of(result))
    assert chain == [(A, "failed", "timeout", False), (B, "success", None, False)]
    assert 0.9 <= result.elapsed_s <= 4.0, f"failed over after {result.elapsed_s:.2f} s"
    assert_fresh_request(chats(ups[B])[0])


def test_keepalives_and_comments_are_not_malformed(rig, ups):
    ups[A].enqueue(with_keepalives(FULL, A_TOKENS))
    result = stream(rig())
    final = assert_one_stream(result, FULL)
    assert "fallback_chain" not in final["routing_metadata"], final
    assert usage_pair(final) == A_TOKENS
    assert chats(ups[B]) == []


# --- no rescue possible: an error event that says why ---------------------------------------


def test_no_prefill_candidate_ends_with_an_error_event(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"))
    result = stream(rig())  # both offers OpenAI format, prefill undeclared: none
    assert_stream_error(result, "no candidate could continue", "prefill")
    assert result.text == delivered(FULL, AFTER)
    assert chats(ups[B]) == [], "a fresh answer was started after content reached the client"
    assert len(chats(ups[A])) == 1


def test_rejected_prefill_moves_to_the_next_prefill_candidate(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"), Continue(FULL, "prefix", *A_TOKENS))
    ups[B].enqueue(Continue(FULL, "prefix", reject=True))
    result = stream(rig(upstream_a="prefix", upstream_b="prefix"))
    assert_one_stream(result, FULL)
    assert chain_summary(chain_of(result)) == [
        (A, "failed", "stream_cut", False),
        (B, "failed", "prefill_rejected", True),
        (A, "success", None, True),
    ]
    assert len(chats(ups[A])) == 2 and len(chats(ups[B])) == 1


def test_every_prefill_rejected_ends_with_an_error_event(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"))
    ups[B].enqueue(Continue(FULL, "prefix", reject=True))
    result = stream(rig(upstream_b="prefix"))
    assert_stream_error(result, "prefill", "no candidate could continue")
    assert result.text == delivered(FULL, AFTER)
    assert len(chats(ups[B])) == 1


def test_a_break_in_a_tool_call_is_not_continued(rig, ups):
    ups[A].enqueue(tool_call_cut("Checking. ", {"city": "Paris", "unit": "celsius"}))
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    result = stream(rig(upstream_b="prefix"), tools=[tool])
    assert_stream_error(result, "tool", "no candidate could continue")
    assert chats(ups[B]) == [], "a tool call was continued"


def test_a_spent_attempt_budget_ends_with_an_error_event(rig, ups):
    # Without the budget, upstream-a would continue after upstream-b's refusal (as in
    # test_rejected_prefill_moves_to_the_next_prefill_candidate); one continuation is all
    # max_fallback_attempts: 1 allows, and upstream-b's refusal spent it.
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"), Continue(FULL, "prefix", *A_TOKENS))
    ups[B].enqueue(Continue(FULL, "prefix", reject=True))
    r = rig(upstream_a="prefix", upstream_b="prefix")
    result = stream(r, routing={"max_fallback_attempts": 1})
    assert_stream_error(result, "no candidate could continue", "attempt", "prefill")
    assert result.text == delivered(FULL, AFTER)
    assert (len(chats(ups[A])), len(chats(ups[B]))) == (1, 1)


# --- metering -------------------------------------------------------------------------------


def test_a_rescued_request_is_one_usage_record_costed_per_attempt(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"))
    ups[B].enqueue(Continue(FULL, "prefix", *B_TOKENS))
    r = rig(upstream_b="prefix")
    result = stream(r)
    final = assert_one_stream(result, FULL)
    a_share = broken_share(final, B_TOKENS)
    expected = rescue_cost({A: a_share, B: B_TOKENS})
    totals = wait_usage(r.gw, r.key, 1, timeout=5.0)
    assert totals["spend_usd"] == pytest.approx(expected), (totals, a_share)
    assert (totals["tokens"]["input"], totals["tokens"]["output"]) == usage_pair(final)
    record = usage_record(r.gw, result.headers["x-request-id"])
    assert record["cost_usd"] == pytest.approx(expected), record
    assert record["cost_usd"] > rescue_cost({B: B_TOKENS}) > 0
    chain = record["fallback_chain"]
    assert [(c["provider"], c["status"], c.get("continuation")) for c in chain] == [
        (A, "failed", False),
        (B, "success", True),
    ], chain
    assert PRICES[A] != PRICES[B]


# --- non-streaming: a body cut mid-way is retried whole -------------------------------------


def test_non_streaming_body_cut_once_is_retried_whole(rig, ups):
    ups[A].enqueue(CutBody(Reply(text=A_TEXT)))
    with rig().http() as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model=MODEL))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] in {A_TEXT, B_TEXT}
    assert len(chats(ups[A])) + len(chats(ups[B])) == 2


def test_non_streaming_body_cut_every_time_moves_to_the_next_candidate(rig, ups):
    ups[A].set_default(CutBody(Reply(text=A_TEXT)))
    with rig().http() as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model=MODEL))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == B_TEXT
    assert 1 <= len(chats(ups[A])) <= 2 and len(chats(ups[B])) == 1
