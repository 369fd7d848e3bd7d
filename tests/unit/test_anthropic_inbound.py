"""The inbound Anthropic ⇄ OpenAI transforms (api/anthropic_format.py) and the chat payload
extensions (legacy functions, extensions.thinking, passthrough): properties and examples."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.anthropic_format import from_openai, to_openai
from gateway.api.chat import PayloadBuilder, legacy_functions, reasoning_effort
from gateway.edge.schemas import AnthropicRequest, ChatRequest
from gateway.errors import InvalidRequest
from gateway.routing import RoutingTable

text = st.text(min_size=1, max_size=30)
ident = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ident, inner, max_size=3),
    max_leaves=6,
)
text_block = st.builds(lambda t: {"type": "text", "text": t}, text)
image_block = st.one_of(
    st.builds(
        lambda d: {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": d},
        },
        st.from_regex(r"[A-Za-z0-9+/]{4,20}", fullmatch=True),
    ),
    st.builds(
        lambda u: {"type": "image", "source": {"type": "url", "url": f"https://x.test/{u}.png"}},
        ident,
    ),
)
tool_result = st.builds(
    lambda i, t: {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": t}, ident, text
)
tool_use = st.builds(
    lambda i, n, args: {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": args},
    ident,
    ident,
    st.dictionaries(ident, json_value, max_size=4),
)
user_content = text | st.lists(
    st.one_of(text_block, image_block, tool_result), min_size=1, max_size=4
)
assistant_content = text | st.lists(st.one_of(text_block, tool_use), min_size=1, max_size=4)


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    turns = draw(st.integers(1, 5))
    messages = []
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        content = draw(user_content if role == "user" else assistant_content)
        messages.append({"role": role, "content": content})
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["auto", "gpt-4o", "claude-sonnet-4:floor"])),
        "max_tokens": draw(st.integers(1, 4096)),
        "messages": messages,
    }
    system = draw(st.none() | text | st.lists(text_block, min_size=1, max_size=2))
    if system is not None:
        body["system"] = system
    if draw(st.booleans()):
        body["tools"] = [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]
        body["tool_choice"] = draw(
            st.sampled_from(
                [{"type": "auto"}, {"type": "any"}, {"type": "none"}, {"type": "tool", "name": "f"}]
            )
        )
    if draw(st.booleans()):
        body["stop_sequences"] = draw(st.lists(text, min_size=1, max_size=3))
    return body


def _translate(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    request = msgspec.convert(body, AnthropicRequest)
    out, warnings = to_openai(request, body)
    msgspec.convert(out, ChatRequest)  # always a valid internal chat request
    return out, warnings


def _back(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages → (role, flattened content) in Anthropic terms, for comparison."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m["tool_call_id"],
                "content": m["content"],
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if m["role"] == "user":
            if isinstance(m["content"], str):
                out.append({"role": "user", "content": m["content"]})
                continue
            blocks = []
            for part in m["content"]:
                if part["type"] == "text":
                    blocks.append({"type": "text", "text": part["text"]})
                else:
                    blocks.append({"type": "image", "url": part["image_url"]["url"]})
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": "user", "content": blocks})
            continue
        entry: dict[str, Any] = {"role": "assistant", "text": m.get("content") or ""}
        entry["tools"] = [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in m.get("tool_calls") or []
        ]
        out.append(entry)
    return out


def _expected(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The original turns in the shape ``_back`` produces (tool results first in a turn)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content = m["content"]
        if m["role"] == "assistant":
            if isinstance(content, str):
                out.append({"role": "assistant", "text": content, "tools": []})
            else:
                out.append(
                    {
                        "role": "assistant",
                        "text": "".join(b["text"] for b in content if b["type"] == "text"),
                        "tools": [
                            (b["id"], b["name"], b["input"])
                            for b in content
                            if b["type"] == "tool_use"
                        ],
                    }
                )
            continue
        if isinstance(content, str):
            out.append({"role": "user", "content": content})
            continue
        results = [b for b in content if b["type"] == "tool_result"]
        rest = []
        for b in content:
            if b["type"] == "text":
                rest.append(b)
            elif b["type"] == "image":
                src = b["source"]
                url = (
                    src["url"]
                    if src["type"] == "url"
                    else (f"data:{src['media_type']};base64,{src['data']}")
                )
                rest.append({"type": "image", "url": url})
        out.append({"role": "user", "content": results + rest})
    return out


@settings(max_examples=150, deadline=None)
@given(anthropic_requests())
def test_request_round_trip_preserves_messages_text_and_tools(body: dict[str, Any]) -> None:
    out, warnings = _translate(body)
    assert warnings == []
    assert out["max_tokens"] == body["max_tokens"]
    assert out["model"] == body["model"]
    system = body.get("system")
    if system:
        first = out["messages"][0]
        assert first["role"] == "system"
        if isinstance(system, str):
            assert first["content"] == system
        else:
            assert [p["text"] for p in first["content"]] == [b["text"] for b in system]
    assert _back(out["messages"]) == _expected(body["messages"])
    if "tools" in body:
        assert out["tools"][0]["function"]["name"] == "f"
        choice = body["tool_choice"]["type"]
        expected = {"auto": "auto", "any": "required", "none": "none"}.get(
            choice, {"type": "function", "function": {"name": "f"}}
        )
        assert out["tool_choice"] == expected
    assert out.get("stop") == body.get("stop_sequences")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(text, max_size=3),
    st.lists(st.tuples(ident, ident, st.dictionaries(ident, json_value, max_size=3)), max_size=3),
    st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    st.tuples(st.integers(0, 10_000), st.integers(0, 100), st.integers(0, 10_000)),
)
def test_response_round_trip(texts, calls, finish, tokens) -> None:
    prompt, cached, completion = tokens
    cached = min(cached, prompt)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in calls
        ]
    answer = {
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }
    out = from_openai(answer, message_id="msg_1", model="m")
    blocks = out["content"]
    assert "".join(b["text"] for b in blocks if b["type"] == "text") == "".join(texts)
    assert [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"] == [
        (i, n, a) for i, n, a in calls
    ]
    assert (
        out["stop_reason"]
        == {
            "stop": "end_turn",
            "length": "max_tokens",
            "tool_calls": "tool_use",
            "content_filter": "refusal",
        }[finish]
    )
    usage = out["usage"]
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == prompt
    assert usage["output_tokens"] == completion


def test_thinking_top_k_metadata_and_unsupported_blocks() -> None:
    body = {
        "model": "auto",
        "max_tokens": 100,
        "thinking": {"type": "enabled", "budget_tokens": 12000},
        "top_k": 7,
        "metadata": {"user_id": "u1", "other": 1},
        "messages": [
            {
                "role": "user",
                "content": [{"type": "document", "source": {}}, {"type": "text", "text": "hi"}],
            },
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "ok"}],
            },
        ],
        "routing": {"optimize": "cost"},
    }
    out, warnings = _translate(body)
    assert out["extensions"] == {
        "thinking": {"enabled": True, "budget_tokens": 12000},
        "anthropic": {"top_k": 7},
    }
    assert out["user"] == "u1" and out["routing"] == {"optimize": "cost"}
    assert out["messages"][1] == {"role": "assistant", "content": "ok"}
    assert any("document" in w for w in warnings)
    assert any("metadata.other" in w for w in warnings)


def test_reasoning_effort_thresholds() -> None:
    assert [reasoning_effort(b) for b in (0, 4999, 5000, 14999, 15000, 10**6)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


def test_legacy_functions_become_tools() -> None:
    fn = {"name": "f", "parameters": {"type": "object"}}
    out = legacy_functions({"messages": [], "functions": [fn], "function_call": {"name": "f"}})
    assert out == {
        "messages": [],
        "tools": [{"type": "function", "function": fn}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }
    assert legacy_functions({"functions": [fn], "function_call": "auto"})["tool_choice"] == "auto"
    with pytest.raises(InvalidRequest):
        legacy_functions({"functions": [fn], "tools": []})


@pytest.fixture(scope="module")
def deployments():
    catalog = RoutingTable.from_config(assume_credentials=True).catalog

    def find(model: str, provider: str):
        return next(
            d for d in catalog.deployments if d.model.id == model and d.provider.id == provider
        )

    return find


def _builder(data: dict[str, Any]) -> PayloadBuilder:
    return PayloadBuilder(data, msgspec.convert(data, ChatRequest))


def test_payload_thinking_passthrough_and_warnings(deployments) -> None:
    data = {
        "messages": [{"role": "user", "content": "hi"}],
        "extensions": {
            "thinking": {"enabled": True, "budget_tokens": 20000},
            "openai": {"service_tier": "flex", "api_key": "sk-x", "nested": {"Token": "t", "a": 1}},
            "anthropic": {"top_k": 3},
        },
        "some_future_field": 1,
    }
    build = _builder(data)
    o3 = deployments("o3", "openai")
    payload = build(o3)
    assert payload["reasoning_effort"] == "high"
    assert payload["service_tier"] == "flex" and payload["nested"] == {"a": 1}
    assert "api_key" not in payload and "extensions" not in payload
    assert payload["some_future_field"] == 1
    assert any("extensions.anthropic.top_k" in w for w in build.warnings[o3.row])
    gpt4o = deployments("gpt-4o", "openai")
    assert "reasoning_effort" not in build(gpt4o)
    assert any("extensions.thinking ignored" in w for w in build.warnings[gpt4o.row])
    claude = deployments("claude-sonnet-4", "anthropic")
    payload = build(claude)
    assert payload["extensions"] == {
        "thinking": {"enabled": True, "budget_tokens": 20000},
        "anthropic": {"top_k": 3},
    }
    assert "some_future_field" not in payload and "service_tier" not in payload
    assert any("some_future_field" in w for w in build.warnings[claude.row])


def test_passthrough_core_field_refused() -> None:
    data = {
        "messages": [{"role": "user", "content": "hi"}],
        "extensions": {"openai": {"model": "x"}},
    }
    with pytest.raises(InvalidRequest) as caught:
        _builder(data)
    assert caught.value.param == "extensions.openai.model"
