"""The ``openai`` SDK through the gateway to a real Gemini-format upstream (generateContent and
streamGenerateContent; SPEC §2 thinking and passthrough, §4 responses, streaming, usage)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from support.gateway import GatewayProcess, gateway_config, new_secret, offer
from support.gemini_upstream import FunctionCall, GeminiReply, GeminiUpstream
from support.upstream import Status

FLASH_UP = "gemini-2.5-flash"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def gemini_up() -> Iterator[GeminiUpstream]:
    with GeminiUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def gemini_key() -> str:
    return new_secret("AIza-upstream-")


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    gemini_up: GeminiUpstream,
    gemini_key: str,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    provider = {
        "id": "gemini-up",
        "format": "gemini",
        "base_url": gemini_up.base_url,
        "api_key_env": "GEMINI_UP_KEY",
        "regions": ["us-east-1"],
        "data_policy": "no_training",
        "timeout_s": {"first_byte": 2.0, "total": 4.0, "stall": 2.0},
    }
    caps = ["tools", "vision", "json_object", "json_schema", "reasoning"]
    config = gateway_config(
        [provider],
        [offer("gemini-2.5-flash", "gemini-up", FLASH_UP, capabilities=caps, max_output=65536)],
    )
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("gw-gemini"),
        config=config,
        env={"GEMINI_UP_KEY": gemini_key},
        admin_key=admin_key,
        name="gw-gemini",
    )
    with gateway:
        yield gateway
    gateway.assert_no_secrets(gemini_key, admin_key)
    assert "Traceback" not in gateway.log_text(), gateway.log_tail(80)


@pytest.fixture(autouse=True)
def _fresh(gemini_up: GeminiUpstream) -> None:
    gemini_up.reset()


def _sent(up: GeminiUpstream) -> dict[str, Any]:
    body = up.last_call().json
    assert isinstance(body, dict)
    return body


def _create(gw: GatewayProcess, key: str, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "gemini-2.5-flash")
    with gw.openai(key) as client:
        return client.chat.completions.create(**kwargs)


# --- non-streaming -------------------------------------------------------------------


def test_text_usage_key_and_body(gw, gemini_up, admin_key, gemini_key):
    gemini_up.set_default(
        GeminiReply(text="Hallo!", prompt_tokens=30, candidates_tokens=4, cached_tokens=10)
    )
    resp = _create(
        gw,
        admin_key,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Say hello in German."},
        ],
        max_tokens=64,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        response_format={"type": "json_object"},
    )
    assert resp.choices[0].message.content == "Hallo!"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gemini-2.5-flash"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (30, 4)
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 10
    req = gemini_up.last_call()
    assert req.path == f"/v1beta/models/{FLASH_UP}:generateContent"
    assert req.header("x-goog-api-key") == gemini_key
    assert req.header("authorization") is None
    assert gemini_key not in req.path
    body = req.json
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hello in German."}]}]
    assert body["generationConfig"] == {
        "maxOutputTokens": 64,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
    }
    assert "model" not in body and "messages" not in body


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter")],
)
def test_finish_reasons(gw, gemini_up, admin_key, reason, finish):
    gemini_up.set_default(GeminiReply(text="partial", finish_reason=reason))
    resp = _create(gw, admin_key, messages=[{"role": "user", "content": "go"}])
    assert resp.choices[0].finish_reason == finish


def test_tool_call_round_trip(gw, gemini_up, admin_key):
    gemini_up.set_default(
        GeminiReply(text="", calls=(FunctionCall("get_weather", {"city": "Rome"}),))
    )
    messages: list[Any] = [{"role": "user", "content": "Weather in Rome?"}]
    resp = _create(gw, admin_key, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto")
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].id == "call_0"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Rome"}
    body = _sent(gemini_up)
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"
    assert declaration["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
    }
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    gemini_up.set_default(GeminiReply(text="Sunny in Rome."))
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_0", "content": '{"sky": "clear"}'},
    ]
    resp = _create(gw, admin_key, messages=messages, tools=[WEATHER_TOOL])
    assert resp.choices[0].message.content == "Sunny in Rome."
    contents = _sent(gemini_up)["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "clear"}}}],
    }


def test_thinking_passthrough_and_reasoning(gw, gemini_up, admin_key):
    gemini_up.set_default(
        GeminiReply(text="42", thought="Six sevens.", candidates_tokens=2, thoughts_tokens=30)
    )
    resp = _create(
        gw,
        admin_key,
        messages=[{"role": "user", "content": "6*7?"}],
        extra_body={
            "extensions": {
                "thinking": {"enabled": True, "budget_tokens": 2048},
                "gemini": {
                    "generationConfig": {"topK": 7},
                    "safetySettings": [{"category": "X", "threshold": "Y", "Token": "t"}],
                },
            }
        },
    )
    assert resp.choices[0].message.content == "42"
    assert resp.choices[0].message.model_extra["reasoning_content"] == "Six sevens."
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 32
    assert resp.usage.completion_tokens_details is not None
    assert resp.usage.completion_tokens_details.reasoning_tokens == 30
    config = _sent(gemini_up)["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
    assert config["topK"] == 7
    assert _sent(gemini_up)["safetySettings"] == [{"category": "X", "threshold": "Y"}]


def test_upstream_errors_are_mapped(gw, gemini_up, admin_key):
    error = {
        "error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}
    }
    gemini_up.enqueue(Status(400, body=error))
    with gw.http(admin_key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json={"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]},
        )
    assert resp.status_code == 400, resp.text
    assert "Invalid JSON payload" in resp.json()["error"]["message"]


# --- streaming -----------------------------------------------------------------------


def _stream(gw: GatewayProcess, key: str, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("model", "gemini-2.5-flash")
    with gw.openai(key) as client:
        return list(client.chat.completions.create(stream=True, **kwargs))


def test_stream_text_and_usage(gw, gemini_up, admin_key):
    text = "Streaming from a Gemini upstream works too."
    gemini_up.set_default(
        GeminiReply(
            text=text, thought="hm", prompt_tokens=25, candidates_tokens=8, thoughts_tokens=3
        )
    )
    chunks = _stream(gw, admin_key, messages=[{"role": "user", "content": "stream please"}])
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == text
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert reasoning == "hm"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (25, 11)
    assert final.usage.completion_tokens_details.reasoning_tokens == 3
    assert {c.model for c in chunks} == {"gemini-2.5-flash"}
    req = gemini_up.last_call()
    assert req.path == f"/v1beta/models/{FLASH_UP}:streamGenerateContent?alt=sse"


def test_stream_tool_calls(gw, gemini_up, admin_key):
    gemini_up.set_default(
        GeminiReply(
            text="",
            calls=(
                FunctionCall("get_weather", {"city": "Rome"}),
                FunctionCall("get_weather", {"city": "Lima"}),
            ),
        )
    )
    chunks = _stream(
        gw,
        admin_key,
        messages=[{"role": "user", "content": "Rome and Lima?"}],
        tools=[WEATHER_TOOL],
    )
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    assert [calls[i]["id"] for i in sorted(calls)] == ["call_0", "call_1"]
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == [
        {"city": "Rome"},
        {"city": "Lima"},
    ]
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]


def test_stream_cut_before_finish_is_an_error(gw, gemini_up, admin_key):
    from support.upstream import ScriptedStream

    event = b'data: {"candidates":[{"content":{"parts":[{"text":"half"}]}}]}\r\n\r\n'
    gemini_up.enqueue(ScriptedStream(steps=(event,), end="eof"))
    with (
        gw.http(admin_key) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "gemini-2.5-flash",
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
            },
        ) as resp,
    ):
        text = resp.read().decode()
    assert "event: error" in text
    assert "[DONE]" not in text
