"""Native token counting against the reference ``tiktoken``, offline from our bundled files.

``tiktoken`` is pointed (``TIKTOKEN_CACHE_DIR``) at the vocabularies compiled into the core,
gunzipped under the names it caches downloads by, before any encoding is created: no network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.native import corpus

corpus.offline_tiktoken_cache()

import tiktoken  # noqa: E402  (after the cache is in place)

from gateway import _router_core as core  # noqa: E402

ENCODINGS = corpus.ENCODINGS
OPENAI_FAMILIES = ("gpt-4o", "gpt-4.1", "o-series", "gpt-5", "gpt-oss", "text-embedding-3")
PINNED_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}


@pytest.fixture(scope="module", params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> tiktoken.Encoding:
    return tiktoken.get_encoding(request.param)


def reference(enc: tiktoken.Encoding, text: str) -> int:
    return len(enc.encode(text, disallowed_special=()))


def test_bundled_vocabularies_are_tiktokens() -> None:
    for name in ENCODINGS:
        blob = gzip.decompress(core.vocabulary_gz(name))
        assert hashlib.sha256(blob).hexdigest() == PINNED_SHA256[name]
        on_disk = Path(corpus.DATA / f"{name}.tiktoken.gz").read_bytes()
        assert gzip.decompress(on_disk) == blob


def test_corpus_counts_equal_tiktoken(encoding: tiktoken.Encoding) -> None:
    texts = corpus.build_corpus()
    assert len(texts) >= 10_000
    expected = [len(t) for t in encoding.encode_ordinary_batch(list(texts), num_threads=1)]
    got = [core.count_tokens(t, encoding=encoding.name) for t in texts]  # type: ignore[arg-type]
    wrong = [(t, e, g) for t, e, g in zip(texts, expected, got, strict=True) if e != g]
    assert not wrong, wrong[:5]


def test_repeated_counts_are_stable(encoding: tiktoken.Encoding) -> None:
    """Counts go through a per-thread piece cache: warm, reversed and interleaved with the
    other encoding, they stay equal to tiktoken's."""
    texts = list(corpus.build_corpus())[:3000]
    expected = [reference(encoding, t) for t in texts]
    for order in (texts, texts[::-1]):
        got = {t: core.count_tokens(t, encoding=encoding.name) for t in order}  # type: ignore[arg-type]
        for t in order[:50]:
            core.count_tokens(
                t, encoding="cl100k_base" if encoding.name == "o200k_base" else "o200k_base"
            )
        assert [got[t] for t in texts] == expected


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | st.text(st.sampled_from("aA1 '\n\r\t.é中😀\u0301ſ/"), max_size=60))
def test_random_text_equals_tiktoken(text: str) -> None:
    for name in ENCODINGS:
        enc = tiktoken.get_encoding(name)
        assert core.count_tokens(text, encoding=name) == reference(enc, text)  # type: ignore[arg-type]


def test_special_token_text_is_ordinary_text() -> None:
    enc = tiktoken.get_encoding("o200k_base")
    text = "<|endoftext|> and <|im_start|>"
    assert core.count_tokens(text, encoding="o200k_base") == reference(enc, text)
    assert core.count_tokens(text, encoding="o200k_base") > 2


def test_long_inputs_release_the_gil_and_stay_exact() -> None:
    enc = tiktoken.get_encoding("cl100k_base")
    for text in ["a" * 100_000, "hello world " * 10_000, "é中" * 20_000]:
        assert core.count_tokens(text, encoding="cl100k_base") == reference(enc, text)


def test_unknown_names_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        core.count_tokens("x", encoding="p50k_base")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown family"):
        core.estimate_tokens("x", family="gpt-2")
    assert core.ENCODINGS == ENCODINGS
    assert set(OPENAI_FAMILIES) < set(core.FAMILIES)


