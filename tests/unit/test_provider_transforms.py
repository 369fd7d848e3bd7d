"""Pure transforms of the Anthropic and Gemini provider modules and passthrough sanitisation."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ModelConfig, OfferConfig, Price, ProviderConfig
from gateway.errors import InvalidRequest
from gateway.providers import anthropic, gemini
from gateway.providers.passthrough import credential_key, merged, sanitised
from gateway.providers.wire_http import WireClient
from gateway.routing.catalog import Deployment


def deployment(
    model_id: str = "claude-sonnet-4",
    upstream: str = "claude-sonnet-4-20250514",
    max_output: int = 64000,
    fmt: str = "anthropic",
) -> Deployment:
    provider = ProviderConfig(id="p", format=fmt)  # type: ignore[arg-type]
    offer = OfferConfig(
        model=model_id,
        provider="p",
        provider_model_id=upstream,
        price=Price(input=1.0, output=2.0),
        context_window=200000,
        max_output=max_output,
    )
    return Deployment(
        row=0,
        model=ModelConfig(id=model_id),
        provider=provider,
        provider_model_id=upstream,
        region="r",
        key_source="platform",
        offer=offer,
    )


DEP = deployment()
text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s)
roles = st.sampled_from(["system", "developer", "user", "assistant"])
messages_strategy = st.lists(st.tuples(roles, text, st.booleans()), min_size=1, max_size=8)


def _as_message(role: str, body: str, as_parts: bool) -> dict[str, Any]:
    content: Any = [{"type": "text", "text": body}] if as_parts else body
    return {"role": role, "content": content}


def _texts(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                found.append(item)
            else:
                found += _texts(item)
    elif isinstance(value, list):
        for item in value:
            found += _texts(item)
    return found


# --- Anthropic request ---------------------------------------------------------------


@given(messages_strategy)
@settings(max_examples=60, deadline=None)
def test_anthropic_request_keeps_every_message_text(spec):
    payload = {"model": "m", "messages": [_as_message(*m) for m in spec]}
    body = anthropic.to_anthropic(DEP, payload)
    system = [m[1] for m in spec if m[0] in ("system", "developer")]
    turns = [m[1] for m in spec if m[0] not in ("system", "developer")]
    assert _texts(body.get("system", [])) == system
    assert _texts(body["messages"]) == turns
    roles_out = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles_out)), "roles alternate"


@given(messages_strategy)
@settings(max_examples=60, deadline=None)
def test_gemini_request_keeps_every_message_text(spec):
    payload = {"model": "m", "messages": [_as_message(*m) for m in spec]}
    body = gemini.to_gemini(payload)
    system = [m[1] for m in spec if m[0] in ("system", "developer")]
    turns = [m[1] for m in spec if m[0] not in ("system", "developer")]
    assert _texts(body.get("systemInstruction", {})) == system
    assert _texts(body["contents"]) == turns
    assert {c["role"] for c in body["contents"]} <= {"user", "model"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
calls_strategy = st.lists(
    st.tuples(
        st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True),
        st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    ),
    min_size=1,
    max_size=4,
)


@given(calls_strategy)
@settings(max_examples=60, deadline=None)
def test_anthropic_tool_calls_round_trip(calls):
    openai_calls = [
        {
            "id": f"toolu_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(calls)
    ]
    payload = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": openai_calls},
        ],
    }
    blocks = anthropic.to_anthropic(DEP, payload)["messages"][1]["content"]
    answer = {
        "id": "msg_1",
        "type": "message",
        "content": blocks,
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    back = anthropic.from_anthropic(answer)["choices"][0]
    assert back["finish_reason"] == "tool_calls"
    got = back["message"]["tool_calls"]
    assert [c["id"] for c in got] == [c["id"] for c in openai_calls]
    assert [c["function"]["name"] for c in got] == [name for name, _ in calls]
    assert [json.loads(c["function"]["arguments"]) for c in got] == [args for _, args in calls]


@given(calls_strategy)
@settings(max_examples=60, deadline=None)
def test_gemini_tool_calls_round_trip(calls):
    openai_calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(calls)
    ]
    payload = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": openai_calls},
        ],
    }
    parts = gemini.to_gemini(payload)["contents"][1]["parts"]
    answer = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]
    }
    back = gemini.from_gemini(answer)["choices"][0]
    assert back["finish_reason"] == "tool_calls"
    got = back["message"]["tool_calls"]
    assert [c["id"] for c in got] == [c["id"] for c in openai_calls]
    assert [c["function"]["name"] for c in got] == [name for name, _ in calls]
    assert [json.loads(c["function"]["arguments"]) for c in got] == [args for _, args in calls]


def test_anthropic_request_shapes():
    payload = {
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": "S1"},
            {"role": "developer", "content": [{"type": "text", "text": "S2"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "r1"},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "stop": ["x", "y"],
        "top_p": 0.5,
        "temperature": 1.7,
        "max_completion_tokens": 99,
        "stream": True,
    }
    # Images are estimated generously; a 4,096-token threshold keeps this prompt uncached.
    body = anthropic.to_anthropic(deployment("claude-haiku-4-5", "claude-haiku-4-5-1"), payload)
    assert body["system"] == [{"type": "text", "text": "S1"}, {"type": "text", "text": "S2"}]
    user = body["messages"][0]["content"]
    assert user[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"},
    }
    assert user[2] == {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "t1",
        "name": "f",
        "input": {"a": 1},
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "r1"},
            {"type": "text", "text": "thanks"},
        ],
    }
    assert body["tool_choice"] == {"type": "tool", "name": "f", "disable_parallel_tool_use": True}
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]
    assert body["stop_sequences"] == ["x", "y"]
    assert (body["top_p"], body["temperature"], body["max_tokens"]) == (0.5, 1.0, 99)
    assert body["stream"] is True


@pytest.mark.parametrize(
    ("choice", "mapped"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
    ],
)
def test_anthropic_tool_choice(choice, mapped):
    payload = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": choice,
    }
    assert anthropic.to_anthropic(DEP, payload)["tool_choice"] == mapped


def test_anthropic_thinking_and_passthrough():
    payload = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 100,
        "temperature": 0.3,
        "extensions": {
            "thinking": {"enabled": True},
            "anthropic": {"top_k": 3, "metadata": {"user_id": "u", "Api-Key": "no"}},
        },
    }
    body = anthropic.to_anthropic(DEP, payload)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8000}
    assert body["max_tokens"] > 8000
    assert "temperature" not in body
    assert body["top_k"] == 3 and body["metadata"] == {"user_id": "u"}
    assert "extensions" not in body
    with pytest.raises(InvalidRequest) as err:
        anthropic.to_anthropic(DEP, {**payload, "extensions": {"anthropic": {"model": "x"}}})
    assert err.value.param == "extensions.anthropic.model"


@pytest.mark.parametrize(
    ("model", "threshold"),
    [
        ("claude-sonnet-4-20250514", 1024),
        ("claude-opus-4-1-20250805", 1024),
        ("claude-sonnet-4-5-20250929", 1024),
        ("claude-3-5-haiku-20241022", 2048),
        ("claude-haiku-4-5-20251001", 4096),
        ("claude-opus-4-5-20251101", 4096),
        ("anthropic/claude-opus-4.5", 4096),
    ],
)
def test_cache_thresholds(model, threshold):
    assert anthropic.cache_threshold(model) == threshold


def test_cache_control_injection_rules():
    long = "word " * 3000
    payload = {
        "model": "m",
        "messages": [{"role": "system", "content": long}, {"role": "user", "content": "q"}],
    }
    body = anthropic.to_anthropic(DEP, payload)
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    haiku45 = deployment("claude-haiku-4-5", "claude-haiku-4-5-20251001")
    assert "cache_control" not in json.dumps(anthropic.to_anthropic(haiku45, payload))
    # A request that already has cache_control anywhere is left alone.
    marked = {
        **payload,
        "extensions": {
            "anthropic": {
                "tools": [{"name": "t", "input_schema": {}, "cache_control": {"type": "ephemeral"}}]
            }
        },
    }
    body = anthropic.to_anthropic(DEP, marked)
    assert "cache_control" not in body["system"][-1]
    # No system prompt: the last block of the last message is marked.
    body = anthropic.to_anthropic(
        DEP, {"model": "m", "messages": [{"role": "user", "content": long}]}
    )
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}


def test_anthropic_response_usage_reasoning_and_stop_reasons():
    answer = {
        "id": "msg_1",
        "type": "message",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Hi"},
            {"type": "text", "text": "!"},
        ],
        "stop_reason": "max_tokens",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 6,
        },
    }
    out = anthropic.from_anthropic(answer)
    message = out["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("Hi!", "hmm")
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"]["prompt_tokens"] == 116
    assert out["usage"]["completion_tokens"] == 4
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 100}
    for reason, finish in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ]:
        answer["stop_reason"] = reason
        assert anthropic.from_anthropic(answer)["choices"][0]["finish_reason"] == finish


def test_default_max_tokens():
    small = deployment("claude-3-5-haiku", "h", max_output=4096)
    payload = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert anthropic.to_anthropic(small, payload)["max_tokens"] == 4096
    assert anthropic.to_anthropic(DEP, payload)["max_tokens"] == 8192


# --- Gemini --------------------------------------------------------------------------


def test_gemini_request_shapes():
    payload = {
        "model": "g",
        "messages": [
            {"role": "system", "content": "S"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}},
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {
                        "type": "object",
                        "$schema": "x",
                        "additionalProperties": False,
                        "properties": {"default": {"type": "string", "default": "a"}},
                    },
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "n",
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        },
        "n": 2,
        "seed": 3,
        "extensions": {
            "thinking": {"enabled": True, "budget_tokens": 512},
            "gemini": {"generationConfig": {"topK": 2}},
        },
    }
    body = gemini.to_gemini(payload)
    assert body["systemInstruction"] == {"parts": [{"text": "S"}]}
    assert body["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": "AAA="}
    }
    params = body["tools"][0]["functionDeclarations"][0]["parameters"]
    assert params == {"type": "object", "properties": {"default": {"type": "string"}}}
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert config["thinkingConfig"] == {"thinkingBudget": 512, "includeThoughts": True}
    assert (config["candidateCount"], config["seed"], config["topK"]) == (2, 3, 2)
    with pytest.raises(InvalidRequest) as err:
        gemini.to_gemini({**payload, "extensions": {"gemini": {"contents": []}}})
    assert err.value.param == "extensions.gemini.contents"


def test_gemini_tool_result_needs_known_call():
    payload = {"model": "g", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}
    with pytest.raises(InvalidRequest):
        gemini.to_gemini(payload)


def test_gemini_response():
    answer = {
        "candidates": [
            {
                "content": {
                    "parts": [{"text": "think", "thought": True}, {"text": "A"}, {"text": "B"}]
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 9,
            "candidatesTokenCount": 3,
            "cachedContentTokenCount": 4,
            "thoughtsTokenCount": 5,
        },
    }
    out = gemini.from_gemini(answer)
    message = out["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("AB", "think")
    assert out["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 8,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    blocked = gemini.from_gemini({"promptFeedback": {"blockReason": "SAFETY"}})
    assert blocked["choices"][0]["finish_reason"] == "content_filter"


# --- passthrough ---------------------------------------------------------------------

CREDENTIAL_NAMES = [
    "api_key",
    "API_KEY",
    "apiKey",
    "x-api-key",
    "Authorization",
    "token",
    "access_token",
    "refreshToken",
    "SECRET",
    "client_secret",
    "password",
    "Password",
    "db.password",
]
SAFE_NAMES = [
    "max_tokens",
    "budget_tokens",
    "maxOutputTokens",
    "top_k",
    "metadata",
    "keys",
    "api_version",
    "tokenizer_mode",
    "secretary",
]


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_credential_names(name):
    assert credential_key(name)


@pytest.mark.parametrize("name", SAFE_NAMES)
def test_safe_names(name):
    assert not credential_key(name)


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value.keys(), *(k for v in value.values() for k in _keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


key_names = st.sampled_from(CREDENTIAL_NAMES + SAFE_NAMES) | st.text(max_size=12)
nested = st.recursive(
    st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(key_names, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(key_names.filter(lambda k: k not in {"model"}), nested, max_size=5))
@settings(max_examples=150, deadline=None)
def test_no_credential_key_survives_at_any_depth(extra):
    cleaned = sanitised(extra, frozenset({"model"}), provider="p")
    assert not any(credential_key(k) for k in _keys(cleaned))
    assert all(k in extra for k in cleaned), "nothing is invented"


def test_core_fields_refused_and_merge_wins():
    with pytest.raises(InvalidRequest) as err:
        sanitised({"messages": []}, frozenset({"messages"}), provider="anthropic")
    assert err.value.param == "extensions.anthropic.messages"
    assert merged({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 9}, "d": [1]}) == {
        "a": {"b": 9, "c": 2},
        "d": [1],
    }


# --- error bodies --------------------------------------------------------------------


def test_error_body_mapping():
    client = WireClient(ProviderConfig(id="p", format="anthropic"), "sk-secret-1", {})
    body = json.dumps(
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded sk-secret-1"},
        }
    ).encode()
    failure = client.failure(529, None, body)
    assert (failure.kind, failure.retryable) == ("server_error", True)
    assert "sk-secret-1" not in failure.message and "Overloaded" in failure.message
    assert client.failure(429, "3", b"{}").retry_after == 3.0
    google = json.dumps(
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
            }
        }
    ).encode()
    assert client.failure(400, None, google).kind == "auth_error"
    assert client.failure(400, None, b"{}").kind == "bad_request"
