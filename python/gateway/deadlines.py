"""Coarse deadlines for the hot path: one event-loop timer per 25 ms slot, not per request.

Every request carries two deadlines (its body must arrive within ``body_timeout_s``; its
upstream answer within ``timeout_s.total``) that almost never fire. An event-loop timer costs
its creation and its cancellation on every request (uvloop's ``call_later`` + ``cancel``:
about 2.4 µs; ``asyncio.timeout``: about 5 µs, measured in docs/decisions.md). Here a deadline
is an entry in the set of its 25 ms slot; the slot's one loop timer fires every callback still
in it. A callback runs no earlier than its deadline and at most ``GRAIN_S`` after it, which is
far below any timeout a gateway uses.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

GRAIN_S = 0.025
_PER_SECOND = 1 / GRAIN_S
T = TypeVar("T")


class Deadline:
    """One pending callback; ``cancel`` is idempotent and cheap."""

    __slots__ = ("_callback", "_slot", "fired")

    def __init__(self, callback: Callable[[], object], slot: set[Deadline]) -> None:
        self._callback: Callable[[], object] | None = callback
        self._slot = slot
        self.fired = False

    def cancel(self) -> None:
        if self._callback is not None:
            self._callback = None
            self._slot.discard(self)

    def _fire(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            self.fired = True
            callback()


class Deadlines:
    """Deadlines on one event loop, grouped by slot; held by what uses them (the upstream
    pool, the app), so they live no longer than their owner."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._time = loop.time
        self._slots: dict[int, set[Deadline]] = {}

    def after(self, seconds: float, callback: Callable[[], object]) -> Deadline:
        """Call ``callback`` once, between ``seconds`` and ``seconds + GRAIN_S`` from now,
        unless the returned deadline is cancelled first."""
        # The slot after the one the deadline falls in (never earlier than the deadline).
        index = int((self._time() + seconds) * _PER_SECOND) + 1
        slot = self._slots.get(index)
        if slot is None:
            slot = self._slots[index] = set()
            # A millisecond past the slot: a loop timer may run up to a millisecond early.
            self._loop.call_at(index * GRAIN_S + 0.001, self._fire, index)
        deadline = Deadline(callback, slot)
        slot.add(deadline)
        return deadline

    async def within(self, seconds: float, awaitable: Awaitable[T]) -> T:
        """``awaitable``'s result, or ``asyncio.TimeoutError`` once ``seconds`` have passed
        (``asyncio.timeout``'s contract, including a cancellation from elsewhere passing
        through as a cancellation). Before Python 3.11 (no ``Task.uncancel``): ``wait_for``."""
        if sys.version_info < (3, 11):
            return await asyncio.wait_for(awaitable, seconds)
        task = asyncio.current_task()
        assert task is not None
        deadline = self.after(seconds, task.cancel)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if deadline.fired and task.uncancel() == 0:
                raise asyncio.TimeoutError from None
            raise
        finally:
            deadline.cancel()

    def _fire(self, index: int) -> None:
        slot = self._slots.pop(index, None)
        for deadline in list(slot or ()):
            try:
                deadline._fire()
            except Exception as exc:  # one failing callback must not skip the others
                self._loop.call_exception_handler(
                    {"message": "deadline callback failed", "exception": exc}
                )

    def pending(self) -> int:
        """Callbacks still waiting (for tests and introspection)."""
        return sum(len(slot) for slot in self._slots.values())