def test_concatenation_is_not_bounded_by_sum_plus_one() -> None:
    # Checked, not assumed: BPE merges are not additive. `count(a + b) <= count(a) +
    # count(b) + 1` is false (random lowercase pairs reach +2), so prompt bounds never add
    # counts of split text; each message's text is counted whole.
    a, b = "fjzantdjska", "iyipmbnoaf"
    enc = tiktoken.get_encoding("o200k_base")
    whole = core.count_tokens(a + b, encoding="o200k_base")
    assert whole == reference(enc, a + b)
    assert (
        whole
        == core.count_tokens(a, encoding="o200k_base")
        + core.count_tokens(b, encoding="o200k_base")
        + 2
    )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_concatenation_never_exceeds_bytes(a: str, b: str) -> None:
    for name in ENCODINGS:
        assert core.count_tokens(a + b, encoding=name) <= len((a + b).encode())  # type: ignore[arg-type]


# The estimator: an upper bound for every OpenAI family on the corpus and on random text.


def exact_for(family: str, text: str) -> int:
    name = "cl100k_base" if family == "text-embedding-3" else "o200k_base"
    return core.count_tokens(text, encoding=name)  # type: ignore[arg-type]


def test_estimator_bounds_the_corpus() -> None:
    texts = corpus.build_corpus()
    for family in core.FAMILIES:
        low = [t for t in texts if core.estimate_tokens(t, family=family) < exact_for(family, t)]
        if family in OPENAI_FAMILIES:
            assert not low, (family, low[:3])
        assert all(core.estimate_tokens(t, family=family) <= len(t.encode()) for t in texts)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200), st.sampled_from(OPENAI_FAMILIES))
def test_estimator_bounds_random_text(text: str, family: str) -> None:
    assert core.estimate_tokens(text, family=family) >= exact_for(family, text)


# Chat framing.

message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "developer"]), "content": st.text()},
    optional={"name": st.from_regex(r"[a-zA-Z_]{1,12}", fullmatch=True)},
)


def chat_rule(enc: tiktoken.Encoding, messages: list[dict[str, str]]) -> int:
    """The OpenAI cookbook's ``num_tokens_from_messages``."""
    n = 3
    for m in messages:
        n += 3
        for key, value in m.items():
            n += reference(enc, value) + (1 if key == "name" else 0)
    return n


@settings(max_examples=200, deadline=None)
@given(st.lists(message, max_size=6))
def test_count_chat_is_the_sum_of_the_per_message_rule(messages: list[dict[str, str]]) -> None:
    raw = json.dumps(messages).encode()
    for name in ENCODINGS:
        expected = chat_rule(tiktoken.get_encoding(name), messages)
        assert core.count_chat(raw, encoding=name) == expected  # type: ignore[arg-type]


def test_count_chat_known_values() -> None:
    # Billed prompt_tokens of gpt-4o for these messages (OpenAI cookbook example values).
    hello = b'[{"role": "user", "content": "hello world"}]'
    assert core.count_chat(hello, encoding="o200k_base") == 3 + 1 + 2 + 3
    named = b'[{"role": "system", "name": "example_user", "content": "New synergies"}]'
    enc = tiktoken.get_encoding("o200k_base")
    assert core.count_chat(named, encoding="o200k_base") == (
        3 + 1 + reference(enc, "example_user") + 1 + reference(enc, "New synergies") + 3
    )


def image(detail: str | None = None, **size: int) -> dict[str, Any]:
    inner: dict[str, Any] = {"url": "https://x/y.png"}
    if detail:
        inner["detail"] = detail
    inner.update(size)
    return {"type": "image_url", "image_url": inner}


