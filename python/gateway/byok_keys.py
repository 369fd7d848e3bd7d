"""Each workspace's own provider keys (BYOK) as the hot path reads them: decrypted, cached ≤ 1 s.

Every live request asks which providers its workspace holds a usable key for (routing enables
those providers' BYOK deployments) and, for a BYOK attempt, the key itself. Reading the store
and decrypting on every request would put a round trip and an AEAD open on the hot path, so
each process keeps a workspace's keys for ``CACHE_TTL_S`` (like ``workspace_routing``): a key
added, deleted or invalidated through the management API is in effect in this process at once
and in every other process within the TTL.

Which key serves a provider: the workspace's default key for it when that key is active, else
its newest active key. A key that fails to decrypt (a changed master key, a tampered row) is
skipped with one log line naming the key id, never its value, so its platform twin serves.
A BYOK key the provider rate-limited (429) is left out for the provider's ``Retry-After``
(``cool``): that workspace's requests go to the platform key meanwhile, and nobody else's do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.byok_crypto import ByokCipher, DecryptError
from gateway.store import Store
from gateway.store.ledger import StoreUnavailable
from gateway.store.records import ProviderKey

CACHE_TTL_S = 1.0
_MAX_ENTRIES = 100_000
log = logging.getLogger("routegate.byok")


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    secrets: Mapping[str, str]  # provider id → decrypted key


def serving_order(keys: list[ProviderKey]) -> list[ProviderKey]:
    """A provider's active keys in the order they are tried: the default, then newest first."""
    active = [k for k in keys if k.status == "active"]
    return sorted(reversed(active), key=lambda k: not k.is_default)


class ByokKeyring:
    """workspace id → {provider id → decrypted key}, read through from the store."""

    def __init__(
        self,
        store: Store,
        cipher: ByokCipher,
        ttl_s: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        *,
        stale_ok: bool = False,
    ) -> None:
        self._store = store
        self._stale_ok = stale_ok
        self._cipher = cipher
        self._ttl = ttl_s
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._cooling: dict[tuple[str, str], float] = {}
        self._reported: set[str] = set()

    @property
    def cipher(self) -> ByokCipher:
        """The cipher the workspace keys are sealed with (the management API writes them)."""
        return self._cipher

    def providers(self, workspace_id: str) -> frozenset[str]:
        """Providers the workspace has a usable key for now (none cooling after a 429)."""
        secrets = self._entry(workspace_id).secrets
        if not self._cooling:
            return frozenset(secrets)
        now = self._clock()
        return frozenset(p for p in secrets if self._cooling.get((workspace_id, p), 0.0) <= now)

    def cooling(self, workspace_id: str) -> dict[str, float]:
        """Providers whose key of this workspace is cooling, with the seconds left."""
        now = self._clock()
        return {
            provider: until - now
            for (workspace, provider), until in self._cooling.items()
            if workspace == workspace_id and until > now
        }

    def secret(self, workspace_id: str, provider: str) -> str | None:
        """The key to call ``provider`` with for this workspace; None when it has none."""
        return self._entry(workspace_id).secrets.get(provider)

    def cool(self, workspace_id: str, provider: str, seconds: float) -> None:
        """The provider rate-limited this workspace's key: leave it out for ``seconds``."""
        now = self._clock()
        self._cooling = {k: v for k, v in self._cooling.items() if v > now}
        self._cooling[(workspace_id, provider)] = now + max(seconds, 0.0)

    def invalidate(self, workspace_id: str) -> None:
        """Forget the workspace here (after a write), so this process reads it fresh."""
        self._cache.pop(workspace_id, None)
        self._cooling = {k: v for k, v in self._cooling.items() if k[0] != workspace_id}

    def _entry(self, workspace_id: str) -> _Entry:
        now = self._clock()
        entry = self._cache.get(workspace_id)
        if entry is not None and entry.expires > now:
            return entry
        try:
            loaded = self._load(workspace_id)
        except StoreUnavailable:
            if not self._stale_ok:
                raise
            return entry if entry is not None else _Entry(now, {})  # fail-open: last known
        entry = _Entry(now + self._ttl, loaded)
        if len(self._cache) > _MAX_ENTRIES:
            self._cache.clear()
        self._cache[workspace_id] = entry
        return entry

    def _load(self, workspace_id: str) -> dict[str, str]:
        by_provider: dict[str, list[ProviderKey]] = {}
        for key in self._store.list_provider_keys(workspace_id):
            by_provider.setdefault(key.provider, []).append(key)
        secrets: dict[str, str] = {}
        for provider, keys in by_provider.items():
            for key in serving_order(keys):
                try:
                    secrets[provider] = self._cipher.decrypt(workspace_id, provider, key.ciphertext)
                    break
                except DecryptError as exc:
                    self._report(key, str(exc))
        return secrets

    def _report(self, key: ProviderKey, reason: str) -> None:
        """One warning per key and process: the key id and why, never any key material."""
        if key.id in self._reported:
            return
        if len(self._reported) > _MAX_ENTRIES:
            self._reported.clear()
        self._reported.add(key.id)
        log.warning(
            "byok_decrypt_failed workspace=%s provider=%s key_id=%s reason=%r: the platform "
            "key serves this provider instead",
            key.workspace_id,
            key.provider,
            key.id,
            reason,
        )
