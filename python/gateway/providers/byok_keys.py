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

from gateway.providers.byok_crypto import ByokCipher, DecryptError
from gateway.store import Store
from gateway.store.read_through import MISSING, Offload, ReadThroughCache
from gateway.store.records import ProviderKey

CACHE_TTL_S = 1.0
log = logging.getLogger("routegate.byok")
_MAX_REPORTED = 100_000


def serving_order(keys: list[ProviderKey]) -> list[ProviderKey]:
    """A provider's active keys in the order they are tried: the default, then newest first."""
    active = [k for k in keys if k.status == "active"]
    return sorted(reversed(active), key=lambda k: not k.is_default)


class ByokKeyring:
    """workspace id → {provider id → decrypted key}, read through from the store.

    The hot path awaits ``refresh`` once per request (a miss is read off the event loop);
    ``providers`` and ``secret`` then read the entry it left."""

    def __init__(
        self,
        store: Store,
        cipher: ByokCipher,
        ttl_s: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        *,
        stale_ok: bool = False,
        offload: Offload[Mapping[str, str]] | None = None,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._clock = clock
        self._keys: ReadThroughCache[str, Mapping[str, str]] = ReadThroughCache(
            self._load, fallback={}, stale_ok=stale_ok, ttl_s=ttl_s, clock=clock, offload=offload
        )
        self._cooling: dict[tuple[str, str], float] = {}
        self._reported: set[str] = set()

    @property
    def cipher(self) -> ByokCipher:
        """The cipher the workspace keys are sealed with (the management API writes them)."""
        return self._cipher

    async def refresh(self, workspace_id: str) -> None:
        """Make sure the workspace's keys are at most the TTL old, reading off the loop."""
        await self._keys.aget(workspace_id)

    def is_fresh(self, workspace_id: str) -> bool:
        """Whether the workspace's keys are cached and within the TTL (``refresh`` would
        not read the store)."""
        return self._keys.fresh(workspace_id) is not MISSING

    def providers(self, workspace_id: str) -> frozenset[str]:
        """Providers the workspace has a usable key for now (none cooling after a 429)."""
        secrets = self._keys.get(workspace_id)
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
        """The key to call ``provider`` with for this workspace; None when it has none. Read
        from the entry ``refresh`` left (a request's attempts all use the keys it was routed
        with)."""
        return self._keys.last(workspace_id).get(provider)

    def cool(self, workspace_id: str, provider: str, seconds: float) -> None:
        """The provider rate-limited this workspace's key: leave it out for ``seconds``."""
        now = self._clock()
        self._cooling = {k: v for k, v in self._cooling.items() if v > now}
        self._cooling[(workspace_id, provider)] = now + max(seconds, 0.0)

    def invalidate(self, workspace_id: str) -> None:
        """Forget the workspace here (after a write), so this process reads it fresh."""
        self._keys.invalidate(workspace_id)
        self._cooling = {k: v for k, v in self._cooling.items() if k[0] != workspace_id}

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
        if len(self._reported) > _MAX_REPORTED:
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
