"""A per-process read-through cache with a short TTL, for what the hot path reads on every
request and the store changes rarely: key records, routing settings, governance rules, BYOK keys.

Two ways in. ``aget`` is the event loop's: a miss is loaded on a worker thread (``offload``),
never on the loop, and concurrent misses for one entry share that one load, so a stalled
store stalls only the requests that need it (``/health`` and cached traffic go on) and a
burst of requests does not become a burst of store reads. ``get`` loads inline, for callers
that are not on an event loop (the command line, tests).

A write through this process's management API calls ``invalidate`` so the change is seen at
once here; other processes see it within the TTL. With ``stale_ok`` (the fail-open store
mode) an unreachable store serves the last value seen, or ``fallback`` if there is none,
instead of raising ``StoreUnavailable``; without a ``fallback`` it raises when it has nothing.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from gateway.store.ledger import StoreUnavailable

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
CACHE_TTL_S = 1.0
_MAX_ENTRIES = 100_000
_NO_FALLBACK: object = object()


class Missing(enum.Enum):
    """What ``fresh`` returns when the entry must be loaded (``None`` can be a cached value)."""

    MISSING = enum.auto()


MISSING = Missing.MISSING

Offload = Callable[[Callable[[], T]], Awaitable[T]]
"""Runs a blocking call off the event loop (a worker thread) and awaits its result."""


async def to_thread(call: Callable[[], T]) -> T:
    """The default ``Offload``: asyncio's default executor."""
    return await asyncio.to_thread(call)


class ReadThroughCache(Generic[K, T]):
    def __init__(
        self,
        load: Callable[[K], T],
        *,
        fallback: T | object = _NO_FALLBACK,
        stale_ok: bool = False,
        ttl_s: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        offload: Offload[T] | None = None,
    ) -> None:
        self._load = load
        self._fallback = fallback
        self._stale_ok = stale_ok
        self._ttl = ttl_s
        self._clock = clock
        self._offload: Offload[T] = offload or to_thread
        self._cache: dict[K, tuple[float, T]] = {}
        self._pending: dict[K, asyncio.Task[T]] = {}

    def get(self, key: K) -> T:
        """The entry, loaded inline when missing or older than the TTL."""
        found = self.fresh(key)
        if found is not MISSING:
            return found
        try:
            value = self._load(key)
        except StoreUnavailable as error:
            return self._stale(key, error)
        return self._put(key, value)

    def fresh(self, key: K) -> T | Missing:
        """The entry if it is cached and within the TTL, else ``MISSING``: the hot path's
        check before it awaits ``aget`` (a hit then costs no coroutine)."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        return MISSING

    async def aget(self, key: K) -> T:
        """The entry; a miss is loaded off the loop, once for all who wait for it."""
        found = self.fresh(key)
        if found is not MISSING:
            return found
        loop = asyncio.get_running_loop()
        pending = self._pending.get(key)
        if pending is None or pending.get_loop() is not loop:
            pending = loop.create_task(self._refresh(key))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(pending)

    def last(self, key: K) -> T:
        """The last value loaded, whatever its age (after an ``aget`` earlier in the same
        request, without a second look at the clock); loaded inline only when there is none."""
        cached = self._cache.get(key)
        return cached[1] if cached is not None else self.get(key)

    def invalidate(self, key: K) -> None:
        """Forget the entry here (after a write), so this process reads it fresh."""
        self._cache.pop(key, None)

    async def _refresh(self, key: K) -> T:
        try:
            value = await self._offload(lambda: self._load(key))
        except StoreUnavailable as error:
            return self._stale(key, error)
        return self._put(key, value)

    def _settled(self, key: K, done: asyncio.Task[T]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved here: a waiter that went away must not leave it unseen

    def _stale(self, key: K, error: StoreUnavailable) -> T:
        """Fail-open: the last value the store gave, else the fallback; else re-raise."""
        cached = self._cache.get(key)
        if self._stale_ok:
            if cached is not None:
                return cached[1]
            if self._fallback is not _NO_FALLBACK:
                return self._fallback  # type: ignore[return-value]
        raise error

    def _put(self, key: K, value: T) -> T:
        if len(self._cache) > _MAX_ENTRIES:
            self._cache.clear()
        self._cache[key] = (self._clock() + self._ttl, value)
        return value
