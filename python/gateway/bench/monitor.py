"""Things that watch a run: the plain-text progress bar and the gateway memory sampler.

Both are asyncio tasks on the load generator's loop that wake a few times a second: cheap
enough not to disturb the measurement, frequent enough to catch the memory peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from gateway.bench.loadgen import Live
from gateway.bench.procs import Memory, tree_memory
from gateway.bench.report import MemoryResult

_BAR = 24


def render(label: str, live: Live, now: float) -> str:
    elapsed = max(0.0, now - live.started) if live.started else 0.0
    frac = min(1.0, elapsed / live.duration_s) if live.duration_s else 0.0
    filled = int(frac * _BAR)
    bar = "#" * filled + "-" * (_BAR - filled)
    return (
        f"\r{label:<30} [{bar}] {frac * 100:3.0f}% {elapsed:5.1f}s"
        f"  sent {live.sent:>6}  done {live.done:>6}  errors {live.errors:>4} "
    )


@contextlib.asynccontextmanager
async def progress(label: str, live: Live, out: TextIO | None) -> AsyncIterator[None]:
    """Redraw one ``\\r`` line every 0.2 s while the body runs; end it with a newline."""
    if out is None:
        yield
        return
    loop = asyncio.get_running_loop()

    async def draw() -> None:
        while True:
            out.write(render(label, live, loop.time()))
            out.flush()
            await asyncio.sleep(0.2)

    task = loop.create_task(draw())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        out.write(render(label, live, loop.time()) + "\n")
        out.flush()


class MemorySampler:
    """Samples the gateway tree's memory every ``period`` seconds and keeps the peak."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        self.pid = pid
        self.period = period
        self.peak = Memory(0, 0, 0)
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> Memory:
        mem = tree_memory(self.pid)
        if mem.rss_kb > self.peak.rss_kb:
            self.peak = mem._replace(pss_kb=max(mem.pss_kb, self.peak.pss_kb))
        elif mem.pss_kb > self.peak.pss_kb:
            self.peak = self.peak._replace(pss_kb=mem.pss_kb)
        return mem

    def start(self) -> None:
        async def run() -> None:
            while True:
                self.sample()
                await asyncio.sleep(self.period)

        self._task = asyncio.get_running_loop().create_task(run())

    def result(self, idle_start: Memory, idle_after: Memory) -> MemoryResult:
        mib = 1 / 1024
        return MemoryResult(
            processes=self.peak.processes,
            idle_start_rss_mb=idle_start.rss_kb * mib,
            peak_rss_mb=self.peak.rss_kb * mib,
            idle_after_rss_mb=idle_after.rss_kb * mib,
            idle_start_pss_mb=idle_start.pss_kb * mib,
            peak_pss_mb=self.peak.pss_kb * mib,
            idle_after_pss_mb=idle_after.pss_kb * mib,
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def default_out(enabled: bool) -> TextIO | None:
    return sys.stderr if enabled else None
