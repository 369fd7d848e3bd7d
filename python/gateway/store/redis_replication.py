"""Acknowledged means replicated: a commit counts as done only once a replica has it.

Redis replicates asynchronously, so a master that fails right after answering loses what it
had not yet sent, and a promoted replica would not hold usage the gateway already counted as
committed. So after each COMMIT call, when the master that took it has replicas (always in a
Redis Cluster deployment, or a server with replicas), ``WAIT 1 <REPLICA_WAIT_MS>`` is sent to
that same master; if no replica acknowledged in time the commit is reported as not done
(``StoreUnavailable``) and the usage writer keeps the records spooled and replays them later,
which is safe because commits are exactly-once per request id (docs/governance.md,
"Redis Cluster and failover"). A master without any replica (one server, or a promoted replica
whose old master is gone) has nothing to wait for: its commits are as durable as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis
import redis.cluster

from gateway.store.ledger import StoreUnavailable
from gateway.store.redis_base import RedisBase, text

REPLICA_WAIT_MS = 1000
"""How long a commit waits for one replica's acknowledgement before it counts as not done."""


def replica_count(role: Any) -> int:
    """Connected replicas from a ``ROLE`` reply (``[b"master", offset, [[ip, port, off]…]]``);
    0 for anything that is not a master (a demoted node takes no writes anyway)."""
    if not isinstance(role, list | tuple) or len(role) < 3 or text(role[0]) != "master":
        return 0
    return len(role[2])


class RedisReplication(RedisBase):
    """``_replicated(key)``: wrap a write to ``key``'s slot so it returns only once durable."""

    def _node_client(self, key: str) -> tuple[str, redis.Redis]:
        """The master that serves ``key`` (its name, and a client to that one node)."""
        client = self._client
        if isinstance(client, redis.cluster.RedisCluster):
            node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
            return node.name, client.get_redis_connection(node)
        return self._where, client

    @contextlib.contextmanager
    def _replicated(self, key: str) -> Iterator[None]:
        before, _ = self._node_client(key)
        yield
        name, node = self._node_client(key)
        if name != before:
            # The slot moved while the write was in flight (a failover): which master took
            # the write, and what it replicated, is unknown, so it is not acknowledged.
            raise StoreUnavailable(
                f"redis store {self._where}: the slot of a commit moved during it; retrying"
            )
        if replica_count(node.execute_command("ROLE")) == 0:  # type: ignore[no-untyped-call]
            return
        acked = int(node.execute_command("WAIT", 1, REPLICA_WAIT_MS))  # type: ignore[no-untyped-call]
        if acked < 1:
            raise StoreUnavailable(
                f"redis store {self._where}: no replica of {name} acknowledged a commit "
                f"within {REPLICA_WAIT_MS} ms; it will be retried"
            )
