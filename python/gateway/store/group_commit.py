"""Group commit: what the event loop asks of the store in one loop iteration is done as one
batch, one store transaction.

Awaiting ``submit`` queues an item; at the end of the loop's current iteration everything
queued meanwhile runs as one batch. The batch first runs right there on the loop when
``inline`` can do it without waiting (the store's lock is free and no other process holds
the write lock), which costs no thread hop. Otherwise it goes to this group's thread, which
may wait as long as it must: the loop itself never waits for the store's lock, a busy
database or a checkpoint. What reaches the thread while it works forms its next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 256
"""Items per transaction at most, so that one batch cannot hold the store's lock for long."""

_Waiter = tuple["asyncio.Future[Result]", asyncio.AbstractEventLoop]
Run = Callable[[Sequence[Item]], list[Result]]
Inline = Callable[[Sequence[Item]], "list[Result] | None"]


class GroupCommit(Generic[Item, Result]):
    """``run(batch)`` returns one result per item, in order, or raises for the whole batch;
    ``inline(batch)`` does the same, or returns None at once when it would have to wait."""

    def __init__(self, run: Run[Item, Result], inline: Inline[Item, Result], *, name: str) -> None:
        self._run = run
        self._inline = inline
        self._queued: dict[asyncio.AbstractEventLoop, list[tuple[Item, asyncio.Future[Result]]]]
        self._queued = {}
        self._ready = threading.Condition(threading.Lock())
        self._items: list[Item] = []
        self._waiters: list[_Waiter[Result]] = []
        self._idle = False
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def submit(self, item: Item) -> Result:
        if self._closed:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        queued = self._queued.get(loop)
        if queued is None:
            queued = self._queued[loop] = []
            loop.call_soon(self._flush, loop)
        queued.append((item, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        queued = self._queued.pop(loop, [])
        for start in range(0, len(queued), MAX_BATCH):
            batch = queued[start : start + MAX_BATCH]
            items = [item for item, _ in batch]
            try:
                results: list[Result] | BaseException | None = self._inline(items)
            except BaseException as error:  # handed to every caller of the batch
                results = error
            if results is None:
                self._hand_over(items, [(future, loop) for _, future in batch])
            else:
                _settle([(future, n) for n, (_, future) in enumerate(batch)], results)

    def _hand_over(self, items: list[Item], waiters: list[_Waiter[Result]]) -> None:
        with self._ready:
            self._items.extend(items)
            self._waiters.extend(waiters)
            if self._idle:
                self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=10.0)

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._items and not self._closed:
                    self._idle = True
                    self._ready.wait()
                self._idle = False
                if not self._items:
                    return
                items, self._items = self._items[:MAX_BATCH], self._items[MAX_BATCH:]
                waiters, self._waiters = self._waiters[:MAX_BATCH], self._waiters[MAX_BATCH:]
            try:
                results: list[Result] | BaseException = self._run(items)
            except BaseException as error:  # handed to every caller of the batch
                results = error
            _answer(waiters, results)


def _answer(waiters: list[_Waiter[Result]], results: list[Result] | BaseException) -> None:
    """From the thread: one ``call_soon_threadsafe`` per event loop in the batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], int]]] = {}
    for index, (future, loop) in enumerate(waiters):
        by_loop.setdefault(loop, []).append((future, index))
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, futures, results)


def _settle(
    futures: list[tuple[asyncio.Future[Result], int]], results: list[Result] | BaseException
) -> None:
    for future, index in futures:
        if future.done():
            continue  # the caller was cancelled; its reservation expires with its TTL
        if isinstance(results, BaseException):
            future.set_exception(results)
        else:
            future.set_result(results[index])
