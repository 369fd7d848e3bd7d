"""Plain records the store keeps. No secrets in plain text: keys are stored as keyed hashes."""

from __future__ import annotations

from typing import Literal

import msgspec

KeyMode = Literal["live", "test"]
Scope = Literal["inference", "read", "admin"]
KeyStatus = Literal["active", "revoked"]


BudgetScope = Literal["workspace", "api_key", "byok_provider"]
BudgetPeriod = Literal["daily", "weekly", "monthly"]
BillingTier = Literal["postpaid", "prepaid"]
ProviderKeyStatus = Literal["active", "invalid"]


class Workspace(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant. The limits apply to all of its keys together (SPEC §7)."""

    id: str
    name: str
    slug: str
    created_at: str
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_cost_per_request: float | None = None


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A gateway key as stored: ``key_hash`` is HMAC-SHA256 of the secret, never the secret."""

    id: str
    workspace_id: str
    key_hash: str
    prefix: str
    name: str
    mode: KeyMode
    scopes: tuple[Scope, ...]
    created_at: str
    status: KeyStatus = "active"
    gateway_wide: bool = False
    allowed_models: tuple[str, ...] | None = None
    ip_allowlist: tuple[str, ...] | None = None
    default_policy: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_cost_per_request: float | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    successor_id: str | None = None
    """Set when the key was rotated: its key-scoped budgets moved to the successor, and its
    traffic during the grace period still counts toward them."""


class UsageRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One request's metering record (SPEC §7). Never prompt or completion text."""

    request_id: str
    created_at: str
    workspace_id: str
    key_id: str
    model_requested: str
    model_served: str | None
    provider: str | None
    region: str | None
    key_source: str | None
    strategy: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error_code: str | None = None
    stream: bool = False
    usage_estimated: bool = False
    fallback_chain: str | None = None
    gateway_metadata: str | None = None
    cost_microdollars: int = 0
    """``cost_usd`` rounded to micro-dollars: exactly what the spend counters were charged."""


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    """A spending limit (SPEC §7). ``scope_id`` is the key id of an ``api_key`` budget,
    ``scope_provider`` the provider id of a ``byok_provider`` budget."""

    id: str
    workspace_id: str
    scope_type: BudgetScope
    period: BudgetPeriod
    limit_usd: float
    created_at: str
    scope_id: str | None = None
    scope_provider: str | None = None
    enforce: bool = True
    include_byok: bool = False
    alert_webhook: str | None = None


class Billing(msgspec.Struct, frozen=True, kw_only=True):
    """A workspace's wallet. ``postpaid`` (the default: never topped up) is not enforced;
    the first credit top-up makes it ``prepaid``: live traffic debits it, 402 at zero."""

    workspace_id: str
    balance_microdollars: int = 0
    reserved_microdollars: int = 0
    tier: BillingTier = "postpaid"


class ProviderKey(msgspec.Struct, frozen=True, kw_only=True):
    """A workspace's own provider key (BYOK), stored as AEAD ciphertext (base64) only."""

    id: str
    workspace_id: str
    provider: str
    ciphertext: str
    masked: str
    created_at: str
    name: str | None = None
    is_default: bool = False
    status: ProviderKeyStatus = "active"
    last_validated_at: str | None = None
