"""The spool and the usage writer: nothing acknowledged is lost, nothing is committed twice.

Real files and a real SQLite store; a child process killed with SIGKILL stands in for a
crashed gateway worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.governance.usage_spool import Spool, orphans, read_segment
from gateway.governance.usage_writer import UsageWriter
from gateway.store.ledger import Settlement
from gateway.store.records import UsageRecord
from gateway.store.sqlite import SqliteStore
from support.small_fs import fill, mounted_tmpfs


def _record(index: int, workspace: str = "ws_a") -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{index:06d}",
        created_at=f"2026-11-21T10:00:00.{index % 1000:03d}Z",
        workspace_id=workspace,
        key_id="key_1",
        model_requested="auto",
        model_served="gpt-4o-mini",
        provider="meter",
        region="us-east-1",
        key_source="platform",
        strategy="balanced",
        cost_usd=0.01,
        cost_microdollars=10_000,
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40), st.data())
def test_a_torn_last_frame_loses_only_that_frame(tmp_path_factory, indexes, data) -> None:  # type: ignore[no-untyped-def]
    """A kill mid-write leaves a prefix of the last frame: every earlier frame still reads."""
    root = tmp_path_factory.mktemp("spool")
    spool = Spool(root)
    for index in indexes:
        spool.append(Settlement(record=_record(index)))
    (segment,) = sorted(spool.directory.glob("seg-*"))
    whole = segment.read_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(whole)))
    segment.write_bytes(whole[:cut])
    read = [s.record.request_id for s in read_segment(segment)]
    expected = [_record(i).request_id for i in indexes]
    assert read == expected[: len(read)]
    if cut == len(whole):
        assert read == expected
    spool.close()


def test_writer_commits_every_record_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    writer = UsageWriter(tmp_path / "spool", store.commit)
    for index in range(1200):
        writer.submit(Settlement(record=_record(index)))
    writer.close()
    records = store.list_usage("ws_a", "2000")
    assert len(records) == 1200
    assert len({r.request_id for r in records}) == 1200
    assert not list((tmp_path / "spool").glob("*/seg-*")), "committed segments are deleted"


def test_commit_is_idempotent_per_request(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    settlement = Settlement(record=_record(1))
    store.commit([settlement])
    store.commit([settlement, settlement])
    assert [r.request_id for r in store.list_usage("ws_a", "2000")] == ["req_000001"]


_CHILD = """
import sys, time
from pathlib import Path
from gateway.store.ledger import Settlement
from gateway.store.records import UsageRecord
from gateway.governance.usage_spool import Spool
spool = Spool(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    spool.append(Settlement(record=UsageRecord(
        request_id=f"req_{i:06d}", created_at="2026-11-21T10:00:00.000Z", workspace_id="ws_a",
        key_id="k", model_requested="auto", model_served=None, provider=None, region=None,
        key_source=None, strategy=None)))
print("appended", flush=True)
time.sleep(60)
"""


def test_a_killed_process_spool_is_recovered_by_a_live_writer(tmp_path: Path) -> None:
    """SIGKILL after the appends: another writer on the same data dir commits them all."""
    root = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), "250"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "appended"
        assert list(orphans(root, root / "none")) == [], "a live owner's spool is not an orphan"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    store = SqliteStore(tmp_path / "db.sqlite")
    writer = UsageWriter(root, store.commit)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(store.list_usage("ws_a", "2000")) < 250:
        time.sleep(0.05)
    writer.close()
    assert len(store.list_usage("ws_a", "2000")) == 250
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == [], (
        "the dead process's spool directory is removed once committed"
    )


def test_records_stay_spooled_while_the_store_refuses(tmp_path: Path) -> None:
    from gateway.store.ledger import StoreUnavailable

    store = SqliteStore(tmp_path / "db.sqlite")
    down = True

    def commit(batch):  # type: ignore[no-untyped-def]
        if down:
            raise StoreUnavailable("store down (test)")
        return store.commit(batch)

    writer = UsageWriter(tmp_path / "spool", commit)
    for index in range(50):
        writer.submit(Settlement(record=_record(index)))
    time.sleep(0.4)
    assert store.list_usage("ws_a", "2000") == []
    down = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(store.list_usage("ws_a", "2000")) < 50:
        time.sleep(0.05)
    writer.close()
    assert len(store.list_usage("ws_a", "2000")) == 50


def test_spool_frames_are_msgpack_settlements(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(Settlement(record=_record(7), wallet=10_000))
    (segment,) = spool.directory.glob("seg-*")
    raw = segment.read_bytes()
    decoded = msgspec.msgpack.decode(raw[4:], type=Settlement)
    assert decoded.wallet == 10_000 and decoded.record.request_id == "req_000007"
    spool.close()


def test_a_full_disk_never_raises_and_loses_nothing_once_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a really full filesystem (a tmpfs, filled): ``append`` neither raises nor leaves a
    torn frame (a write that fits only in part is cut off), ``ready`` refuses dispatch, and
    once space is freed ``seal`` writes every frame that waited, readable and in order."""
    with mounted_tmpfs(tmp_path / "small-fs", "16m") as fs:
        spool = Spool(fs / "spool")
        assert spool.ready()
        big = "x" * 1500
        settlements = [
            Settlement(record=msgspec.structs.replace(_record(i), model_requested=big))
            for i in range(40)
        ]
        spool.append(settlements[0])  # the segment's page now has room for part of a frame
        filler = fill(fs)
        for settlement in settlements[1:]:
            spool.append(settlement)
        assert "short write" in caplog.text, "no frame was written in part"
        assert spool.ready() is False
        filler.unlink()
        time.sleep(0.15)  # past the cached free-space look
        segments = spool.seal()
        read = [s.record.request_id for seg in segments for s in read_segment(seg)]
        assert read == [s.record.request_id for s in settlements]
        assert spool.ready(), "still refusing once every waiting frame was written"
        spool.close()
