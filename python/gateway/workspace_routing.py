"""Per-workspace routing settings (SPEC §2, §8) as the hot path reads them: cached per process.

A workspace's routing defaults and named policies live in the store; every chat request needs
them to build its precedence chain, so each process keeps them for ``CACHE_TTL_S`` (like the
key cache in ``auth``). A write through this process's management API drops the entry at once;
other processes see it within the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.routing_options import RoutingOptions
from gateway.store import Store
from gateway.store.ledger import StoreUnavailable

CACHE_TTL_S = 1.0
_MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class WorkspaceRouting:
    """One workspace's routing settings at one moment."""

    defaults: RoutingOptions
    policies: Mapping[str, RoutingOptions]  # the workspace's own; config policies are separate


_NOTHING = WorkspaceRouting(defaults=RoutingOptions(), policies={})


class WorkspaceRoutingCache:
    """workspace id → ``WorkspaceRouting``, read through from the store with a short TTL."""

    def __init__(self, store: Store, ttl_s: float = CACHE_TTL_S, *, stale_ok: bool = False) -> None:
        self._store = store
        self._stale_ok = stale_ok
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, WorkspaceRouting]] = {}

    def get(self, workspace_id: str) -> WorkspaceRouting:
        now = time.monotonic()
        cached = self._cache.get(workspace_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            entry = WorkspaceRouting(
                defaults=self._store.get_routing_defaults(workspace_id),
                policies=self._store.list_policies(workspace_id),
            )
        except StoreUnavailable:
            if not self._stale_ok:
                raise
            return cached[1] if cached is not None else _NOTHING  # fail-open: last known
        if len(self._cache) > _MAX_ENTRIES:
            self._cache.clear()
        self._cache[workspace_id] = (now + self._ttl, entry)
        return entry

    def invalidate(self, workspace_id: str) -> None:
        """Forget the workspace here (after a write), so this process reads it fresh."""
        self._cache.pop(workspace_id, None)
