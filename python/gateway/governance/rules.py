"""A workspace's governance rules as the hot path reads them: cached per process for 1 s.

Budgets, the wallet's tier and the workspace's own limits change rarely and are needed by
every request, so each process keeps them for ``CACHE_TTL_S`` (like keys and routing
settings). Counters are never cached: they live in the store and change atomically there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.store import Store
from gateway.store.ledger import StoreUnavailable
from gateway.store.records import BillingTier, Budget, Workspace

CACHE_TTL_S = 1.0
_MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class Rules:
    workspace: Workspace | None
    budgets: tuple[Budget, ...]
    tier: BillingTier

    @property
    def rpm_limit(self) -> int | None:
        return self.workspace.rpm_limit if self.workspace else None

    @property
    def tpm_limit(self) -> int | None:
        return self.workspace.tpm_limit if self.workspace else None

    @property
    def max_cost_per_request(self) -> float | None:
        return self.workspace.max_cost_per_request if self.workspace else None


NO_RULES = Rules(workspace=None, budgets=(), tier="postpaid")


class RulesCache:
    """workspace id → ``Rules``. With ``stale_ok`` (fail-open) an unreachable store serves the
    last rules seen (or none) instead of raising ``StoreUnavailable``."""

    def __init__(self, store: Store, *, stale_ok: bool, ttl_s: float = CACHE_TTL_S) -> None:
        self._store = store
        self._stale_ok = stale_ok
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, Rules]] = {}

    def get(self, workspace_id: str) -> Rules:
        now = time.monotonic()
        cached = self._cache.get(workspace_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            rules = Rules(
                workspace=self._store.get_workspace(workspace_id),
                budgets=tuple(self._store.list_budgets(workspace_id)),
                tier=self._store.get_billing(workspace_id).tier,
            )
        except StoreUnavailable:
            if not self._stale_ok:
                raise
            return cached[1] if cached is not None else NO_RULES
        if len(self._cache) > _MAX_ENTRIES:
            self._cache.clear()
        self._cache[workspace_id] = (now + self._ttl, rules)
        return rules

    def invalidate(self, workspace_id: str) -> None:
        self._cache.pop(workspace_id, None)
