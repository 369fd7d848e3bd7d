"""Coarse deadlines (``gateway.deadlines``) on a real event loop: never early, at most a slot
late, cancellable, and ``within`` keeps ``asyncio.timeout``'s contract."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.deadlines import GRAIN_S, Deadlines

needs_uncancel = pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.uncancel: 3.11+")


def run(coro_fn):  # type: ignore[no-untyped-def]
    return uvloop.run(coro_fn())


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=0.12), min_size=1, max_size=8))
def test_each_callback_fires_once_after_its_deadline_and_within_a_slot(delays: list[float]) -> None:
    async def main() -> list[tuple[float, float]]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        fired: list[tuple[float, float]] = []
        start = loop.time()
        for delay in delays:
            deadlines.after(delay, lambda d=delay: fired.append((d, loop.time() - start)))
        await asyncio.sleep(max(delays) + 3 * GRAIN_S)
        assert deadlines.pending() == 0
        return fired

    fired = run(main)
    assert sorted(d for d, _ in fired) == sorted(delays)
    for delay, at in fired:
        assert at >= delay
        assert at <= delay + GRAIN_S + 0.05  # a slot, plus a busy machine's scheduling slack


def test_a_cancelled_deadline_never_fires_and_leaves_nothing_pending() -> None:
    async def main() -> tuple[list[str], int]:
        deadlines = Deadlines(asyncio.get_running_loop())
        fired: list[str] = []
        kept = deadlines.after(0.01, lambda: fired.append("kept"))
        dropped = deadlines.after(0.01, lambda: fired.append("dropped"))
        dropped.cancel()
        dropped.cancel()  # idempotent
        await asyncio.sleep(0.01 + 3 * GRAIN_S)
        assert kept.fired and not dropped.fired
        return fired, deadlines.pending()

    assert run(main) == (["kept"], 0)


def test_a_failing_callback_does_not_skip_the_others_in_its_slot() -> None:
    async def main() -> tuple[list[int], list[str]]:
        loop = asyncio.get_running_loop()
        reported: list[str] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))
        deadlines = Deadlines(loop)
        fired: list[int] = []

        def boom() -> None:
            raise RuntimeError("boom")

        deadlines.after(0.0, lambda: fired.append(1))
        deadlines.after(0.0, boom)
        deadlines.after(0.0, lambda: fired.append(2))
        await asyncio.sleep(3 * GRAIN_S)
        return sorted(fired), reported

    assert run(main) == ([1, 2], ["deadline callback failed"])


@needs_uncancel
def test_within_returns_the_result_in_time_and_raises_timeout_when_late() -> None:
    async def main() -> tuple[str, bool, bool]:
        deadlines = Deadlines(asyncio.get_running_loop())

        async def slow(seconds: float) -> str:
            await asyncio.sleep(seconds)
            return "done"

        result = await deadlines.within(1.0, slow(0.0))
        try:
            await deadlines.within(0.02, slow(5.0))
            timed_out = False
        except asyncio.TimeoutError:
            timed_out = True
        current = asyncio.current_task()
        assert current is not None
        return result, timed_out, current.cancelling() == 0

    assert run(main) == ("done", True, True)


@needs_uncancel
def test_within_lets_a_cancellation_from_elsewhere_through() -> None:
    async def main() -> str:
        deadlines = Deadlines(asyncio.get_running_loop())

        async def waits() -> str:
            try:
                await deadlines.within(5.0, asyncio.sleep(5.0))
            except asyncio.TimeoutError:
                return "timeout"
            return "finished"

        task = asyncio.get_running_loop().create_task(waits())
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"

    assert run(main) == "cancelled"
