"""Native SSE parser and OpenAI stream relay: reads may split the stream anywhere."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._router_core import OpenAIStreamRelay, SseEvent, SseParser, count_tokens

NEWLINES = (b"\n", b"\r", b"\r\n")
# Field values: anything without line breaks (NUL excluded so ids are always kept).
field_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    max_size=12,
)


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[str | None, str, str | None]]]:
    """A wire stream and the (event, data, id) triples it must parse to."""
    out = bytearray(b"\xef\xbb\xbf" if draw(st.booleans()) else b"")
    expected: list[tuple[str | None, str, str | None]] = []
    last_id: str | None = None

    def newline() -> None:
        nl = draw(st.sampled_from(NEWLINES))
        if nl == b"\n" and out.endswith(b"\r"):
            nl = b"\r\n"  # a bare \n after a bare \r would merge into one line end
        out.extend(nl)

    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            out.extend(b": comment")
            newline()
        event = draw(st.none() | st.from_regex(r"[a-z]{1,8}", fullmatch=True))
        if event is not None:
            out.extend(f"event: {event}".encode())
            newline()
        event_id = draw(st.none() | st.from_regex(r"[a-z0-9]{0,6}", fullmatch=True))
        if event_id is not None:
            out.extend(f"id:{event_id}".encode())
            newline()
            last_id = event_id
        lines = draw(st.lists(field_text, min_size=1, max_size=3))
        for line in lines:
            out.extend(f"data: {line}".encode())
            newline()
        newline()
        expected.append((event, "\n".join(lines), last_id))
    return bytes(out), expected


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def parse(reads: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    events: list[SseEvent] = []
    for read in reads:
        events.extend(parser.feed(read))
    events.extend(parser.finish())
    return events


@settings(max_examples=300, deadline=None)
@given(sse_streams(), st.lists(st.integers(min_value=0), max_size=10))
def test_any_split_yields_the_same_events(
    stream: tuple[bytes, list[tuple[str | None, str, str | None]]], cuts: list[int]
) -> None:
    data, expected = stream
    whole = parse([data])
    assert [(e.event, e.data, e.id) for e in whole] == expected
    assert parse(split(data, cuts)) == whole


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=10))
def test_arbitrary_bytes_never_crash_and_split_independently(data: bytes, cuts: list[int]) -> None:
    assert parse(split(data, cuts)) == parse([data])


def test_whatwg_details() -> None:
    events = parse([b"data\n\ndata:  x\nretry: 7\nid: a\x00b\n\nretry: 7s\nevent:\ndata: y"])
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        (None, "", None, None),
        (None, " x", None, 7),
        (None, "y", None, None),  # unterminated, flushed by finish()
    ]


def test_cr_at_read_edge_waits_for_possible_lf() -> None:
    parser = SseParser()
    events = parser.feed(b"data: a\r") + parser.feed(b"\n") + parser.feed(b"\r\n")
    assert [e.data for e in events] == ["a"]


def chunk(content: str, **extra: object) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 11,
        "model": "up",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    body.update(extra)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@st.composite
def upstream_streams(draw: st.DrawFn) -> tuple[bytes, list[str], bool]:
    contents = draw(st.lists(st.text(max_size=10), max_size=5))
    parts = [chunk(c) for c in contents]
    insert_noise = draw(st.booleans())
    if contents and insert_noise:
        parts.insert(1, b": keep-alive\n\ndata:\n\n")  # a comment and an empty event
    with_usage = draw(st.booleans())
    if with_usage:
        usage = {
            "prompt_tokens": 9,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 1},
        }
        parts.append(
            b"data: "
            + json.dumps({"id": "chatcmpl-1", "choices": [], "usage": usage}).encode()
            + b"\r\n\r\n"
        )
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts), contents, with_usage


def relay(reads: list[bytes]) -> tuple[bytes, OpenAIStreamRelay]:
    r = OpenAIStreamRelay(model="served-model")
    out = b"".join(r.feed(read) for read in reads) + r.finish()
    return out, r


def relay_state(r: OpenAIStreamRelay) -> tuple[object, ...]:
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
        r.completion_truncated,
    )


@settings(max_examples=200, deadline=None)
@given(upstream_streams(), st.lists(st.integers(min_value=0), max_size=10))
def test_relay_is_split_independent(stream: tuple[bytes, list[str], bool], cuts: list[int]) -> None:
    data, contents, with_usage = stream
    whole_out, whole = relay([data])
    split_out, parts = relay(split(data, cuts))
    assert split_out == whole_out
    assert relay_state(parts) == relay_state(whole)

    assert whole.done
    assert whole.chunks == len(contents)
    assert whole.content_chars == sum(len(c) for c in contents)
    assert whole.usage == ((9, 4, 2, 1) if with_usage else None)
    emitted = [e for e in whole_out.split(b"\n\n") if e]
    assert len(emitted) == len(contents)
    for line, content in zip(emitted, contents, strict=True):
        assert line.startswith(b"data: ")
        body = json.loads(line[len(b"data: ") :])
        assert body["model"] == "served-model"
        assert list(body) == ["id", "object", "created", "model", "choices"]  # order kept
        assert body["choices"][0]["delta"]["content"] == content


def test_relay_withholds_errors_and_forwards_nothing_after_one() -> None:
    data = (
        chunk("hi")
        + b'data: {"error": {"message": "overloaded"}}\n\n'
        + chunk("", choices=[{"index": 0, "delta": {}, "finish_reason": "length"}])
    )
    out, r = relay([data])
    assert r.error == '{"error":{"message":"overloaded"}}'
    assert r.chunk_id == "chatcmpl-1" and r.created == 11
    assert r.finish_reason is None and r.halted
    assert r.chunks == 1 and not r.done and r.usage is None
    assert b"overloaded" not in out and out == relay([chunk("hi")])[0]


def test_relay_keeps_upstream_bytes_except_model() -> None:
    data = (
        b'data: {"id": "c", "model" : "up",\t"choices": [{"delta": {"content": "caf\\u00e9"}}]}\n\n'
        b'data: {"id":"c",\ndata: "choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n'
        b'data: {"model":"a\\/b","choices":[]}\n\n'
    )
    out, r = relay([data])
    assert out == (
        b'data: {"id": "c", "model" : "served-model",\t"choices": [{"delta": {"content": '
        b'"caf\\u00e9"}}]}\n\n'
        # a multi-line data field stays one data line; a missing model is appended
        b'data: {"id":"c", "choices":[{"delta":{"content":"x"},"finish_reason":"stop"}],'
        b'"model":"served-model"}\n\n'
        b'data: {"model":"served-model","choices":[]}\n\n'
    )
    assert (r.chunks, r.content_chars, r.finish_reason) == (3, 5, "stop")


# Values of the wrong type for each checked position of a chat.completion.chunk.
NOT_TEXT = st.sampled_from([5, 1.5, True, [], {}, ["a"], {"a": "b"}])
NOT_ARRAY = st.sampled_from([None, 5, "nope", {}, {"0": {}}, True])


@st.composite
def misshapen_chunks(draw: st.DrawFn) -> dict[str, object]:
    """A chunk object the OpenAI SDK cannot handle: one position has the wrong type."""
    delta: dict[str, object] = {"content": "x"}
    choice: dict[str, object] = {"index": 0, "delta": delta, "finish_reason": None}
    body: dict[str, object] = {"id": "chatcmpl-1", "object": "chat.completion.chunk"}
    body["choices"] = [choice]
    match draw(st.sampled_from(["choices", "choice", "delta", "text", "tools", "finish"])):
        case "choices":
            body["choices"] = draw(NOT_ARRAY)
        case "choice":
            body["choices"] = [choice, draw(st.sampled_from([None, 3, "c", [choice]]))]
        case "delta":
            choice["delta"] = draw(st.sampled_from([None, 5, "d", [delta]]))
        case "text":
            delta[draw(st.sampled_from(["content", "refusal", "reasoning_content"]))] = draw(
                NOT_TEXT
            )
        case "tools":
            delta["tool_calls"] = draw(
                NOT_ARRAY.filter(lambda v: v is not None)
                | st.sampled_from([[1], [{"function": {}}, "x"], [None]])
            )
        case _:
            choice["finish_reason"] = draw(NOT_TEXT)
    return body


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(max_size=8), min_size=1, max_size=4),
    st.lists(misshapen_chunks(), min_size=1, max_size=3),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_a_misshapen_chunk_halts_the_relay(
    contents: list[str], junk: list[dict[str, object]], cuts: list[int]
) -> None:
    parts = [chunk(c) for c in contents]
    for i, body in enumerate(junk):
        parts.insert(1 + i, b"data: " + json.dumps(body).encode() + b"\n\n")
    data = b"".join(parts) + b"data: [DONE]\n\n"
    out, r = relay(split(data, cuts))
    before_out, before = relay([chunk(contents[0])])  # what preceded the first hole
    assert out == before_out
    assert r.malformed == 1 and r.halted and not r.done
    assert (r.chunks, r.content_chars) == (before.chunks, before.content_chars)
    assert r.completion_tokens(encoding="o200k_base") == before.completion_tokens(
        encoding="o200k_base"
    )


def test_well_shaped_nulls_are_forwarded() -> None:
    nulls = {"content": None, "refusal": None, "reasoning_content": None, "tool_calls": None}
    data = chunk("", choices=[{"index": 0, "delta": nulls, "finish_reason": None}])
    data += chunk("", choices=[{"index": 0, "finish_reason": "stop"}])  # no delta
    data += chunk("", choices=[])
    out, r = relay([data])
    assert (r.chunks, r.malformed, r.finish_reason) == (3, 0, "stop")
    assert out.count(b"data: ") == 3


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=16), st.none() | st.text(max_size=8), st.booleans()),
        max_size=8,
    ),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_completion_tokens_count_the_concatenated_deltas(
    deltas: list[tuple[str, str | None, bool]], cuts: list[int]
) -> None:
    parts: list[bytes] = []
    text = ""
    for content, arguments, reasoning in deltas:
        delta: dict[str, object] = {"reasoning_content" if reasoning else "content": content}
        text += content
        if arguments is not None:
            delta["tool_calls"] = [{"index": 0, "function": {"arguments": arguments}}]
            text += arguments
        parts.append(chunk("", choices=[{"index": 0, "delta": delta, "finish_reason": None}]))
    parts.append(chunk("", choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    _, r = relay(split(b"".join(parts) + b"data: [DONE]\n\n", cuts))
    assert not r.completion_truncated
    for encoding in ("o200k_base", "cl100k_base"):
        assert r.completion_tokens(encoding=encoding) == count_tokens(text, encoding=encoding)
    assert r.completion_tokens(encoding=None) == (len(text) + 3) // 4


def test_completion_text_is_capped_at_4_mib() -> None:
    piece = "word " * 1000  # 5,000 characters
    reads = [chunk(piece) for _ in range(900)]  # 4.5 MB of content
    _, r = relay(reads)
    assert r.completion_truncated and r.content_chars == 900 * len(piece)
    kept = (4 * 1024 * 1024) // len(piece) * piece + piece[: (4 * 1024 * 1024) % len(piece)]
    rest = r.content_chars - len(kept)
    assert (
        r.completion_tokens(encoding="o200k_base")
        == count_tokens(kept, encoding="o200k_base") + (rest + 3) // 4
    )
