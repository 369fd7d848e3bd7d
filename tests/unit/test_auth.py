"""Key secrets: random, hashed at rest with a keyed hash, resolved through a short cache."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.edge.auth import (
    KeyResolver,
    derive_hash_key,
    extract_secret,
    generate_secret,
    hash_secret,
    new_key_record,
)
from gateway.errors import AuthenticationFailed
from gateway.store.records import ApiKey


@given(st.sampled_from(["live", "test"]))
def test_secrets_have_their_mode_prefix_and_32_random_bytes(mode: str) -> None:
    secret = generate_secret(mode)  # type: ignore[arg-type]
    assert secret.startswith(f"rg_{mode}_")
    assert len(secret) - len("rg_live_") >= 43
    assert secret != generate_secret(mode)  # type: ignore[arg-type]


SECRETS = st.builds(generate_secret, st.sampled_from(["live", "test"]))


@given(st.binary(min_size=1, max_size=64), st.binary(min_size=1, max_size=64), SECRETS)
def test_hash_depends_on_the_master_key(master_a: bytes, master_b: bytes, secret: str) -> None:
    a = hash_secret(derive_hash_key(master_a), secret)
    b = hash_secret(derive_hash_key(master_b), secret)
    assert (a == b) == (master_a == master_b)
    assert secret not in a


def test_record_never_holds_the_secret() -> None:
    secret, record = new_key_record(
        hash_key=b"k" * 32, workspace_id="ws", name="n", mode="live", scopes=("inference",)
    )
    assert secret not in repr(record)
    assert record.prefix.startswith("rg_live_") and record.prefix.endswith("…")


def test_resolver_finds_active_keys_and_refuses_others() -> None:
    hash_key = b"h" * 32
    secret, record = new_key_record(
        hash_key=hash_key, workspace_id="ws", name="n", mode="test", scopes=("inference",)
    )
    table: dict[str, ApiKey] = {record.key_hash: record}
    resolver = KeyResolver(hash_key, table.get)
    assert resolver.resolve(secret).id == record.id
    with pytest.raises(AuthenticationFailed):
        resolver.resolve(secret + "x")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer rg_test_a"}, "rg_test_a"),
        ({"authorization": "bearer  rg_test_b "}, "rg_test_b"),
        ({"x-api-key": "rg_live_c"}, "rg_live_c"),
    ],
)
def test_extract_secret(headers: dict[str, str], expected: str) -> None:
    assert extract_secret(headers) == expected


def test_extract_secret_without_key_is_401() -> None:
    with pytest.raises(AuthenticationFailed):
        extract_secret({"authorization": "Basic abc"})


@given(st.floats(0, 4_102_444_800, allow_nan=False))  # up to 2100
def test_utc_text_is_datetime_isoformat_to_the_millisecond(t: float) -> None:
    from datetime import datetime, timezone

    from gateway.edge.auth import utc_text

    expected = datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")
    assert utc_text(t) == expected.replace("+00:00", "Z")
