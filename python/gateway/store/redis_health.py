"""Deployment-health snapshots in Redis (see ``health_snapshots`` for what they are)."""

from __future__ import annotations

import time

from gateway.store.redis_base import RedisBase, as_bytes
from gateway.store.redis_lua import EXCHANGE_HEALTH

# One hash tag: both keys live in one cluster slot, so one script may touch both.
_DATA = "rg:{health}:data"
_EXPIRY = "rg:{health}:expiry"


class RedisHealthSnapshots(RedisBase):
    def exchange_health(self, process_id: str, snapshot: bytes, ttl_s: float) -> list[bytes]:
        """Publish, expire and read in one atomic script (no MULTI: one call on any topology)."""
        now = time.time()
        with self._guard():
            flat = self._script("exchange_health", EXCHANGE_HEALTH)(
                keys=[_DATA, _EXPIRY], args=[process_id, snapshot, repr(now), repr(now + ttl_s)]
            )
        me = process_id.encode()
        pairs = zip(flat[::2], flat[1::2], strict=True)
        return [as_bytes(value) for name, value in pairs if as_bytes(name) != me]
