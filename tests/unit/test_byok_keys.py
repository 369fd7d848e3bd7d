"""Workspace provider keys in the SQLite store, and the per-process keyring in front of them."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from gateway.providers.byok_crypto import ByokCipher
from gateway.providers.byok_keys import ByokKeyring, serving_order
from gateway.store.records import ProviderKey
from gateway.store.sqlite import SqliteStore

MASTER = b"m" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _key(
    cipher: ByokCipher,
    key_id: str,
    secret: str,
    *,
    workspace: str = "ws_a",
    provider: str = "openai",
    is_default: bool = False,
    status: str = "active",
) -> ProviderKey:
    return ProviderKey(
        id=key_id,
        workspace_id=workspace,
        provider=provider,
        ciphertext=cipher.encrypt(workspace, provider, secret),
        masked="sk-…",
        created_at="2026-01-01T00:00:00.000Z",
        is_default=is_default,
        status=status,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "store.db")


def test_store_round_trip_is_per_workspace(store: SqliteStore) -> None:
    cipher = ByokCipher(MASTER)
    a = _key(cipher, "pk_1", "sk-a")
    b = _key(cipher, "pk_2", "sk-b", workspace="ws_b")
    store.create_provider_key(a)
    store.create_provider_key(b)
    assert store.list_provider_keys("ws_a") == [a]
    assert store.get_provider_key("ws_a", "pk_1") == a
    assert store.get_provider_key("ws_a", "pk_2") is None  # another workspace's id
    store.update_provider_key(msgspec.structs.replace(b, workspace_id="ws_a", status="invalid"))
    assert store.get_provider_key("ws_b", "pk_2") == b  # an update cannot move a key
    changed = msgspec.structs.replace(a, status="invalid", last_validated_at="now")
    store.update_provider_key(changed)
    assert store.get_provider_key("ws_a", "pk_1") == changed
    assert not store.delete_provider_key("ws_b", "pk_1")
    assert store.delete_provider_key("ws_a", "pk_1")
    assert store.list_provider_keys("ws_a") == []


def test_the_database_holds_ciphertext_only(store: SqliteStore, tmp_path: Path) -> None:
    secret = "sk-this-is-a-very-secret-provider-key-1234"
    store.create_provider_key(_key(ByokCipher(MASTER), "pk_1", secret))
    store.close()
    assert secret.encode() not in (tmp_path / "store.db").read_bytes()
    wal = tmp_path / "store.db-wal"
    assert not wal.exists() or secret.encode() not in wal.read_bytes()


def test_serving_order_is_default_then_newest() -> None:
    cipher = ByokCipher(MASTER)
    keys = [
        _key(cipher, "old", "a"),
        _key(cipher, "default", "b", is_default=True),
        _key(cipher, "new", "c"),
        _key(cipher, "bad", "d", status="invalid"),
    ]
    assert [k.id for k in serving_order(keys)] == ["default", "new", "old"]


def test_keyring_reads_through_with_a_ttl(store: SqliteStore) -> None:
    cipher, clock = ByokCipher(MASTER), Clock()
    ring = ByokKeyring(store, cipher, ttl_s=1.0, clock=clock)
    assert ring.providers("ws_a") == frozenset()
    store.create_provider_key(_key(cipher, "pk_1", "sk-one", is_default=True))
    assert ring.providers("ws_a") == frozenset()  # cached for up to the TTL
    clock.now += 1.01
    assert ring.providers("ws_a") == {"openai"}
    assert ring.secret("ws_a", "openai") == "sk-one"
    assert ring.secret("ws_b", "openai") is None
    store.create_provider_key(_key(cipher, "pk_2", "sk-two", provider="groq"))
    ring.invalidate("ws_a")  # a write through this process is seen at once
    assert ring.providers("ws_a") == {"openai", "groq"}


def test_undecryptable_key_is_skipped_and_logged_without_secrets(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    good, other = ByokCipher(MASTER), ByokCipher(b"x" * 32)
    store.create_provider_key(_key(other, "pk_bad", "sk-from-another-master", is_default=True))
    store.create_provider_key(_key(good, "pk_spare", "sk-spare-key"))
    moved = _key(good, "pk_moved", "sk-moved-key", workspace="ws_b", provider="groq")
    store.create_provider_key(msgspec.structs.replace(moved, workspace_id="ws_a"))
    ring = ByokKeyring(store, good)
    with caplog.at_level(logging.WARNING, logger="routegate.byok"):
        assert ring.secret("ws_a", "openai") == "sk-spare-key"  # the default fails: the spare
        assert ring.secret("ws_a", "groq") is None  # sealed for another workspace
    text = caplog.text
    assert "pk_bad" in text and "pk_moved" in text
    for secret in ("sk-from-another-master", "sk-moved-key", "sk-spare-key"):
        assert secret not in text


def test_a_rate_limited_key_cools_for_its_workspace_only(store: SqliteStore) -> None:
    cipher, clock = ByokCipher(MASTER), Clock()
    store.create_provider_key(_key(cipher, "pk_a", "sk-a"))
    store.create_provider_key(_key(cipher, "pk_b", "sk-b", workspace="ws_b"))
    ring = ByokKeyring(store, cipher, clock=clock)
    ring.cool("ws_a", "openai", 5.0)
    assert ring.providers("ws_a") == frozenset()
    assert ring.providers("ws_b") == {"openai"}
    assert ring.cooling("ws_a") == {"openai": pytest.approx(5.0)}
    clock.now += 5.01
    assert ring.providers("ws_a") == {"openai"}
    assert ring.cooling("ws_a") == {}
