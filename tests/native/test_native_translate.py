"""Native stream translation: Anthropic Messages events <-> OpenAI chat.completion chunks.

Round trips keep text, thinking, tool calls, stop reason and usage; reads may split either
stream anywhere; malformed events are counted, never fatal.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._router_core import AnthropicStreamRelay, OpenAIToAnthropicRelay, SseParser

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=6,
)


@dataclass
class Content:
    """What a stream says, in either format."""

    text: str = ""
    thinking: str = ""
    tools: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, arguments)
    reason: str | None = None

    def normalized(self) -> tuple[object, ...]:
        tools = [(i, n, json.loads(a) if a else {}) for i, n, a in self.tools]
        return self.text, self.thinking, tools, self.reason


def split_at(s: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(c % (len(s) + 1) for c in cuts), len(s)]
    return [s[a:b] for a, b in itertools.pairwise(bounds)]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --- Anthropic streams -------------------------------------------------------------------


@dataclass
class AnthropicStream:
    wire: bytes
    content: Content
    input_tokens: int
    cache_read: int
    cache_creation: int
    output_tokens: int


def event(name: str, body: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **body})}\n\n".encode()


@st.composite
def anthropic_streams(draw: st.DrawFn) -> AnthropicStream:
    tokens = st.integers(0, 100_000)
    usage = {
        "input_tokens": draw(tokens),
        "cache_read_input_tokens": draw(tokens),
        "cache_creation_input_tokens": draw(tokens),
        "output_tokens": 1,
    }
    parts = [
        event(
            "message_start",
            {
                "message": {
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-up",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage,
                }
            },
        )
    ]
    content = Content()
    for index in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            parts.append(event("ping", {}))
        kind = draw(st.sampled_from(["text", "thinking", "tool_use"]))
        if kind == "tool_use":
            tool_id = draw(st.from_regex(r"toolu_[A-Za-z0-9]{1,10}", fullmatch=True))
            name = draw(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True))
            arguments = json.dumps(draw(st.dictionaries(text, json_values, max_size=4)))
            fragments = split_at(arguments, draw(st.lists(st.integers(0), max_size=6)))
            block: dict[str, Any] = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in fragments]
            content.tools.append((tool_id, name, arguments))
        else:
            pieces = draw(st.lists(text, min_size=1, max_size=4))
            key, delta_type = (
                ("text", "text_delta") if kind == "text" else ("thinking", "thinking_delta")
            )
            block = {"type": kind, key: ""}
            deltas = [{"type": delta_type, key: p} for p in pieces]
            if kind == "thinking":
                deltas.append({"type": "signature_delta", "signature": "EqQBCgIYAhIM"})
            if kind == "text":
                content.text += "".join(pieces)
            else:
                content.thinking += "".join(pieces)
        parts.append(event("content_block_start", {"index": index, "content_block": block}))
        parts.extend(event("content_block_delta", {"index": index, "delta": d}) for d in deltas)
        parts.append(event("content_block_stop", {"index": index}))
    stop_reason = draw(st.sampled_from(sorted(STOP_TO_FINISH)))
    content.reason = stop_reason
    output_tokens = draw(tokens)
    parts.append(
        event(
            "message_delta",
            {
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    parts.append(event("message_stop", {}))
    return AnthropicStream(
        b"".join(parts),
        content,
        usage["input_tokens"],
        usage["cache_read_input_tokens"],
        usage["cache_creation_input_tokens"],
        output_tokens,
    )


def to_openai(reads: list[bytes]) -> tuple[bytes, AnthropicStreamRelay]:
    relay = AnthropicStreamRelay(model="served", chunk_id="chatcmpl-7", created=1700000000)
    return b"".join(relay.feed(r) for r in reads) + relay.finish(), relay


def openai_state(r: AnthropicStreamRelay) -> tuple[object, ...]:
    return (
        r.done,
        r.error,
        r.chunk_id,
        r.created,
        r.usage,
        r.chunks,
        r.content_chars,
        r.finish_reason,
        r.malformed,
    )


def openai_chunks(data: bytes) -> list[dict[str, Any]]:
    chunks = []
    for e in data.split(b"\n\n"):
        if e and e != b"data: [DONE]":
            assert e.startswith(b"data: ")
            chunks.append(json.loads(e[len(b"data: ") :]))
    return chunks


def openai_content(data: bytes) -> Content:
    content = Content()
    for chunk in openai_chunks(data):
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content.text += delta.get("content") or ""
            content.thinking += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                if "id" in call:
                    assert call["index"] == len(content.tools)
                    content.tools.append((call["id"], call["function"]["name"], ""))
                tool_id, name, arguments = content.tools[call["index"]]
                content.tools[call["index"]] = (
                    tool_id,
                    name,
                    arguments + call["function"].get("arguments", ""),
                )
            content.reason = choice.get("finish_reason") or content.reason
    return content


def gateway_tail(usage: tuple[int, int, int, int] | None) -> bytes:
    """The final usage chunk and [DONE] the gateway appends to a relayed stream."""
    prompt, completion, cached, reasoning = usage or (0, 0, 0, 0)
    body = {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "served",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
        "routing_metadata": {"provider": "anthropic"},
    }
    return b"data: " + json.dumps(body).encode() + b"\n\ndata: [DONE]\n\n"


# --- Anthropic output --------------------------------------------------------------------


def to_anthropic(
    reads: list[bytes], input_tokens: int = 42
) -> tuple[bytes, OpenAIToAnthropicRelay]:
    relay = OpenAIToAnthropicRelay(model="served", message_id="msg_gw", input_tokens=input_tokens)
    return b"".join(relay.feed(r) for r in reads) + relay.finish(), relay


def anthropic_events(data: bytes) -> list[dict[str, Any]]:
    parser = SseParser()
    events = [*parser.feed(data), *parser.finish()]
    bodies = []
    for e in events:
        body = json.loads(e.data)
        assert body["type"] == e.event
        bodies.append(body)
    return bodies


def anthropic_content(data: bytes) -> tuple[Content, dict[str, Any], dict[str, Any]]:
    """Content, message_start usage and message_delta usage, checking the event grammar."""
    events = anthropic_events(data)
    assert events[0]["type"] == "message_start"
    assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
    content = Content()
    open_index: int | None = None
    next_index = 0
    for e in events[1:-2]:
        if e["type"] == "content_block_start":
            assert open_index is None and e["index"] == next_index
            open_index, next_index = e["index"], next_index + 1
            block = e["content_block"]
            if block["type"] == "tool_use":
                content.tools.append((block["id"], block["name"], ""))
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_index
            delta = e["delta"]
            if delta["type"] == "text_delta":
                content.text += delta["text"]
            elif delta["type"] == "thinking_delta":
                content.thinking += delta["thinking"]
            elif delta["type"] == "input_json_delta":
                tool_id, name, arguments = content.tools[-1]
                content.tools[-1] = (tool_id, name, arguments + delta["partial_json"])
        elif e["type"] == "content_block_stop":
            assert e["index"] == open_index
            open_index = None
    assert open_index is None
    content.reason = events[-2]["delta"]["stop_reason"]
    return content, events[0]["message"]["usage"], events[-2]["usage"]


# --- Properties --------------------------------------------------------------------------

cut_lists = st.lists(st.integers(min_value=0), max_size=12)


@settings(max_examples=100, deadline=None)
@given(anthropic_streams(), cut_lists)
def test_anthropic_to_openai_is_split_independent(stream: AnthropicStream, cuts: list[int]) -> None:
    whole_out, whole = to_openai([stream.wire])
    split_out, parts = to_openai(split(stream.wire, cuts))
    assert split_out == whole_out
    assert openai_state(parts) == openai_state(whole)

    chunks = openai_chunks(whole_out)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    for chunk in chunks:
        assert (chunk["id"], chunk["object"], chunk["created"], chunk["model"]) == (
            "chatcmpl-7",
            "chat.completion.chunk",
            1700000000,
            "served",
        )
    expected = Content(stream.content.text, stream.content.thinking, stream.content.tools)
    expected.reason = STOP_TO_FINISH[stream.content.reason or ""]
    assert openai_content(whole_out) == expected
    assert whole.done and whole.error is None and whole.malformed == 0
    assert whole.finish_reason == expected.reason
    assert whole.chunks == len(chunks)
    assert whole.usage == (
        stream.input_tokens + stream.cache_read + stream.cache_creation,
        stream.output_tokens,
        stream.cache_read,
        0,
    )


@settings(max_examples=100, deadline=None)
@given(anthropic_streams(), cut_lists)
def test_anthropic_openai_anthropic_round_trip(stream: AnthropicStream, cuts: list[int]) -> None:
    openai_out, relay = to_openai([stream.wire])
    gateway_out = openai_out + gateway_tail(relay.usage)
    back, back_relay = to_anthropic(split(gateway_out, cuts), input_tokens=stream.input_tokens)
    assert back == to_anthropic([gateway_out], input_tokens=stream.input_tokens)[0]

    content, start_usage, final_usage = anthropic_content(back)
    expected = Content(stream.content.text, stream.content.thinking, stream.content.tools)
    expected.reason = FINISH_TO_STOP[STOP_TO_FINISH[stream.content.reason or ""]]
    assert content.normalized() == expected.normalized()
    assert content.tools == stream.content.tools  # arguments text itself, not only its JSON
    assert start_usage["input_tokens"] == stream.input_tokens
    # Cache creation has no OpenAI counterpart: it comes back inside input_tokens.
    assert final_usage == {
        "input_tokens": stream.input_tokens + stream.cache_creation,
        "cache_read_input_tokens": stream.cache_read,
        "output_tokens": stream.output_tokens,
    }
    assert back_relay.done and back_relay.error is None and back_relay.malformed == 0
    assert back_relay.stop_reason == expected.reason


@dataclass
class OpenAIStream:
    wire: bytes
    content: Content
    usage: tuple[int, int, int]


def chunk_bytes(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-up",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@st.composite
def openai_streams(draw: st.DrawFn) -> OpenAIStream:
    parts = [chunk_bytes({"role": "assistant", "content": "", "refusal": None})]
    content = Content()
    tools_started = False
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["content", "reasoning_content", "tool"]))
        if kind == "tool":
            tools_started = True
            index = len(content.tools)
            call_id = draw(st.from_regex(r"call_[A-Za-z0-9]{1,12}", fullmatch=True))
            name = draw(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True))
            arguments = json.dumps(draw(st.dictionaries(text, json_values, max_size=4)))
            fragments = split_at(arguments, draw(st.lists(st.integers(0), max_size=5)))
            first = {"name": name, "arguments": "" if draw(st.booleans()) else fragments.pop(0)}
            tool_call = {"index": index, "id": call_id, "type": "function", "function": first}
            parts.append(chunk_bytes({"tool_calls": [tool_call]}))
            for fragment in fragments:
                call = {"index": index, "function": {"arguments": fragment}}
                parts.append(chunk_bytes({"tool_calls": [call]}))
            content.tools.append((call_id, name, arguments))
        elif not tools_started:  # text and reasoning come before tool calls, as providers send
            piece = draw(text)
            parts.append(chunk_bytes({kind: piece}))
            if kind == "content":
                content.text += piece
            else:
                content.thinking += piece
    content.reason = draw(st.sampled_from(sorted(FINISH_TO_STOP)))
    parts.append(chunk_bytes({}, content.reason))
    prompt = draw(st.integers(0, 100_000))
    usage = (prompt, draw(st.integers(0, 100_000)), draw(st.integers(0, prompt)))
    wire = b"".join(parts) + gateway_tail((*usage, 0))
    return OpenAIStream(wire, content, usage)


@settings(max_examples=100, deadline=None)
@given(openai_streams(), cut_lists)
def test_openai_anthropic_openai_round_trip(stream: OpenAIStream, cuts: list[int]) -> None:
    anthropic_out, relay = to_anthropic([stream.wire])
    split_out, split_relay = to_anthropic(split(stream.wire, cuts))
    assert split_out == anthropic_out
    assert (split_relay.done, split_relay.usage, split_relay.events) == (
        relay.done,
        relay.usage,
        relay.events,
    )
    assert relay.done and relay.error is None and relay.malformed == 0
    prompt, completion, cached = stream.usage
    assert relay.usage == (prompt, completion, cached, 0)
    assert relay.stop_reason == FINISH_TO_STOP[stream.content.reason or ""]

    content, _, final_usage = anthropic_content(anthropic_out)
    assert content.normalized()[:3] == stream.content.normalized()[:3]
    assert final_usage == {
        "input_tokens": prompt - cached,
        "cache_read_input_tokens": cached,
        "output_tokens": completion,
    }

    back_out, back = to_openai(split(anthropic_out, cuts[::-1]))
    assert openai_content(back_out).normalized() == stream.content.normalized()
    assert back.usage == (prompt, completion, cached, 0)
    assert back.finish_reason == stream.content.reason
    assert back.done and back.malformed == 0


JUNK_FOR_ANTHROPIC = [
    b"data: {not json\n\n",
    b"data: [1, 2]\n\n",
    b"event: content_block_delta\ndata: 7\n\n",
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}\n\n',
    b'data: {"type":"content_block_start","index":0}\n\n',
    b'data: {"type":"content_block_delta","index":99,"delta":{"type":"input_json_delta",'
    b'"partial_json":"{}"}}\n\n',
]
JUNK_FOR_OPENAI = [b"data: {oops\n\n", b"data: nope\n\n", b"data: [1]\n\n", b"data: null\n\n"]


def insert_junk(wire: bytes, junk: list[bytes], positions: list[int]) -> tuple[bytes, bytes]:
    """``wire`` with the junk inserted, and the part of it before the first junk."""
    events = [(e + b"\n\n", False) for e in wire.split(b"\n\n") if e]
    for piece, at in zip(junk, positions, strict=False):
        events.insert(at % len(events), (piece, True))  # before the last event, which ends input
    first = next(i for i, (_, bad) in enumerate(events) if bad)
    return b"".join(e for e, _ in events), b"".join(e for e, _ in events[:first])


@settings(max_examples=100, deadline=None)
@given(
    anthropic_streams(),
    openai_streams(),
    st.lists(st.sampled_from(JUNK_FOR_ANTHROPIC), min_size=1, max_size=4),
    st.lists(st.sampled_from(JUNK_FOR_OPENAI), min_size=1, max_size=4),
    st.lists(st.integers(min_value=0), min_size=4, max_size=4),
)
def test_a_malformed_event_halts_the_upstream_relay_but_not_the_reverse_one(
    a_stream: AnthropicStream,
    o_stream: OpenAIStream,
    a_junk: list[bytes],
    o_junk: list[bytes],
    positions: list[int],
) -> None:
    # Upstream Anthropic events: what follows a hole is not the answer, nothing after it goes.
    wire, before = insert_junk(a_stream.wire, a_junk, positions)
    expected, _ = to_openai([before])
    noisy, relay = to_openai([wire])
    assert noisy == expected
    assert relay.malformed == 1 and relay.halted and not relay.done and relay.error is None

    # The gateway's own stream re-framed for /v1/messages: junk there is skipped, not fatal.
    clean, _ = to_anthropic([o_stream.wire])
    noisy, back = to_anthropic([insert_junk(o_stream.wire, o_junk, positions)[0]])
    assert noisy == clean
    assert back.malformed == len(o_junk) and back.done


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), cut_lists)
def test_arbitrary_bytes_never_crash_and_split_independently(data: bytes, cuts: list[int]) -> None:
    whole, relay = to_openai([data])
    parts, split_relay = to_openai(split(data, cuts))
    assert (whole, openai_state(relay)) == (parts, openai_state(split_relay))
    whole, back = to_anthropic([data])
    parts, split_back = to_anthropic(split(data, cuts))
    assert whole == parts and back.events == split_back.events


# --- Examples ----------------------------------------------------------------------------


def test_anthropic_error_event_is_kept_not_forwarded() -> None:
    wire = event("ping", {}) + event(
        "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    out, relay = to_openai([wire])
    assert out == b""
    assert relay.error is not None
    assert json.loads(relay.error)["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert not relay.done and relay.usage is None


def test_gateway_error_event_becomes_anthropic_error() -> None:
    error = {
        "error": {
            "message": "Provider 'x': upstream said no",
            "type": "provider_error",
            "code": "provider_error",
            "param": None,
        },
        "request_id": "req_1",
    }
    wire = (
        chunk_bytes({"role": "assistant", "content": ""})
        + chunk_bytes({"content": "partial"})
        + b"event: error\ndata: "
        + json.dumps(error).encode()
        + b"\n\n"
    )
    out, relay = to_anthropic([wire])
    events = anthropic_events(out)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert events[-1]["error"] == {"type": "api_error", "message": error["error"]["message"]}
    assert relay.error is not None and not relay.done


def test_finish_closes_blocks_of_a_cut_stream() -> None:
    out, relay = to_anthropic(
        [chunk_bytes({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]})]
    )
    types = [e["type"] for e in anthropic_events(out)]
    assert types == ["message_start", "content_block_start", "content_block_stop"]
    assert not relay.done


def test_docstring_examples() -> None:
    relay = AnthropicStreamRelay(model="claude-x", chunk_id="chatcmpl-1", created=0)
    assert relay.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n\n') == b""
    assert relay.done
    back = OpenAIToAnthropicRelay(model="m", message_id="msg_1", input_tokens=3)
    assert back.feed(b"data: [DONE]\n\n").count(b"event: ") == 3 and back.done
