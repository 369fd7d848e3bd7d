"""Sharing open circuits between gateway processes through the store, once a second.

Every process publishes the circuits it has open (by deployment identity, not row number,
so processes need not agree on row order) and opens locally the ones others report, for the
rest of their cool-down. So a provider that failed, or answered 429 with ``Retry-After``, at
one gateway is left alone by every gateway (SPEC §3: never hammer a provider that said wait).
Latency EWMAs are not shared: every process measures the same upstreams and converges anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time

import msgspec

from gateway.routing.catalog import Catalog, Deployment
from gateway.routing.health import HealthTracker
from gateway.store import Store

log = logging.getLogger("routegate.health")
INTERVAL_S = 1.0


class Snapshot(msgspec.Struct, frozen=True):
    at: float
    """Wall-clock time the snapshot was taken."""
    open: dict[str, tuple[float, float]]
    """Deployment identity → (seconds until half-open, seconds since it opened)."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Snapshot)


def identity(deployment: Deployment) -> str:
    return "|".join(
        (deployment.model.id, deployment.provider.id, deployment.region, deployment.key_source)
    )


class HealthSync:
    def __init__(
        self, store: Store, health: HealthTracker, catalog: Catalog, interval_s: float = INTERVAL_S
    ) -> None:
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._store = store
        self._health = health
        self._interval = interval_s
        self._names = [identity(d) for d in catalog.deployments]
        self._rows = {name: row for row, name in enumerate(self._names)}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.exchange()

    async def exchange(self) -> None:
        mine = Snapshot(
            at=time.time(),
            open={self._names[row]: state for row, state in self._health.shared_state().items()},
        )
        try:
            others = await asyncio.to_thread(
                self._store.exchange_health,
                self.process_id,
                _encoder.encode(mine),
                3 * self._interval,
            )
        except Exception as error:  # the store is down: circuits stay local until it is back
            log.debug("health exchange failed: %s", type(error).__name__)
            return
        now = time.time()
        for blob in others:
            try:
                snapshot = _decoder.decode(blob)
            except msgspec.DecodeError:
                continue
            elapsed = max(0.0, now - snapshot.at)
            for name, (seconds, age) in snapshot.open.items():
                row = self._rows.get(name)
                if row is not None:
                    self._health.adopt(row, seconds - elapsed, age + elapsed)
