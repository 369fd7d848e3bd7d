"""Commits spooled settlements to the store in batches, off the request path.

The request path only appends to this process's spool (``usage_spool.py``). One daemon
thread seals the spool every ``FLUSH_INTERVAL_S``, commits its segments in batches of
``BATCH`` and deletes each segment once the store acknowledged it. When the store is down the
segments simply stay: nothing is dropped, and the thread retries with a growing pause. Every
``ORPHAN_SCAN_S`` it also commits the spools of dead processes sharing the data directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.governance.usage_spool import Spool, orphans, read_segment, segments_of
from gateway.store.ledger import Alert, Settlement, StoreUnavailable

log = logging.getLogger("routegate.usage")

BATCH = 500
FLUSH_INTERVAL_S = 0.05
ORPHAN_SCAN_S = 2.0
MAX_BACKOFF_S = 1.0

Commit = Callable[[Sequence[Settlement]], list[Alert]]


class UsageWriter:
    """``submit`` appends to the spool (one write); the thread does the rest."""

    def __init__(
        self,
        spool_root: Path,
        commit: Commit,
        on_alerts: Callable[[list[Alert]], None] | None = None,
    ) -> None:
        self._spool = Spool(spool_root)
        self._commit = commit
        self._on_alerts = on_alerts
        self._stop = threading.Event()
        self._failing = False
        self._next_scan = 0.0
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    def submit(self, settlement: Settlement) -> None:
        self._spool.append(settlement)

    def ready(self) -> bool:
        """Whether the spool can take another record: no request may be dispatched when it
        cannot, in either ``store_unavailable`` mode (its metering would be lost)."""
        return self._spool.ready()

    def _run(self) -> None:
        pause = FLUSH_INTERVAL_S
        while not self._stop.wait(pause):
            pause = FLUSH_INTERVAL_S if self._cycle() else min(MAX_BACKOFF_S, pause * 2)
        self._cycle()

    def _cycle(self) -> bool:
        """One pass; False when the store refused (the segments stay for the next pass)."""
        try:
            for segment in self._spool.seal():
                self._commit_segment(segment)
            if time.monotonic() >= self._next_scan:
                self._next_scan = time.monotonic() + ORPHAN_SCAN_S
                self._recover_orphans()
        except Exception as error:  # the store is down or refused: keep everything spooled
            if not self._failing:
                known = isinstance(error, (StoreUnavailable, OSError))
                detail = str(error) if known else type(error).__name__
                log.warning("usage commit failed (%s); records stay spooled, retrying", detail)
            self._failing = True
            return False
        if self._failing:
            log.info("usage commits resumed")
            self._failing = False
        return True

    def _commit_segment(self, segment: Path) -> None:
        settlements = read_segment(segment)
        for start in range(0, len(settlements), BATCH):
            alerts = self._commit(settlements[start : start + BATCH])
            if alerts and self._on_alerts is not None:
                self._on_alerts(alerts)
        segment.unlink()

    def _recover_orphans(self) -> None:
        for directory, lock_fd in orphans(self._spool.root, self._spool.directory):
            try:
                count = 0
                for segment in segments_of(directory):
                    count += len(read_segment(segment))
                    self._commit_segment(segment)
                shutil.rmtree(directory, ignore_errors=True)
                if count:
                    log.info("recovered %d usage records from %s", count, directory.name)
            finally:
                os.close(lock_fd)

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._spool.close()
