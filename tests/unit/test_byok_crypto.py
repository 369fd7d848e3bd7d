"""Properties of BYOK encryption at rest and of masking (SPEC §8)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.providers.byok_crypto import (
    FULLY_MASKED,
    NONCE_BYTES,
    VERSION,
    ByokCipher,
    DecryptError,
    derive_workspace_key,
    mask,
    mask_prefix,
)

MASTERS = st.binary(min_size=32, max_size=32)
IDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=40)
SECRETS = st.text(min_size=1, max_size=300)
KEYLIKE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=200)
PREFIXES = st.sampled_from(["", "sk-", "sk-proj-", "sk-ant-", "gsk_", "xai-", "AIza", "fw_"])
FAST = settings(max_examples=200, deadline=None)


@FAST
@given(MASTERS, IDS, IDS, SECRETS)
def test_round_trip(master: bytes, workspace: str, provider: str, secret: str) -> None:
    cipher = ByokCipher(master)
    token = cipher.encrypt(workspace, provider, secret)
    assert cipher.decrypt(workspace, provider, token) == secret
    assert ByokCipher(master).decrypt(workspace, provider, token) == secret  # a fresh process


@FAST
@given(MASTERS, IDS, IDS, SECRETS, st.data())
def test_a_moved_or_rekeyed_ciphertext_does_not_open(
    master: bytes, workspace: str, provider: str, secret: str, data: st.DataObject
) -> None:
    token = ByokCipher(master).encrypt(workspace, provider, secret)
    other_ws = data.draw(IDS.filter(lambda w: w != workspace), label="workspace")
    other_pv = data.draw(IDS.filter(lambda p: p != provider), label="provider")
    other_master = data.draw(MASTERS.filter(lambda m: m != master), label="master")
    with pytest.raises(DecryptError):
        ByokCipher(master).decrypt(other_ws, provider, token)
    with pytest.raises(DecryptError):
        ByokCipher(master).decrypt(workspace, other_pv, token)
    with pytest.raises(DecryptError):
        ByokCipher(other_master).decrypt(workspace, provider, token)


@FAST
@given(MASTERS, SECRETS, st.data())
def test_a_tampered_ciphertext_does_not_open(
    master: bytes, secret: str, data: st.DataObject
) -> None:
    token = ByokCipher(master).encrypt("ws", "openai", secret)
    raw = bytearray(base64.b64decode(token))
    index = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[index] ^= data.draw(st.integers(1, 255), label="flip")
    with pytest.raises(DecryptError):
        ByokCipher(master).decrypt("ws", "openai", base64.b64encode(bytes(raw)).decode())


def test_malformed_tokens_are_decrypt_errors() -> None:
    cipher = ByokCipher(b"k" * 32)
    for token in ("", "not base64!", base64.b64encode(b"\x01short").decode(), "é"):
        with pytest.raises(DecryptError):
            cipher.decrypt("ws", "openai", token)


@FAST
@given(MASTERS, IDS, IDS, KEYLIKE)
def test_the_stored_form_never_holds_the_key(
    master: bytes, workspace: str, provider: str, secret: str
) -> None:
    token = ByokCipher(master).encrypt(workspace, provider, secret)
    raw = base64.b64decode(token)
    assert raw[0] == VERSION
    assert len(raw) == 1 + NONCE_BYTES + len(secret.encode()) + 16  # version, nonce, tag
    assert secret not in token
    assert secret.encode() not in raw


@FAST
@given(MASTERS, IDS, SECRETS)
def test_nonces_are_fresh(master: bytes, workspace: str, secret: str) -> None:
    cipher = ByokCipher(master)
    assert cipher.encrypt(workspace, "p", secret) != cipher.encrypt(workspace, "p", secret)


@FAST
@given(MASTERS, IDS, IDS)
def test_each_workspace_has_its_own_key(master: bytes, a: str, b: str) -> None:
    assert len(derive_workspace_key(master, a)) == 32
    assert (derive_workspace_key(master, a) == derive_workspace_key(master, b)) == (a == b)


@settings(max_examples=500, deadline=None)
@given(PREFIXES, st.text(max_size=120))
def test_mask_shows_at_most_eight_secret_characters(prefix: str, body: str) -> None:
    secret = prefix + body
    masked = mask(secret)
    tag = mask_prefix(secret)
    assert secret.startswith(tag) and len(tag) <= 8
    if masked == FULLY_MASKED:
        assert len(secret) - len(tag) < 16
        return
    rest = secret[len(tag) :]
    assert masked == f"{tag}{rest[:4]}…{rest[-4:]}"
    shown = len(masked) - len(tag) - 1  # minus the tag and the ellipsis
    assert shown == 8 and len(rest) >= 16
    if len(secret) > 8 + len(tag):
        assert secret not in masked


def test_mask_examples() -> None:
    assert mask("sk-abcdefghijklmnopqrstuvwxyz") == "sk-abcd…wxyz"
    assert mask("sk-proj-0123456789abcdefWXYZ") == "sk-proj-0123…WXYZ"
    assert mask("AIzaSyD0123456789abcdefghij") == "AIza…ghij"
    assert mask("sk-short") == FULLY_MASKED
    assert mask("") == FULLY_MASKED
