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


def new_request_id() -> str:
    return f"req_{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
