"""Shared store: one Redis (or Redis Cluster) behind every gateway process and machine.

``redis://`` or ``rediss://`` (TLS) URLs, with optional credentials and database number;
``redis+cluster://`` or ``rediss+cluster://`` for a Redis Cluster (``redis_url``).
The key layout and why it is cluster safe: ``redis_keys``. Records and their CRUD:
``redis_records``. Reserve and commit as atomic Lua scripts on the store's own clock:
``redis_ledger`` and ``redis_lua``. Connections, timeouts and error mapping: ``redis_base``.
Durability is the server's: run it with ``appendonly yes`` (docs/behaviour.md).
"""

from __future__ import annotations

from gateway.store.redis_health import RedisHealthSnapshots
from gateway.store.redis_ledger import RedisLedger
from gateway.store.redis_records import DuplicateRecord, RedisRecords

__all__ = ["DuplicateRecord", "RedisStore"]


class RedisStore(RedisLedger, RedisRecords, RedisHealthSnapshots):
    """Every method of the ``Store`` Protocol; ``reserve`` on the asyncio client."""
