"""The ``openai`` SDK through the gateway to a real Anthropic Messages-format upstream
(SPEC §2 thinking and passthrough, §4 responses, streaming, usage and prompt caching)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from support.anthropic_upstream import AnthropicReply, AnthropicUpstream, ToolUse, anthropic_error
from support.gateway import GatewayProcess, gateway_config, new_secret, offer
from support.upstream import Status

SONNET_UP = "claude-sonnet-4-20250514"
HAIKU_UP = "claude-3-5-haiku-20241022"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def anthropic_up() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def anthropic_key() -> str:
    return new_secret("sk-ant-upstream-")


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_up: AnthropicUpstream,
    anthropic_key: str,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    provider = {
        "id": "anthro-up",
        "format": "anthropic",
        "base_url": anthropic_up.base_url,
        "api_key_env": "ANTHRO_UP_KEY",
        "regions": ["us-east-1"],
        "data_policy": "no_training",
        "timeout_s": {"first_byte": 2.0, "total": 4.0, "stall": 2.0},
    }
    caps = ["tools", "vision", "reasoning"]
    config = gateway_config(
        [provider],
        [
            offer("claude-sonnet-4", "anthro-up", SONNET_UP, capabilities=caps, max_output=64000),
            offer("claude-3-5-haiku", "anthro-up", HAIKU_UP, capabilities=caps, max_output=8192),
        ],
    )
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("gw-anthropic"),
        config=config,
        env={"ANTHRO_UP_KEY": anthropic_key},
        admin_key=admin_key,
        name="gw-anthropic",
    )
    with gateway:
        yield gateway
    gateway.assert_no_secrets(anthropic_key, admin_key)
    assert "Traceback" not in gateway.log_text(), gateway.log_tail(80)


@pytest.fixture(autouse=True)
def _fresh(anthropic_up: AnthropicUpstream) -> None:
    anthropic_up.reset()


def _sent(up: AnthropicUpstream) -> dict[str, Any]:
    body = up.last_message().json
    assert isinstance(body, dict)
    return body


# --- non-streaming -------------------------------------------------------------------


def test_text_stop_reason_usage_and_headers(gw, anthropic_up, admin_key, anthropic_key):
    anthropic_up.set_default(
        AnthropicReply(
            text="Bonjour!", input_tokens=20, cache_read=30, cache_creation=5, output_tokens=7
        )
    )
    with gw.openai(admin_key) as client:
        resp = client.chat.completions.create(
            model="claude-sonnet-4",
            messages=[
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Say hello in French."},
            ],
            max_tokens=50,
            temperature=0.2,
            stop="END",
            user="end-user-9",
        )
    assert resp.choices[0].message.content == "Bonjour!"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "claude-sonnet-4"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (55, 7)
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 30
    req = anthropic_up.last_message()
    assert req.path == "/v1/messages"
    assert req.header("x-api-key") == anthropic_key
    assert req.header("anthropic-version") == "2023-06-01"
    assert req.header("authorization") is None
    body = req.json
    assert body["model"] == SONNET_UP
    assert body["system"] == [{"type": "text", "text": "Be terse."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Say hello in French."}]}
    ]
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0.2
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "end-user-9"}
    assert "stream" not in body or body["stream"] is False
    assert "cache_control" not in json.dumps(body), "short prompt must not be cached"


def test_default_max_tokens_from_offer(gw, anthropic_up, admin_key):
    with gw.openai(admin_key) as client:
        client.chat.completions.create(
            model="claude-3-5-haiku", messages=[{"role": "user", "content": "hi"}]
        )
    body = _sent(anthropic_up)
    assert body["model"] == HAIKU_UP
    assert body["max_tokens"] == 8192


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_stop_reasons(gw, anthropic_up, admin_key, stop_reason, finish):
    anthropic_up.set_default(AnthropicReply(text="partial", stop_reason=stop_reason))
    with gw.openai(admin_key) as client:
        resp = client.chat.completions.create(
            model="claude-sonnet-4", messages=[{"role": "user", "content": "go"}]
        )
    assert resp.choices[0].finish_reason == finish


def test_tool_call_round_trip(gw, anthropic_up, admin_key):
    anthropic_up.set_default(
        AnthropicReply(
            text="",
            tools=(ToolUse("toolu_01", "get_weather", {"city": "Paris"}),),
            stop_reason="tool_use",
        )
    )
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with gw.openai(admin_key) as client:
        resp = client.chat.completions.create(
            model="claude-sonnet-4", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
        )
        choice = resp.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls
        assert calls is not None and len(calls) == 1
        assert calls[0].id == "toolu_01"
        assert calls[0].function.name == "get_weather"
        assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
        body = _sent(anthropic_up)
        assert body["tools"] == [
            {
                "name": "get_weather",
                "input_schema": WEATHER_TOOL["function"]["parameters"],
                "description": "Weather for a city",
            }
        ]
        assert body["tool_choice"] == {"type": "any"}
        # Second turn: the assistant's call and two tool results go back.
        anthropic_up.set_default(AnthropicReply(text="It is sunny."))
        messages += [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "toolu_01", "content": "sunny"},
            {"role": "tool", "tool_call_id": "toolu_02", "content": "warm"},
        ]
        resp = client.chat.completions.create(
            model="claude-sonnet-4", messages=messages, tools=[WEATHER_TOOL]
        )
    assert resp.choices[0].message.content == "It is sunny."
    sent = _sent(anthropic_up)["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "get_weather",
                "input": {"city": "Paris"},
            }
        ],
    }
    assert sent[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": "warm"},
        ],
    }


def test_cache_control_only_above_threshold(gw, anthropic_up, admin_key):
    long_system = "You are a meticulous assistant. " * 400  # ~2,400+ tokens
    with gw.openai(admin_key) as client:
        for model in ("claude-sonnet-4", "claude-3-5-haiku"):
            client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": long_system},
                    {"role": "user", "content": "hi"},
                ],
            )
        sonnet, haiku = (r.json for r in anthropic_up.message_requests()[-2:])
        assert sonnet["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert haiku["system"][-1]["cache_control"] == {"type": "ephemeral"}
        # ~1,300 tokens: above Sonnet 4's 1,024, below Haiku 3.5's 2,048.
        mid_system = "You are a meticulous assistant. " * 200
        for model in ("claude-sonnet-4", "claude-3-5-haiku"):
            client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": mid_system},
                    {"role": "user", "content": "hi"},
                ],
            )
        sonnet, haiku = (r.json for r in anthropic_up.message_requests()[-2:])
        assert "cache_control" in sonnet["system"][-1]
        assert "cache_control" not in json.dumps(haiku)


def test_upstream_errors_are_mapped(gw, anthropic_up, admin_key):
    anthropic_up.enqueue(
        Status(400, body=anthropic_error("invalid_request_error", "prompt is too long"))
    )
    with gw.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json={"model": "claude-sonnet-4", "messages": [{"role": "user", "content": "x"}]},
        )
    assert resp.status_code == 400, resp.text
    assert "prompt is too long" in resp.json()["error"]["message"]
    anthropic_up.set_default(Status(529, body=anthropic_error("overloaded_error", "Overloaded")))
    with gw.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json={"model": "claude-sonnet-4", "messages": [{"role": "user", "content": "x"}]},
        )
    assert resp.status_code == 502, resp.text
    assert resp.headers.get("x-error-retryable") == "true"


def test_thinking_and_passthrough(gw, anthropic_up, admin_key):
    anthropic_up.set_default(AnthropicReply(text="42", thinking="Let me think."))
    with gw.openai(admin_key) as client:
        resp = client.chat.completions.create(
            model="claude-sonnet-4",
            messages=[{"role": "user", "content": "6*7?"}],
            max_tokens=2000,
            extra_body={
                "extensions": {
                    "thinking": {"enabled": True, "budget_tokens": 4000},
                    "anthropic": {"top_k": 5, "metadata": {"api_key": "leak", "user_id": "u"}},
                }
            },
        )
    assert resp.choices[0].message.content == "42"
    assert resp.choices[0].message.model_extra["reasoning_content"] == "Let me think."
    body = _sent(anthropic_up)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4000}
    assert body["max_tokens"] > 4000
    assert body["top_k"] == 5
    assert body["metadata"] == {"user_id": "u"}
    assert "extensions" not in body


def test_passthrough_core_field_refused(gw, anthropic_up, admin_key):
    with gw.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json={
                "model": "claude-sonnet-4",
                "messages": [{"role": "user", "content": "x"}],
                "extensions": {"anthropic": {"messages": []}},
            },
        )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "extensions.anthropic.messages"


# --- streaming -----------------------------------------------------------------------


def test_stream_text_and_usage(gw, anthropic_up, admin_key):
    text = "Streaming from an Anthropic upstream works."
    anthropic_up.set_default(
        AnthropicReply(text=text, input_tokens=40, cache_read=8, output_tokens=11)
    )
    with gw.openai(admin_key) as client:
        stream = client.chat.completions.create(
            model="claude-sonnet-4",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
        )
        chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == text
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (48, 11)
    assert final.usage.prompt_tokens_details is not None
    assert final.usage.prompt_tokens_details.cached_tokens == 8
    assert {c.model for c in chunks} == {"claude-sonnet-4"}
    assert len({c.id for c in chunks}) == 1
    assert _sent(anthropic_up)["stream"] is True


def test_stream_tool_calls_reassembled(gw, anthropic_up, admin_key):
    anthropic_up.set_default(
        AnthropicReply(
            text="Checking.",
            tools=(
                ToolUse("toolu_a", "get_weather", {"city": "Paris", "unit": "C"}),
                ToolUse("toolu_b", "get_weather", {"city": "Oslo"}),
            ),
            stop_reason="tool_use",
        )
    )
    with gw.openai(admin_key) as client:
        chunks = list(
            client.chat.completions.create(
                model="claude-sonnet-4",
                messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
                tools=[WEATHER_TOOL],
                stream=True,
            )
        )
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    assert [calls[i]["id"] for i in sorted(calls)] == ["toolu_a", "toolu_b"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "C"}
    assert json.loads(calls[1]["arguments"]) == {"city": "Oslo"}
    assert {c["name"] for c in calls.values()} == {"get_weather"}
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]


# --- the anthropic SDK through /v1/messages to this Anthropic-format upstream ---------


def _anthropic_sdk(gw: GatewayProcess, key: str) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=gw.base_url, api_key=key, max_retries=0, timeout=20)


def test_messages_sdk_plain_text_and_usage(gw, anthropic_up, admin_key):
    text = "Anthropic in, Anthropic out, through the router."
    anthropic_up.set_default(
        AnthropicReply(text=text, input_tokens=30, cache_read=6, output_tokens=9)
    )
    message = _anthropic_sdk(gw, admin_key).messages.create(
        model="claude-sonnet-4",
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello"}],
    )
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 9
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == 36
    sent = _sent(anthropic_up)
    assert sent["model"] == SONNET_UP
    assert sent["max_tokens"] == 256
    assert sent["system"][0]["text"] == "Be brief."


def test_messages_sdk_streams_tool_use_reassembled(gw, anthropic_up, admin_key):
    anthropic_up.set_default(
        AnthropicReply(
            text="Checking.",
            tools=(ToolUse("toolu_09", "get_weather", {"city": "Oslo", "unit": "C"}),),
            stop_reason="tool_use",
            input_tokens=21,
            output_tokens=17,
        )
    )
    tools = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    with _anthropic_sdk(gw, admin_key).messages.stream(
        model="claude-sonnet-4",
        max_tokens=512,
        tools=tools,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["text", "tool_use"]
    assert final.content[0].text == "Checking."
    tool = final.content[1]
    assert (tool.id, tool.name, tool.input) == (
        "toolu_09",
        "get_weather",
        {"city": "Oslo", "unit": "C"},
    )
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 17
    assert _sent(anthropic_up)["stream"] is True
