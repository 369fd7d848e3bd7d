"""POST /v1/messages (SPEC §5): the official Anthropic SDK, unchanged, against the gateway in
front of a real OpenAI-format upstream: text, tool use, stop reasons, usage, streaming and
errors, all in Anthropic's shapes."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import anthropic
import pytest

from support.configs import GPT4O_UP
from support.gateway import GatewayProcess
from support.upstream import Reply, ScriptedStream, Status, UpstreamServer

TEXT = "Paris is the capital of France."
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}
TOOL_INPUT = {"city": "Paris", "unit": "celsius"}


def _client(gateway: GatewayProcess, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=20)


def _tool_completion(arguments: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-tool",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": GPT4O_UP,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_abc",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": arguments},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 40,
            "completion_tokens": 12,
            "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
    }


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    body = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": GPT4O_UP,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _tool_stream() -> ScriptedStream:
    arguments = json.dumps(TOOL_INPUT)
    pieces = [arguments[:7], arguments[7:19], arguments[19:]]
    call = {"index": 0, "id": "call_s1", "type": "function"}
    steps = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Checking."}),
        _chunk({"tool_calls": [{**call, "function": {"name": "get_weather", "arguments": ""}}]}),
        *(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces),
        _chunk({}, "tool_calls"),
        b"data: "
        + json.dumps(
            {
                "id": "chatcmpl-s",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": GPT4O_UP,
                "choices": [],
                "usage": {"prompt_tokens": 30, "completion_tokens": 11, "total_tokens": 41},
            }
        ).encode()
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]
    return ScriptedStream(steps=tuple(steps))


# --- non-streaming -----------------------------------------------------------------------


def test_text_message_and_translation(
    gateway: GatewayProcess, upstream_a: UpstreamServer, admin_key: str
):
    upstream_a.set_default(Reply(text=TEXT, prompt_tokens=21, completion_tokens=13))
    with _client(gateway, admin_key) as client:
        raw = client.messages.with_raw_response.create(
            model="gpt-4o",
            max_tokens=200,
            system="Be terse.",
            messages=[{"role": "user", "content": "Capital of France?"}],
            stop_sequences=["END"],
            metadata={"user_id": "user-7"},
            extra_body={"temperature": 0.3},
        )
        message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "gpt-4o"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == TEXT
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 13)
    body = raw.http_response.json()
    assert body["routing_metadata"]["provider"] == "upstream-a"
    assert raw.http_response.headers["x-provider-used"] == "upstream-a"
    sent = upstream_a.last_chat().json
    assert sent["model"] == GPT4O_UP
    assert sent["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert sent["max_tokens"] == 200
    assert sent["stop"] == ["END"]
    assert sent["temperature"] == 0.3
    assert sent["user"] == "user-7"
    assert "metadata" not in sent and "system" not in sent


def test_length_finish_is_max_tokens(gateway, upstream_a, admin_key):
    upstream_a.set_default(Reply(text="Cut sh", finish_reason="length"))
    with _client(gateway, admin_key) as client:
        message = client.messages.create(
            model="gpt-4o", max_tokens=2, messages=[{"role": "user", "content": "Long story"}]
        )
    assert message.stop_reason == "max_tokens"


def test_tool_use_non_streaming(gateway, upstream_a, admin_key):
    upstream_a.enqueue(Status(200, body=_tool_completion(json.dumps(TOOL_INPUT))))
    with _client(gateway, admin_key) as client:
        message = client.messages.create(
            model="gpt-4o",
            max_tokens=300,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        )
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert (tool.id, tool.name, tool.input) == ("call_abc", "get_weather", TOOL_INPUT)
    assert message.usage.input_tokens == 32  # 40 prompt − 8 cache reads
    assert message.usage.cache_read_input_tokens == 8
    assert message.usage.output_tokens == 12
    sent = upstream_a.last_chat().json
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": WEATHER_TOOL["description"],
            },
        }
    ]
    assert sent["tool_choice"] == "required"


def test_tool_result_turn_is_translated(gateway, upstream_a, admin_key):
    with _client(gateway, admin_key) as client:
        message = client.messages.create(
            model="gpt-4o",
            max_tokens=100,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": TOOL_INPUT,
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C sunny"},
                        {"type": "text", "text": "Summarise."},
                    ],
                },
            ],
        )
    assert message.content[0].type == "text"
    sent = upstream_a.last_chat().json
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": json.dumps(TOOL_INPUT, separators=(",", ":")),
                },
            }
        ],
    }
    assert sent["messages"][2] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": "21C sunny",
    }
    assert sent["messages"][3] == {
        "role": "user",
        "content": [{"type": "text", "text": "Summarise."}],
    }


def test_top_k_dropped_with_warning_and_routing_extensions(gateway, upstream_a, admin_key):
    with _client(gateway, admin_key) as client:
        raw = client.messages.with_raw_response.create(
            model="auto",
            max_tokens=50,
            messages=[{"role": "user", "content": "Hi"}],
            extra_body={
                "top_k": 5,
                "routing": {"providers": ["upstream-a"]},
                "gateway_metadata": {"tags": ["anthropic-sdk"]},
            },
        )
    meta = raw.http_response.json()["routing_metadata"]
    assert any(w.startswith("top_k ignored") for w in meta["warnings"]), meta
    sent = upstream_a.last_chat().json
    assert "top_k" not in sent and "extensions" not in sent and "routing" not in sent


# --- streaming ---------------------------------------------------------------------------


def test_streaming_text(gateway, upstream_a, admin_key):
    upstream_a.set_default(Reply(text=TEXT, prompt_tokens=21, completion_tokens=13))
    with (
        _client(gateway, admin_key) as client,
        client.messages.stream(
            model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "Capital?"}]
        ) as stream,
    ):
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert "content_block_delta" in kinds and kinds[-1] == "message_stop"
    assert "".join(b.text for b in final.content if b.type == "text") == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 13
    assert final.model == "gpt-4o"
    sent = upstream_a.last_chat().json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_streaming_tool_use_input_reassembled(gateway, upstream_a, admin_key):
    upstream_a.enqueue(_tool_stream())
    with (
        _client(gateway, admin_key) as client,
        client.messages.stream(
            model="gpt-4o",
            max_tokens=100,
            tools=[WEATHER_TOOL],
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        ) as stream,
    ):
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Checking."
    tool = final.content[1]
    assert (tool.id, tool.name, tool.input) == ("call_s1", "get_weather", TOOL_INPUT)
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 11


def test_stream_cut_mid_answer_is_an_sdk_error(gateway, upstream_a, admin_key):
    steps = (_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Half"}))
    upstream_a.enqueue(ScriptedStream(steps=steps, end="cut"))
    client = _client(gateway, admin_key)
    with (
        client,
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(
            model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "Go"}]
        ) as stream,
    ):
        for _ in stream:
            pass


# --- errors ------------------------------------------------------------------------------


def test_missing_max_tokens_is_400_in_both_shapes(gateway, admin_key):
    with gateway.http() as http:
        resp = http.post(
            "/v1/messages",
            headers={"x-api-key": admin_key, "anthropic-version": "2023-06-01"},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
        )
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "missing_required_parameter"
    assert body["error"]["param"] == "max_tokens"
    assert body["request_id"] == resp.headers["x-request-id"]
    with _client(gateway, admin_key) as client, pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="gpt-4o",
            max_tokens=anthropic.NOT_GIVEN,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "Hi"}],
        )
    assert caught.value.status_code == 400
    assert "max_tokens" in caught.value.message


def test_bad_key_is_sdk_authentication_error(gateway):
    client = _client(gateway, "rg_live_" + uuid.uuid4().hex)
    with client, pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["code"] == "invalid_api_key"


def test_test_key_served_by_mock(gateway):
    key = gateway.create_key("anthropic-test", mode="test")["key"]
    with _client(gateway, key) as client:
        message = client.messages.create(
            model="claude-sonnet-4", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
        )
        with client.messages.stream(
            model="claude-sonnet-4", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            final = stream.get_final_message()
    assert "mock response" in message.content[0].text
    assert message.model == "claude-sonnet-4"
    assert final.content[0].text == message.content[0].text