@pytest.mark.parametrize(
    ("part", "tokens"),
    [
        (image("low"), 85),
        (image("low", width=4096, height=4096), 85),
        (image(), 765),
        (image("high"), 765),
        (image("auto", width=1024, height=1024), 765),
        (image("high", width=2048, height=4096), 1105),
        (image("high", width=512, height=512), 255),
        (image("high", width=100, height=100), 255),
        (image("high", width=800, height=600), 85 + 170 * 4),
        ({"type": "image_url", "image_url": {"url": "u"}, "width": 2048, "height": 4096}, 1105),
    ],
)
def test_image_tiles(part: dict[str, Any], tokens: int) -> None:
    with_image = [{"role": "user", "content": [part]}]
    assert core.count_chat(json.dumps(with_image).encode(), encoding="o200k_base") == (
        3 + 1 + tokens + 3
    )


def tools_rule(enc: tiktoken.Encoding, tools: list[dict[str, Any]], func_init: int) -> int:
    """The cookbook's ``num_tokens_for_tools`` (its function part)."""
    n = 0
    for tool in tools:
        f = tool["function"]
        n += func_init
        n += reference(enc, f"{f['name']}:{f.get('description', '').removesuffix('.')}")
        props = f.get("parameters", {}).get("properties", {})
        if props:
            n += 3
            for key, p in props.items():
                n += 3
                if "enum" in p:
                    n -= 3
                    n += sum(3 + reference(enc, item) for item in p["enum"])
                desc = p.get("description", "").removesuffix(".")
                n += reference(enc, f"{key}:{p['type']}:{desc}")
    return n + 12 if tools else 0


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city, e.g. Paris."},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}


@pytest.mark.parametrize(("name", "func_init"), [("o200k_base", 7), ("cl100k_base", 10)])
def test_tools_formula(name: str, func_init: int) -> None:
    enc = tiktoken.get_encoding(name)
    messages = [{"role": "user", "content": "What's the weather like in Paris?"}]
    tools = [WEATHER, {"type": "function", "function": {"name": "noop", "description": "x"}}]
    got = core.count_chat(
        json.dumps(messages).encode(),
        encoding=name,  # type: ignore[arg-type]
        tools_json=json.dumps(tools).encode(),
    )
    assert got == chat_rule(enc, messages) + tools_rule(enc, tools, func_init)


@pytest.mark.parametrize(
    ("raw", "match"),
    [(b"{}", "array"), (b"[1]", "object"), (b"[", "not valid JSON")],
)
def test_count_chat_rejects_bad_json(raw: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        core.count_chat(raw, encoding="o200k_base")


# analyze() and count_body_tokens().


def test_analyze_prompt_tokens_is_the_exact_chat_count() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "name": "ann", "content": [{"type": "text", "text": "Hi there, 2+2?"}]},
    ]
    body = json.dumps({"model": "auto", "messages": messages, "tools": [WEATHER]}).encode()
    a = core.analyze(body)
    assert a.prompt_tokens_exact is True
    expected = core.count_chat(
        json.dumps(messages).encode(),
        encoding="o200k_base",
        tools_json=json.dumps([WEATHER]).encode(),
    )
    assert a.prompt_tokens == expected
    assert core.count_body_tokens(body, family="gpt-4o") == (expected, True)


def test_huge_bodies_get_the_bound() -> None:
    text = "lorem ipsum dolor sit amet " * 12_000
    body = json.dumps({"messages": [{"role": "user", "content": text}]}).encode()
    a = core.analyze(body)
    assert a.prompt_tokens_exact is False
    exact = core.count_chat(
        json.dumps([{"role": "user", "content": text}]).encode(), encoding="o200k_base"
    )
    assert a.prompt_tokens >= exact
    tokens, is_exact = core.count_body_tokens(body, family="claude")
    assert not is_exact and tokens >= exact


@pytest.mark.parametrize("family", ["claude", "gemini", "llama", "mistral", "deepseek", "qwen"])
def test_other_families_scale_the_exact_count(family: str) -> None:
    body = b'{"messages": [{"role": "user", "content": "Summarise the attached report."}]}'
    exact, _ = core.count_body_tokens(body, family="gpt-4o")
    tokens, is_exact = core.count_body_tokens(body, family=family)
    assert not is_exact
    assert exact <= tokens <= math.ceil(exact * 1.5)
