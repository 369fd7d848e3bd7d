"""``ReadThroughCache.fresh``: the hot path's synchronous look, consistent with ``aget``."""

from __future__ import annotations

import uvloop
from hypothesis import given
from hypothesis import strategies as st

from gateway.store.read_through import MISSING, ReadThroughCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_fresh_is_missing_until_loaded_and_again_once_older_than_the_ttl() -> None:
    clock = Clock()
    loads: list[str] = []

    def load(key: str) -> str | None:
        loads.append(key)
        return None if key == "unknown" else key.upper()

    cache: ReadThroughCache[str, str | None] = ReadThroughCache(load, ttl_s=1.0, clock=clock)
    assert cache.fresh("a") is MISSING
    assert cache.get("a") == "A"
    assert cache.fresh("a") == "A"
    assert cache.get("unknown") is None
    assert cache.fresh("unknown") is None  # a cached None is a value, not a miss
    clock.now += 1.0
    assert cache.fresh("a") is MISSING and cache.fresh("unknown") is MISSING
    assert loads == ["a", "unknown"]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0.0, 0.7)), max_size=20))
def test_fresh_agrees_with_aget_without_loading(steps: list[tuple[str, float]]) -> None:
    """Whenever ``fresh`` has a value, ``aget`` returns it without a load."""
    clock = Clock()
    loads: list[str] = []

    def load(key: str) -> str:
        loads.append(key)
        return f"{key}{len(loads)}"

    async def offload(call):  # type: ignore[no-untyped-def]
        return call()

    cache: ReadThroughCache[str, str] = ReadThroughCache(
        load, ttl_s=1.0, clock=clock, offload=offload
    )

    async def run() -> None:
        for key, advance in steps:
            clock.now += advance
            seen = cache.fresh(key)
            before = len(loads)
            value = await cache.aget(key)
            if seen is not MISSING:
                assert value == seen and len(loads) == before
            else:
                assert len(loads) == before + 1

    uvloop.run(run())
