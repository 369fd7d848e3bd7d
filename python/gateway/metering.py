"""Cost from usage and prices, savings against the baseline, and the usage-record writer.

Records are queued by the request path and written in batches by one background thread, so
a request never waits on the store to be metered. ``close()`` drains the queue on shutdown.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.config import Price
from gateway.store.records import UsageRecord

log = logging.getLogger("routegate.metering")

_BATCH = 500
_FLUSH_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


def cost_usd(price: Price, usage: Usage) -> float:
    """Cached input bills at the cached price; reasoning tokens are already in output."""
    cached = min(usage.cached_tokens, usage.input_tokens)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    return (
        (usage.input_tokens - cached) * price.input
        + cached * cached_price
        + usage.output_tokens * price.output
    ) / 1_000_000


def saved_pct(baseline_cost: float, actual_cost: float) -> float:
    """SPEC §3 Savings: 100 × (baseline − actual) / baseline, floored at 0."""
    if baseline_cost <= 0:
        return 0.0
    return round(max(0.0, 100.0 * (baseline_cost - actual_cost) / baseline_cost), 2)


class UsageWriter:
    """Batches usage records into the store from one daemon thread.

    ``submit`` is a bare deque append: no lock and no thread wake-up on the request path
    (a wake-up per record measured ~6% of a worker's time under load). The thread drains
    the deque every ``_FLUSH_INTERVAL_S``; ``close`` drains it one last time.
    """

    def __init__(self, write: Callable[[Sequence[UsageRecord]], None]) -> None:
        self._write = write
        self._pending: collections.deque[UsageRecord] = collections.deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    def submit(self, record: UsageRecord) -> None:
        self._pending.append(record)

    def _run(self) -> None:
        while not self._stop.wait(_FLUSH_INTERVAL_S):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        while self._pending:
            batch: list[UsageRecord] = []
            while self._pending and len(batch) < _BATCH:
                batch.append(self._pending.popleft())
            self._flush(batch)

    def _flush(self, batch: list[UsageRecord]) -> None:
        try:
            self._write(batch)
        except Exception:  # the store may be briefly locked or gone: keep the batch
            log.exception("usage write failed for %d records; retrying once", len(batch))
            try:
                self._write(batch)
            except Exception:
                log.exception("usage write failed again; %d records lost", len(batch))

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
