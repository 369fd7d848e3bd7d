"""Blocking calls awaited from the event loop on a bounded pool of threads of their own.

The store's calls are synchronous (SQLite, and the Redis client's sync half). On the event
loop one of them that waits for the network stalls every request of the worker, ``/health``
included, for as long as the store does (docs/governance.md, "When the store stalls"). So the
hot path's cache misses, and the management API's handlers, run here instead. The pool is
bounded, so a stalled store ties up at most ``workers`` threads; what comes after waits its
turn in the queue, and the loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class OffLoop:
    def __init__(self, *, workers: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def __call__(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
