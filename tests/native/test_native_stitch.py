"""Properties of stream stitching: a stream cut anywhere and continued on another attempt (any
prefill style, any chunking, either wire format) reads to the client as the one answer the
attempts produced, each character once, every chunk under the first attempt's id."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import _router_core as core
from gateway.api.stream_rescue import with_prefill

STYLES = ("assistant", "continue_final_message", "prefix", "prefix_echo")
texts = st.text(alphabet=st.sampled_from(list('ab é🙂\n\t"\\{}')), min_size=1, max_size=60)


def _pieces(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def _openai_stream(pieces: list[str], *, chunk_id: str, finish: bool) -> bytes:
    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        body = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": 5,
            "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    out = chunk({"role": "assistant", "content": ""})
    out += b"".join(chunk({"content": p}) for p in pieces)
    if finish:
        out += chunk({}, "stop")
        usage = {"prompt_tokens": 3, "completion_tokens": 4}
        out += b"data: " + json.dumps({"id": chunk_id, "choices": [], "usage": usage}).encode()
        out += b"\n\ndata: [DONE]\n\n"
    return out


def _anthropic_stream(pieces: list[str]) -> bytes:
    def event(name: str, body: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(body)}\n\n".encode()

    usage = {"input_tokens": 3, "output_tokens": 1}
    out = event("message_start", {"type": "message_start", "message": {"usage": usage}})
    out += event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    for p in pieces:
        delta = {"type": "text_delta", "text": p}
        out += event(
            "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
        )
    out += event("content_block_stop", {"type": "content_block_stop", "index": 0})
    out += event(
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage},
    )
    return out + event("message_stop", {"type": "message_stop"})


def _chunks(client: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line[len(b"data: ") :])
        for line in client.split(b"\n\n")
        if line.startswith(b"data: {")
    ]


def _text(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


def _feed_in_reads(relay: Any, data: bytes, reads: list[int]) -> bytes:
    out, start = b"", 0
    for cut in sorted({r % (len(data) + 1) for r in reads}):
        out += relay.feed(data[start:cut])
        start = cut
    return out + relay.feed(data[start:]) + relay.finish()


@settings(max_examples=300, deadline=None)
@given(
    answer=texts,
    cut=st.integers(min_value=1),
    first_cuts=st.lists(st.integers(min_value=0), max_size=6),
    second_cuts=st.lists(st.integers(min_value=0), max_size=6),
    reads=st.lists(st.integers(min_value=0), max_size=5),
    style=st.sampled_from(STYLES),
    wire=st.sampled_from(("openai", "anthropic")),
)
def test_a_continued_stream_reads_as_one_answer(  # noqa: PLR0917 (hypothesis draws)
    answer: str,
    cut: int,
    first_cuts: list[int],
    second_cuts: list[int],
    reads: list[int],
    style: str,
    wire: str,
) -> None:
    delivered = answer[: 1 + cut % len(answer)]
    # Attempt 1: the delivered part, then the connection is cut (no finish, no [DONE]).
    first = core.OpenAIStreamRelay(model="m")
    upstream = _openai_stream(_pieces(delivered, first_cuts), chunk_id="up-1", finish=False)
    sent = _feed_in_reads(first, upstream, reads)
    assert not first.done and first.finish_reason is None
    text, obstacle = core.delivered_answer(sent)
    assert (text, obstacle) == (delivered, None)

    # Attempt 2: a provider continuing from the prefill it was sent.
    payload, skip = with_prefill({"messages": [{"role": "user", "content": "q"}]}, style, text)  # type: ignore[arg-type]
    last = payload["messages"][-1]
    prefill = last["content"] if last["role"] == "assistant" else ""
    assert answer.startswith(prefill)
    produced = answer[len(prefill) :]
    if style == "prefix_echo":
        produced = prefill + produced
    pieces = _pieces(produced, second_cuts)
    if wire == "openai":
        second: Any = core.OpenAIStreamRelay(model="m")
        upstream = _openai_stream(pieces, chunk_id="up-2", finish=True)
    else:
        second = core.AnthropicStreamRelay(model="m", chunk_id="other", created=9)
        upstream = _anthropic_stream(pieces)
    stitch = core.StreamStitch(chunk_id="up-1", created=5, skip=skip, drop_reasoning=True)
    stitched = stitch.feed(_feed_in_reads(second, upstream, reads))

    client = _chunks(sent) + _chunks(stitched)
    assert _text(client) == answer  # each character once, none missing
    assert {c["id"] for c in client} == {"up-1"}
    assert {c["created"] for c in client} == {5}
    roles = [c for c in client if "role" in (c.get("choices") or [{}])[0].get("delta", {})]
    assert len(roles) == 1  # the first attempt's
    assert second.done or second.finish_reason == "stop"
    assert [c["choices"][0].get("finish_reason") for c in _chunks(stitched)][-1] == "stop"


@given(text=texts, style=st.sampled_from(STYLES))
def test_prefill_payloads_keep_the_conversation(text: str, style: str) -> None:
    messages = [{"role": "user", "content": "q"}]
    payload, skip = with_prefill({"messages": messages, "model": "x"}, style, text)  # type: ignore[arg-type]
    assert payload["messages"][: len(messages)] == messages
    assert messages == [{"role": "user", "content": "q"}]  # the caller's list is untouched
    last = payload["messages"][-1]
    if style == "assistant":
        assert last == {"role": "assistant", "content": text.rstrip()} or not text.rstrip()
        assert text == text.rstrip() + skip
    else:
        assert last["role"] == "assistant" and last["content"] == text
        assert skip == (text if style == "prefix_echo" else "")
        assert (payload.get("continue_final_message") is True) == (
            style == "continue_final_message"
        )
        assert last.get("prefix") is (True if style.startswith("prefix") else None)


def test_no_obstacle_only_for_plain_answers() -> None:
    tool = {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}]}
    for delta, obstacle in [
        (tool, "tool call"),
        ({"refusal": "no"}, "refusal"),
        ({"reasoning_content": "hmm"}, "reasoning"),
    ]:
        body = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        found = core.delivered_answer(b"data: " + json.dumps(body).encode() + b"\n\n")[1]
        assert found is not None and obstacle in found
