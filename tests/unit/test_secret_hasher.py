"""``SecretHasher`` (HMAC-SHA256 with precomputed pads) is ``hash_secret`` for any key and
secret, including keys longer than a SHA-256 block."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.edge.auth import SecretHasher, hash_secret


@given(st.binary(min_size=0, max_size=200), st.text(max_size=300))
def test_the_hasher_is_hmac_sha256(key: bytes, secret: str) -> None:
    assert SecretHasher(key)(secret) == hash_secret(key, secret)


def test_one_hasher_serves_many_secrets_without_carrying_state() -> None:
    hasher = SecretHasher(b"k" * 32)
    first = hasher("rg_live_a")
    hasher("rg_live_b")
    assert hasher("rg_live_a") == first == hash_secret(b"k" * 32, "rg_live_a")
