"""A workspace's governance rules as the hot path reads them: cached per process for 1 s.

Budgets, the wallet's tier and the workspace's own limits change rarely and are needed by
every request, so each process keeps them for ``CACHE_TTL_S`` (like keys and routing
settings). Counters are never cached: they live in the store and change atomically there.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.read_through import CACHE_TTL_S, Offload, ReadThroughCache
from gateway.store import Store
from gateway.store.records import BillingTier, Budget, Workspace


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


class RulesCache(ReadThroughCache[str, Rules]):
    """workspace id → ``Rules``. With ``stale_ok`` (fail-open) an unreachable store serves the
    last rules seen (or none) instead of raising ``StoreUnavailable``."""

    def __init__(
        self,
        store: Store,
        *,
        stale_ok: bool,
        ttl_s: float = CACHE_TTL_S,
        offload: Offload[Rules] | None = None,
    ) -> None:
        def load(workspace_id: str) -> Rules:
            return Rules(
                workspace=store.get_workspace(workspace_id),
                budgets=tuple(store.list_budgets(workspace_id)),
                tier=store.get_billing(workspace_id).tier,
            )

        super().__init__(load, fallback=NO_RULES, stale_ok=stale_ok, ttl_s=ttl_s, offload=offload)
