"""Deployment-health snapshots in Redis (see ``health_snapshots`` for what they are)."""

from __future__ import annotations

import time

from gateway.store.redis_base import RedisBase

# One hash tag: both keys live in one cluster slot, so the pipeline may be a transaction.
_DATA = "rg:{health}:data"
_EXPIRY = "rg:{health}:expiry"


class RedisHealthSnapshots(RedisBase):
    def exchange_health(self, process_id: str, snapshot: bytes, ttl_s: float) -> list[bytes]:
        now = time.time()
        with self._guard():
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(_DATA, process_id, snapshot)
            pipe.zadd(_EXPIRY, {process_id: now + ttl_s})
            pipe.zrangebyscore(_EXPIRY, "-inf", now)
            stale = pipe.execute()[2]
            pipe = self._client.pipeline(transaction=True)
            if stale:
                pipe.hdel(_DATA, *stale)
                pipe.zrem(_EXPIRY, *stale)
            pipe.hgetall(_DATA)
            others = pipe.execute()[-1]
        return [bytes(v) for k, v in others.items() if k != process_id.encode()]
