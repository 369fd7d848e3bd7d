"""Self-check of the stream-rescue test support (no gateway): the prefill-accepting upstreams
answer the rest of the text in each style, and the broken streams break where they say."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from support.anthropic_upstream import AnthropicContinue, AnthropicUpstream, broken_events
from support.anthropic_upstream import AnthropicReply as AReply
from support.breaks import ERROR_EVENT, MALFORMED, broken_stream, delivered, pieces
from support.checks import read_sse, sse_json_events
from support.continuation import Style, answer_text, find_prefill, request_shape
from support.upstream import Continue, CutBody, Reply, ScriptedStream, UpstreamServer

TEXT = "one two three four five"
STYLES: tuple[Style, ...] = ("continue_final_message", "prefix", "prefix_echo")


@pytest.fixture
def up() -> Iterator[UpstreamServer]:
    with UpstreamServer("rescue-self-check") as server:
        yield server


def _prefilled(style: Style, text: str) -> dict[str, object]:
    last: dict[str, object] = {"role": "assistant", "content": text}
    body: dict[str, object] = {"model": "m", "stream": True}
    if request_shape(style) == "prefix":
        last["prefix"] = True
    elif style == "continue_final_message":
        body |= {"continue_final_message": True, "add_generation_prompt": False}
    return {**body, "messages": [{"role": "user", "content": "go"}, last]}


def _streamed_text(http: httpx.Client, url: str, body: dict[str, object]) -> str:
    with http.stream("POST", url, json=body) as resp:
        assert resp.status_code == 200, resp.read()
        chunks = sse_json_events(read_sse(resp))
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@given(
    text=st.text(st.characters(codec="utf-8"), max_size=40),
    cut=st.integers(min_value=0, max_value=40),
    style=st.sampled_from(("assistant", *STYLES)),
)
def test_prefill_plus_answer_is_the_text(text: str, cut: int, style: Style) -> None:
    prefill = text[:cut]
    answer = answer_text(style, text, prefill)
    assert (answer if style == "prefix_echo" else prefill + answer) == text
    # Anthropic's prefill holds back trailing whitespace: the answer carries it, once.
    held = prefill.rstrip()
    assert held + answer_text("assistant", text, held) == text


@given(style=st.sampled_from(STYLES), text=st.text(max_size=20))
def test_find_prefill_reads_each_request_shape(style: Style, text: str) -> None:
    found = find_prefill(_prefilled(style, text))
    assert found is not None and (found.shape, found.text) == (request_shape(style), text)
    assert find_prefill({"messages": [{"role": "user", "content": text}]}) is None


@pytest.mark.parametrize("style", STYLES)
def test_continue_answers_the_rest_in_its_style(up: UpstreamServer, style: Style) -> None:
    up.set_default(Continue(TEXT, style))
    url = up.base_url + "/chat/completions"
    with httpx.Client(timeout=5.0) as http:
        fresh = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}]}
        assert _streamed_text(http, url, fresh) == TEXT
        rest = _streamed_text(http, url, _prefilled(style, "one two"))
        assert rest == ("one two three four five" if style == "prefix_echo" else " three four five")
        other: Style = "prefix" if style == "continue_final_message" else "continue_final_message"
        wrong = http.post(url, json=_prefilled(other, "one two"))
        assert wrong.status_code == 400 and "expects" in wrong.json()["error"]["message"]


def test_continue_rejects_a_prefill_when_told(up: UpstreamServer) -> None:
    up.set_default(Continue(TEXT, "prefix", reject=True))
    with httpx.Client(timeout=5.0) as http:
        resp = http.post(up.base_url + "/chat/completions", json=_prefilled("prefix", "one"))
    assert resp.status_code == 400 and "prefill" in resp.json()["error"]["message"]


def test_anthropic_continue_and_its_trailing_whitespace_rule() -> None:
    with AnthropicUpstream("rescue-self-check-c") as up, httpx.Client(timeout=5.0) as http:
        up.set_default(AnthropicContinue(TEXT, input_tokens=3, output_tokens=4))
        url = up.base_url + "/messages"
        body = _prefilled("assistant", "one two")
        with http.stream("POST", url, json=body) as resp:
            events = [json.loads(d) for _, d in read_sse(resp)]
        deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
        assert "".join(deltas) == " three four five"
        assert events[-2]["usage"] == {"output_tokens": 4}
        trailing = http.post(url, json=_prefilled("assistant", "one two "))
        assert trailing.status_code == 400, trailing.text
        assert "whitespace" in trailing.json()["error"]["message"]
        cut = broken_events(body, AReply(text=TEXT), 2)
        assert b"message_stop" not in b"".join(cut)
        assert sum(b'"text_delta"' in e for e in cut) == 2


def test_cut_body_drops_the_connection_mid_body(up: UpstreamServer) -> None:
    up.set_default(CutBody(Reply(text=TEXT)))
    with httpx.Client(timeout=5.0) as http, pytest.raises(httpx.RemoteProtocolError):
        http.post(up.base_url + "/chat/completions", json={"model": "m"})


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_broken_streams_break_where_they_say(up: UpstreamServer, shape: str) -> None:
    malformed = broken_stream(TEXT, 2, "malformed", malformed=shape)
    assert isinstance(malformed, ScriptedStream)
    assert MALFORMED[shape] in malformed.steps and malformed.steps[-1] == b"data: [DONE]\n\n"
    assert broken_stream(TEXT, 2, "error_event").steps[-1] == ERROR_EVENT
    assert broken_stream(TEXT, 2, "stall").end == "hang"
    up.enqueue(broken_stream(TEXT, 2, "cut"))
    with (
        httpx.Client(timeout=5.0) as http,
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", up.base_url + "/chat/completions", json={}) as resp,
    ):
        list(resp.iter_lines())
    assert delivered(TEXT, 2) == "one two " and len(pieces(TEXT)) == 5
