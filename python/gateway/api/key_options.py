"""Key options the struct cannot check alone: the IP allow-list and the expiry (SPEC §7).

Both are stored in a canonical form because the hot path compares them cheaply: allow-list
entries as ``ipaddress`` prints them, and ``expires_at`` in the store's timestamp format
(``2026-01-31T00:00:00.000Z``), which ``KeyResolver`` compares as a string with "now".
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from gateway.api.usage import iso_utc
from gateway.edge.ip_allowlist import canonical_entry
from gateway.errors import InvalidRequest
from gateway.store.records import ApiKey

MAX_ALLOWLIST_ENTRIES = 256
KeyState = Literal["active", "revoked", "expired"]


def ip_allowlist(entries: list[str] | None) -> tuple[str, ...] | None:
    """Canonical, de-duplicated entries; 400 naming ``ip_allowlist`` for a bad one.

    An empty list is refused: it would lock the key out everywhere, which is what revoking
    is for; ``null`` (or leaving the field out) means "any address".
    """
    if entries is None:
        return None
    if not entries:
        raise InvalidRequest(
            "'ip_allowlist' is empty: give at least one address or network, or null for any.",
            param="ip_allowlist",
        )
    if len(entries) > MAX_ALLOWLIST_ENTRIES:
        raise InvalidRequest(
            f"'ip_allowlist' has more than {MAX_ALLOWLIST_ENTRIES} entries.", param="ip_allowlist"
        )
    canonical: list[str] = []
    for entry in entries:
        try:
            value = canonical_entry(entry)
        except ValueError as error:
            raise InvalidRequest(
                f"Invalid 'ip_allowlist': {error}.", param="ip_allowlist"
            ) from None
        if value not in canonical:
            canonical.append(value)
    return tuple(canonical)


def parse_instant(value: str) -> datetime:
    """An ISO-8601 date or date-time; one without a UTC offset is taken as UTC."""
    moment = datetime.fromisoformat(value.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def expires_at(value: str | None, now: datetime) -> str | None:
    """The expiry in the store's format; 400 naming ``expires_at`` unless it is an ISO-8601
    instant in the future (an already expired key could never be used)."""
    if value is None:
        return None
    try:
        moment = parse_instant(value)
        stored = iso_utc(moment)
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"Invalid 'expires_at' {value!r}: use an ISO-8601 date-time such as "
            "'2026-01-31T00:00:00Z'.",
            param="expires_at",
        ) from None
    if moment <= now:
        raise InvalidRequest("'expires_at' must be in the future.", param="expires_at")
    return stored


def key_status(key: ApiKey, now_iso: str) -> KeyState:
    """``revoked``, ``expired`` (past ``expires_at``, e.g. a rotated key after its grace
    period) or ``active`` — what the key would get if used now."""
    if key.status == "revoked":
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now_iso:
        return "expired"
    return "active"
