"""Request ids that sort by time: ``req_`` + 12 hex digits of Unix milliseconds + 20 random.

Every metered request's id keys its usage record, its reservation and its rate-window entries
in the store. Random ids (uuid4's kind) land on a random leaf of each of those indexes, so a
batch of records dirties about one page per record once the table is large; ids that start
with the time append at the right edge instead. Measured on SQLite with 200,000 records
already stored: 7.0 against 17.6 µs of CPU per committed record (docs/decisions.md). The 80
random bits keep ids unguessable and unique across processes; the time part reveals only
when the request arrived, which its record says anyway.
"""

from __future__ import annotations

import os
import time


class _RandomBytes:
    """Random bytes drawn 4 KiB at a time: one getrandom call per 409 ids instead of one each
    (a call that releases the GIL, and the event loop may then wait for another thread to
    hand it back). A forked worker starts with an empty pool, so processes never share ids."""

    BLOCK = 4090

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self._block, self._next = b"", 0

    def take(self, size: int) -> bytes:
        start = self._next
        if start + size > len(self._block):
            self._block, start = os.urandom(self.BLOCK), 0
        self._next = start + size
        return self._block[start : start + size]


_random = _RandomBytes()
os.register_at_fork(after_in_child=_random.forget)


def new_request_id() -> str:
    return f"req_{time.time_ns() // 1_000_000:012x}{_random.take(10).hex()}"
