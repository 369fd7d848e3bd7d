"""Properties of the secret redactor (``gateway.redaction``): keys planted whole, re-cased,
shortened or cut at random offsets of upstream error texts never survive in any 8-character
run, before or after the cut; text without a fragment of a secret is only cut."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.redaction import MASK, MIN_RUN, fold, redact, windows

KEY_ALPHABET = string.ascii_letters + string.digits + "-_"
LIMIT = 500

keys = st.text(KEY_ALPHABET, min_size=20, max_size=64)
filler = st.text(st.characters(codec="utf-8", exclude_characters="*"), max_size=700)


@st.composite
def echoed(draw: st.DrawFn, key: str) -> str:
    """One way a provider echoes ``key``: whole, re-cased, a prefix, a suffix or a middle."""
    way = draw(st.sampled_from(["whole", "upper", "lower", "prefix", "suffix", "middle"]))
    if way == "upper":
        return key.upper()
    if way == "lower":
        return key.lower()
    if way == "whole":
        return key
    size = draw(st.integers(MIN_RUN, len(key)))
    if way == "prefix":
        return key[:size]
    if way == "suffix":
        return key[-size:]
    start = draw(st.integers(0, len(key) - size))
    return key[start : start + size]


def surviving(text: str, secrets: list[str]) -> list[str]:
    """Every 8-character run of a secret still in ``text`` (ASCII case-insensitively)."""
    folded = fold(text)
    return [
        window
        for secret in secrets
        for window in windows([secret])
        if len(window) == MIN_RUN and window in folded
    ]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secrets=st.lists(keys, min_size=1, max_size=4), base=filler)
def test_planted_fragments_never_survive(
    data: st.DataObject, secrets: list[str], base: str
) -> None:
    text = base
    for _ in range(data.draw(st.integers(1, 6))):
        fragment = data.draw(echoed(data.draw(st.sampled_from(secrets))))
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + fragment + text[at:]
    grams = windows(secrets)
    assert surviving(redact(text, grams), secrets) == []
    cut = redact(text, grams, LIMIT)
    assert len(cut) <= LIMIT
    assert surviving(cut, secrets) == []


@settings(max_examples=300, deadline=None)
@given(secrets=st.lists(keys, min_size=1, max_size=4), text=filler)
def test_text_without_fragments_is_only_cut(secrets: list[str], text: str) -> None:
    grams = windows(secrets)
    folded = fold(text)
    if any(g in folded for g in grams):  # a random text that happens to hold a fragment
        return
    assert redact(text, grams) == text
    assert redact(text, grams, LIMIT) == text[:LIMIT]


def test_a_key_near_the_cut_is_masked_not_cut() -> None:
    """The issue's case: a key at character 485 lost its tail to the cut and kept its head."""
    key = "sk-proj-" + "Ab3" * 16
    text = "x" * 485 + key + " was rejected"
    out = redact(text, windows([key]), LIMIT)
    assert out == ("x" * 485 + MASK + " was rejected")[:LIMIT]


def test_shortened_and_upper_cased_echoes_are_masked() -> None:
    key = "sk-proj-abcdEFGH12345678wxyz"
    grams = windows([key])
    shortened = "Incorrect API key provided: sk-proj-abcd********wxyz."
    assert redact(shortened, grams) == f"Incorrect API key provided: {MASK}********wxyz."
    assert redact(f"key {key.upper()}!", grams) == f"key {MASK}!"
    assert redact(f"key {key[:20]}…", grams) == f"key {MASK}…"


def test_a_short_secret_is_matched_whole() -> None:
    assert redact("the key abc123 failed", windows(["ABC123"])) == f"the key {MASK} failed"
