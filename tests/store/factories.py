"""Small record builders: every field a test does not care about gets a plain default."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from gateway.store.ledger import (
    BudgetDebit,
    BudgetHold,
    RateHold,
    Reservation,
    Settlement,
    TokenActual,
    WalletHold,
    enforcement_threshold,
)
from gateway.store.records import ApiKey, Budget, ProviderKey, UsageRecord, Workspace

_serial = itertools.count()
CREATED = "2026-01-05T10:00:00.000Z"
LONG_TTL_MS = 15 * 60 * 1000


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def workspace(**fields: Any) -> Workspace:
    wid = fields.pop("id", None) or new_id("ws")
    base: dict[str, Any] = {"name": f"Workspace {wid}", "slug": wid.replace("_", "-")}
    return Workspace(id=wid, created_at=CREATED, **(base | fields))


def api_key(workspace_id: str, **fields: Any) -> ApiKey:
    kid = fields.pop("id", None) or new_id("key")
    base: dict[str, Any] = {
        "key_hash": uuid.uuid4().hex + uuid.uuid4().hex,
        "prefix": "rg_live_4f8c",
        "name": f"key {next(_serial)}",
        "mode": "live",
        "scopes": ("inference",),
    }
    return ApiKey(id=kid, workspace_id=workspace_id, created_at=CREATED, **(base | fields))


def budget(workspace_id: str, **fields: Any) -> Budget:
    bid = fields.pop("id", None) or new_id("bud")
    base: dict[str, Any] = {"scope_type": "workspace", "period": "monthly", "limit_usd": 1.0}
    return Budget(id=bid, workspace_id=workspace_id, created_at=CREATED, **(base | fields))


def provider_key(workspace_id: str, **fields: Any) -> ProviderKey:
    pid = fields.pop("id", None) or new_id("pk")
    base: dict[str, Any] = {
        "provider": "openai",
        "ciphertext": "Y2lwaGVydGV4dA==",
        "masked": "sk-abcd…wxyz",
    }
    return ProviderKey(id=pid, workspace_id=workspace_id, created_at=CREATED, **(base | fields))


def usage(workspace_id: str, request_id: str | None = None, **fields: Any) -> UsageRecord:
    base: dict[str, Any] = {
        "created_at": CREATED,
        "key_id": "key_1",
        "model_requested": "gpt-4o",
        "model_served": "gpt-4o",
        "provider": "openai",
        "region": "us",
        "key_source": "platform",
        "strategy": "balanced",
    }
    return UsageRecord(
        request_id=request_id or new_id("req"), workspace_id=workspace_id, **(base | fields)
    )


def hold(budget_id: str, amount: int, *, limit: int, enforce: bool = True) -> BudgetHold:
    """A hold on the budget's single counter (``<id>@2026-01``) with SPEC §7's threshold."""
    return BudgetHold(
        budget_id=budget_id,
        counter=f"{budget_id}@2026-01",
        threshold=enforcement_threshold(limit),
        amount=amount,
        enforce=enforce,
    )


def reservation(
    workspace_id: str,
    *,
    rid: str | None = None,
    budgets: tuple[BudgetHold, ...] = (),
    wallet: int | None = None,
    limits: tuple[RateHold, ...] = (),
    ttl_ms: int = LONG_TTL_MS,
) -> Reservation:
    return Reservation(
        id=rid or new_id("req"),
        workspace_id=workspace_id,
        ttl_ms=ttl_ms,
        budgets=budgets,
        wallet=None if wallet is None else WalletHold(amount=wallet),
        limits=limits,
    )


def settlement(
    workspace_id: str,
    reservation_id: str | None,
    *,
    debits: tuple[BudgetDebit, ...] = (),
    wallet: int = 0,
    tokens: tuple[TokenActual, ...] = (),
    request_id: str | None = None,
) -> Settlement:
    """A settlement whose record's request id is the reservation's id (as the gateway does)."""
    record = usage(workspace_id, request_id or reservation_id or new_id("req"))
    return Settlement(
        record=record, reservation_id=reservation_id, budgets=debits, wallet=wallet, tokens=tokens
    )


def debit(budget_id: str, amount: int, *, limit: int) -> BudgetDebit:
    return BudgetDebit(
        budget_id=budget_id, counter=f"{budget_id}@2026-01", amount=amount, limit=limit
    )
