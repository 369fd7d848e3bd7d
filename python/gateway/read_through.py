"""A per-process, per-workspace read-through cache with a short TTL, for settings the hot path
reads on every request and the store changes rarely (routing settings, governance rules).

A write through this process's management API calls ``invalidate`` so the change is seen at
once here; other processes see it within the TTL. With ``stale_ok`` (the fail-open store
mode) an unreachable store serves the last value seen, or ``fallback`` if there is none,
instead of raising ``StoreUnavailable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from gateway.store.ledger import StoreUnavailable

T = TypeVar("T")
CACHE_TTL_S = 1.0
_MAX_ENTRIES = 100_000


class ReadThroughCache(Generic[T]):
    def __init__(
        self,
        load: Callable[[str], T],
        *,
        fallback: T,
        stale_ok: bool = False,
        ttl_s: float = CACHE_TTL_S,
    ) -> None:
        self._load = load
        self._fallback = fallback
        self._stale_ok = stale_ok
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, T]] = {}

    def get(self, workspace_id: str) -> T:
        now = time.monotonic()
        cached = self._cache.get(workspace_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            value = self._load(workspace_id)
        except StoreUnavailable:
            if not self._stale_ok:
                raise
            return cached[1] if cached is not None else self._fallback
        if len(self._cache) > _MAX_ENTRIES:
            self._cache.clear()
        self._cache[workspace_id] = (now + self._ttl, value)
        return value

    def invalidate(self, workspace_id: str) -> None:
        """Forget the workspace here (after a write), so this process reads it fresh."""
        self._cache.pop(workspace_id, None)
