"""Native request analysis: robust on any bytes, capabilities and sizes from generated bodies."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import _router_core as core

text = st.text(max_size=40)
text_part = text.map(lambda t: {"type": "text", "text": t})
image_part = st.just({"type": "image_url", "image_url": {"url": "https://x/y.png"}})
audio_part = st.just({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}})
content = text | st.lists(text_part | image_part | audio_part, max_size=4)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": content},
    optional={"name": st.from_regex(r"[a-z]{1,8}", fullmatch=True)},
)
tool = st.from_regex(r"[a-z_]{1,10}", fullmatch=True).map(
    lambda n: {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "auto", "messages": draw(st.lists(message, max_size=5))}
    if draw(st.booleans()):
        body["tools"] = draw(st.lists(tool, max_size=3))
    if draw(st.booleans()):
        body["response_format"] = {
            "type": draw(st.sampled_from(["text", "json_object", "json_schema"]))
        }
    if draw(st.booleans()):
        body["extensions"] = {"thinking": {"enabled": draw(st.booleans())}}
    if draw(st.booleans()):
        body["stream"] = draw(st.booleans())
    return body


def expected_caps(body: dict[str, Any]) -> int:
    caps = 0
    for m in body["messages"]:
        if isinstance(m["content"], list):
            kinds = {p["type"] for p in m["content"]}
            caps |= core.CAP_VISION if "image_url" in kinds else 0
            caps |= core.CAP_AUDIO if "input_audio" in kinds else 0
    caps |= core.CAP_TOOLS if body.get("tools") else 0
    fmt = body.get("response_format", {}).get("type")
    caps |= {"json_object": core.CAP_JSON_OBJECT, "json_schema": core.CAP_JSON_SCHEMA}.get(fmt, 0)
    if body.get("extensions", {}).get("thinking", {}).get("enabled") is True:
        caps |= core.CAP_REASONING
    return caps


def text_of(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for m in body["messages"]:
        parts.append(m.get("name", ""))
        if isinstance(m["content"], str):
            parts.append(m["content"])
        else:
            parts.extend(p["text"] for p in m["content"] if p["type"] == "text")
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(bodies())
def test_generated_bodies(body: dict[str, Any]) -> None:
    raw = json.dumps(body, ensure_ascii=bool(body.get("stream"))).encode()
    a = core.analyze(raw)
    assert a.required_capabilities == expected_caps(body)
    assert a.message_count == len(body["messages"])
    assert a.stream is (body.get("stream") is True)
    assert a.max_output_tokens is None
    text = text_of(body)
    assert a.prompt_chars >= len(text)
    assert a.prompt_tokens >= math.ceil(len(text.encode()) / 4)
    if not body.get("tools"):
        assert a.prompt_chars == len(text)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    try:
        result = core.analyze(raw)
    except ValueError as exc:
        assert "JSON" in str(exc) or "must be" in str(exc)
    else:
        assert isinstance(result, core.Analysis)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda kids: (
            st.lists(kids, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "messages",
                        "content",
                        "type",
                        "text",
                        "tools",
                        "max_tokens",
                        "stream",
                        "name",
                        "response_format",
                    ]
                ),
                kids,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    with contextlib.suppress(ValueError):  # anything else (or a crash) fails the test
        core.analyze(json.dumps(value).encode())


def test_invalid_json_names_the_position() -> None:
    with pytest.raises(ValueError, match=r"line 2 column \d+ \(byte \d+\)"):
        core.analyze(b'{"messages": [],\n "stream": tru}')
    with pytest.raises(ValueError, match="JSON object"):
        core.analyze(b"[1, 2]")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 10}, 10),
        ({"max_completion_tokens": 7, "max_tokens": 10}, 7),
        ({"max_tokens": None}, None),
        ({}, None),
    ],
)
def test_max_output_tokens(body: dict[str, Any], expected: int | None) -> None:
    assert core.analyze(json.dumps(body).encode()).max_output_tokens == expected


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_bad_max_tokens_names_the_field(bad: object) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        core.analyze(json.dumps({"max_tokens": bad}).encode())


def test_images_raise_the_estimate() -> None:
    plain = core.analyze(b'{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}')
    image = core.analyze(
        b'{"messages":[{"role":"user","content":[{"type":"text","text":"hi"},'
        b'{"type":"image_url","image_url":{"url":"u"}}]}]}'
    )
    assert image.prompt_tokens >= plain.prompt_tokens + 85
    assert image.required_capabilities == core.CAP_VISION


def test_module_exports() -> None:
    assert core.__version__.count(".") == 2
    assert core.CONSTRAINT_NAMES[0] == "model" and len(core.CONSTRAINT_NAMES) == 14
    caps = [
        core.CAP_TOOLS,
        core.CAP_VISION,
        core.CAP_JSON_OBJECT,
        core.CAP_JSON_SCHEMA,
        core.CAP_AUDIO,
        core.CAP_REASONING,
        core.CAP_EMBEDDINGS,
    ]
    assert all(c and c & (c - 1) == 0 for c in caps) and len(set(caps)) == len(caps)
    assert set(core.__all__) == {n for n in dir(core) if not n.startswith("_")} | {"__version__"}


# Prompt-task classification. Filler words carry no signal of any task.
FILLER = ["the", "blue", "river", "table", "morning", "garden", "quiet", "window", "friend"]
SIGNALS = {
    "code": ["```python\nx = 1\n```", "fix this bug", "it does not compile", "refactor this"],
    "math": ["prove that", "solve for x", "the integral of", "$$\\frac{a}{b}$$", "12*7+3"],
    "extraction": ["extract the names", "classify this", "categorize these", "list all items"],
    "summarization": ["summarize this", "tl;dr", "the key points of", "summarise it"],
    "creative": ["write a poem", "write a story", "imagine a world", "a work of fiction"],
}
filler = st.lists(st.sampled_from(FILLER), max_size=30).map(" ".join)


def user_body(content: Any, **extra: Any) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": content}], **extra}).encode()


def test_tasks_export() -> None:
    assert core.TASKS == (
        "chat",
        "code",
        "math",
        "extraction",
        "summarization",
        "creative",
        "vision",
    )


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SIGNALS)), st.data(), filler, filler)
def test_detects_each_task(task: str, data: st.DataObject, before: str, after: str) -> None:
    signal = data.draw(st.sampled_from(SIGNALS[task]))
    a = core.analyze(user_body(f"{before} {signal} {after}"))
    assert core.TASKS[a.task] == task
    assert 0.0 <= a.difficulty <= 1.0


@settings(max_examples=100, deadline=None)
@given(filler)
def test_chat_vision_and_json_format(words: str) -> None:
    assert core.TASKS[core.analyze(user_body(words)).task] == "chat"
    image = [
        {"type": "text", "text": f"{words} fix this bug"},
        {"type": "image_url", "image_url": {"url": "u"}},
    ]
    assert core.TASKS[core.analyze(user_body(image)).task] == "vision"
    fmt = {"response_format": {"type": "json_object"}}
    assert core.TASKS[core.analyze(user_body(words, **fmt)).task] == "extraction"


@settings(max_examples=300, deadline=None)
@given(bodies())
def test_task_and_difficulty_in_range(body: dict[str, Any]) -> None:
    a = core.analyze(json.dumps(body).encode())
    assert 0 <= a.task < len(core.TASKS)
    assert 0.0 <= a.difficulty <= 1.0
    assert (core.TASKS[a.task] == "vision") == bool(a.required_capabilities & core.CAP_VISION)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | filler, st.sampled_from(["step by step", "Think step by step."]))
def test_step_by_step_never_lowers_difficulty(prompt: str, marker: str) -> None:
    base = core.analyze(user_body(prompt)).difficulty
    more = core.analyze(user_body(f"{prompt} {marker}")).difficulty
    assert 0.0 <= base <= more <= 1.0
