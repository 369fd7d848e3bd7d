"""Open-loop (fixed-rate) and closed-loop (max-throughput) load generation.

Open loop: request ``i`` is due at ``t0 + i / rate`` whatever happened before, and its latency
is measured from that scheduled time, not from when a connection became free. A closed-loop
tester that waits for answers before sending hides a stall (coordinated omission); this one
charges the stall to every request queued behind it. Runs are bounded by count and time:
requests still unanswered ``drain_s`` after the last one was due are cancelled and counted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable

import msgspec

from gateway.bench.client import Connection, Pool, Response, Target
from gateway.bench.stats import LatencySummary, summarize


class Live:
    """Counters a progress display reads while a run is going."""

    def __init__(self, total: int, duration_s: float) -> None:
        self.total = total
        self.duration_s = duration_s
        self.started = 0.0  # loop time of t0, 0 before start
        self.sent = 0
        self.done = 0
        self.errors = 0


class RunResult(msgspec.Struct, kw_only=True):
    """One run's figures; ``latencies_s`` (2xx only) is kept for merging runs, not reported."""

    mode: str  # "open" or "closed"
    target_rate: float | None
    connections: int  # the pool cap (open loop) or the connections kept busy (closed)
    scheduled: int
    completed: int
    ok: int
    elapsed_s: float
    achieved_rps: float
    statuses: dict[str, int]
    latency: LatencySummary
    latencies_s: list[float] = msgspec.field(default_factory=list)
    # To the first byte of each 2xx body (a stream's first event), from the same start.
    first_byte: LatencySummary | None = None
    first_byte_s: list[float] = msgspec.field(default_factory=list)
    # CPU seconds the server's process tree used during the run, when the harness has its PID.
    cpu_s: float | None = None


class _Recorder:
    def __init__(self, live: Live) -> None:
        self.live = live
        self.latencies: list[float] = []
        self.first_bytes: list[float] = []
        self.statuses: collections.Counter[str] = collections.Counter()
        self.last_done = 0.0

    def response(self, resp: Response, started: float, now: float) -> None:
        """``resp`` answered at ``now`` to a request due (open loop) or sent at ``started``."""
        self.live.done += 1
        self.last_done = now
        self.statuses[str(resp.status)] += 1
        if 200 <= resp.status < 300:
            self.latencies.append(now - started)
            self.first_bytes.append(resp.first_byte - started)
        else:
            self.live.errors += 1

    def error(self, kind: str) -> None:
        self.live.errors += 1
        self.statuses[kind] += 1

    def result(self, mode: str, rate: float | None, conc: int, n: int, t0: float) -> RunResult:
        ok = len(self.latencies)
        elapsed = max(self.last_done - t0, 1e-9)
        return RunResult(
            mode=mode,
            target_rate=rate,
            connections=conc,
            scheduled=n,
            completed=self.live.done,
            ok=ok,
            elapsed_s=elapsed,
            achieved_rps=ok / elapsed,
            statuses=dict(self.statuses),
            latency=summarize(self.latencies),
            latencies_s=self.latencies,
            first_byte=summarize(self.first_bytes),
            first_byte_s=self.first_bytes,
        )


def merge(runs: list[RunResult]) -> RunResult:
    """Pool segments of one path at one rate into one result."""
    statuses: dict[str, int] = {}
    for run in runs:
        for k, v in run.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    latencies = [x for run in runs for x in run.latencies_s]
    first_bytes = [x for run in runs for x in run.first_byte_s]
    elapsed = sum(run.elapsed_s for run in runs)
    cpu = [run.cpu_s for run in runs if run.cpu_s is not None]
    return RunResult(
        mode=runs[0].mode,
        target_rate=runs[0].target_rate,
        connections=runs[0].connections,
        scheduled=sum(r.scheduled for r in runs),
        completed=sum(r.completed for r in runs),
        ok=len(latencies),
        elapsed_s=elapsed,
        achieved_rps=len(latencies) / elapsed if elapsed else 0.0,
        statuses=statuses,
        latency=summarize(latencies),
        latencies_s=latencies,
        first_byte=summarize(first_bytes) if first_bytes else None,
        first_byte_s=first_bytes,
        cpu_s=sum(cpu) if len(cpu) == len(runs) else None,
    )


async def _one(pool: Pool, target: Target, rec: _Recorder, scheduled: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        conn = await pool.acquire()
    except OSError:
        rec.error("connect_error")
        return
    try:
        resp = await conn.request(target.next_request())
    except (OSError, RuntimeError):
        pool.discard(conn)
        rec.error("conn_error")
        return
    except asyncio.CancelledError:
        pool.discard(conn)
        raise
    rec.response(resp, scheduled, loop.time())
    pool.release(conn)


async def run_open_loop(
    target: Target,
    rate: float,
    duration_s: float,
    *,
    max_count: int | None = None,
    prefill: int = 16,
    max_conns: int = 256,
    drain_s: float = 5.0,
    live: Live | None = None,
) -> RunResult:
    """Offer ``rate`` req/s for ``duration_s`` (at most ``max_count`` requests)."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    n = int(rate * duration_s)
    if max_count is not None:
        n = min(n, max_count)
    live = live or Live(n, duration_s)
    live.total = n
    rec = _Recorder(live)
    pool = Pool(target, max_conns)
    await pool.prefill(prefill)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    t0 = loop.time() + 0.01
    live.started = t0
    interval = 1.0 / rate
    i = 0
    while i < n:
        now = loop.time()
        while i < n and t0 + i * interval <= now:
            task = loop.create_task(_one(pool, target, rec, t0 + i * interval))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        live.sent = i
        if i < n:
            await asyncio.sleep(t0 + i * interval - loop.time())
    await _drain(tasks, rec, drain_s)
    pool.close()
    return rec.result("open", rate, max_conns, n, t0)


async def _drain(tasks: set[asyncio.Task[None]], rec: _Recorder, drain_s: float) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=drain_s)
    for task in pending:
        task.cancel()
        rec.error("timeout")
    if pending:
        await asyncio.wait(pending)


async def run_closed_loop(
    target: Target,
    concurrency: int,
    duration_s: float,
    *,
    live: Live | None = None,
) -> RunResult:
    """Keep ``concurrency`` requests in flight for ``duration_s``: the maximum throughput."""
    loop = asyncio.get_running_loop()
    live = live or Live(0, duration_s)
    rec = _Recorder(live)
    conns = await asyncio.gather(
        *(Connection.open(target.host, target.port) for _ in range(concurrency))
    )
    t0 = loop.time()
    live.started = t0
    deadline = t0 + duration_s

    async def worker(conn: Connection) -> None:
        try:
            while loop.time() < deadline:
                sent = loop.time()
                live.sent += 1
                resp: Response | None = None
                try:
                    resp = await conn.request(target.next_request())
                except (OSError, RuntimeError):
                    rec.error("conn_error")
                if resp is not None:
                    rec.response(resp, sent, loop.time())
                if resp is None or not conn.reusable:
                    conn.close()
                    conn = await Connection.open(target.host, target.port)
        except OSError:
            rec.error("connect_error")
        finally:
            conn.close()

    await _bounded(asyncio.gather(*(worker(c) for c in conns)), duration_s + 10.0)
    return rec.result("closed", None, concurrency, live.sent, t0)


async def _bounded(aw: Awaitable[object], timeout: float) -> None:
    """Wait at most ``timeout``: a hung server must not hang the harness."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.ensure_future(aw), timeout)
