"""Health snapshots: each process sees every other live process's latest, never its own,
and a snapshot past its expiry is gone."""

from __future__ import annotations

import time

from gateway.store import Store


def test_each_process_reads_the_others_latest_snapshots(store: Store) -> None:
    assert store.exchange_health("a", b"a1", 30.0) == []
    assert store.exchange_health("b", b"b1", 30.0) == [b"a1"]
    assert store.exchange_health("a", b"a2", 30.0) == [b"b1"]
    assert sorted(store.exchange_health("c", b"c1", 30.0)) == [b"a2", b"b1"]


def test_an_expired_snapshot_is_no_longer_seen(store: Store) -> None:
    store.exchange_health("gone", b"old", 0.2)
    assert store.exchange_health("live", b"new", 30.0) == [b"old"]
    time.sleep(0.3)
    assert store.exchange_health("live", b"newer", 30.0) == []
