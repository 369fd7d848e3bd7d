"""A workspace's governance rules as the hot path reads them: cached per process for 1 s.

Budgets, the wallet's tier and the workspace's own limits change rarely and are needed by
every request, so each process keeps them for ``CACHE_TTL_S`` (like keys and routing
settings). Counters are never cached for deciding: they live in the store and change
atomically there. The rules do carry a snapshot of them (each budget's settled spend and the
wallet's free balance when the rules were read), which is all the ``open`` fail mode has to
go on while the store is unreachable (``governance.outage``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from gateway.governance.periods import counter_name
from gateway.store import Store
from gateway.store.read_through import CACHE_TTL_S, Offload, ReadThroughCache
from gateway.store.records import BillingTier, Budget, Workspace


@dataclass(frozen=True, slots=True)
class Rules:
    workspace: Workspace | None
    budgets: tuple[Budget, ...]
    tier: BillingTier
    spend: Mapping[str, int] = field(default_factory=dict)
    """Settled spend (micro-dollars) of each budget's counter of the period current then."""
    wallet_free: int = 0
    """The prepaid balance less what was reserved, when read (micro-dollars)."""

    @property
    def rpm_limit(self) -> int | None:
        return self.workspace.rpm_limit if self.workspace else None

    @property
    def tpm_limit(self) -> int | None:
        return self.workspace.tpm_limit if self.workspace else None

    @property
    def max_cost_per_request(self) -> float | None:
        return self.workspace.max_cost_per_request if self.workspace else None


class RulesCache(ReadThroughCache[str, Rules]):
    """workspace id → ``Rules``. With ``stale_ok`` (fail-open) an unreachable store serves the
    last rules seen instead of raising ``StoreUnavailable`` (which it still raises for a
    workspace whose rules were never read)."""

    def __init__(
        self,
        store: Store,
        *,
        stale_ok: bool,
        ttl_s: float = CACHE_TTL_S,
        offload: Offload[Rules] | None = None,
    ) -> None:
        def load(workspace_id: str) -> Rules:
            budgets = tuple(store.list_budgets(workspace_id))
            billing = store.get_billing(workspace_id)
            now = datetime.now(timezone.utc)
            counters = [counter_name(b.id, b.period, now) for b in budgets]
            spend = store.budget_spend(workspace_id, counters) if counters else []
            return Rules(
                workspace=store.get_workspace(workspace_id),
                budgets=budgets,
                tier=billing.tier,
                spend=dict(zip(counters, spend, strict=True)),
                wallet_free=billing.balance_microdollars - billing.reserved_microdollars,
            )

        # No fallback: in the ``open`` mode, rules never read cannot govern, so a workspace
        # this process has not seen before the outage is refused (503), never served ungoverned.
        super().__init__(load, stale_ok=stale_ok, ttl_s=ttl_s, offload=offload)
