"""Routegate beside a peer gateway: the per-rate results and the side-by-side figures.

Pure functions over the runs the harness measured, so the arithmetic is tested on its own.
Every ratio is Routegate ÷ peer: above 1 means Routegate costs more (latency, CPU, memory)
or serves more (throughput).
"""

from __future__ import annotations

import math

from gateway.bench.loadgen import RunResult
from gateway.bench.report import ComparisonRow, MemoryResult, RateResult, Report


def ratio(a: float, b: float) -> float | None:
    """``a / b`` when both are finite and positive, else None (a ratio would mislead)."""
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
        return None
    return a / b


def cpu_ms_per_request(run: RunResult) -> float:
    """Server CPU per 2xx answer, in ms; NaN when it was not measured or nothing succeeded."""
    if run.cpu_s is None or run.ok == 0:
        return math.nan
    return run.cpu_s * 1000.0 / run.ok


def rate_result(
    rate: float, direct: RunResult, gateway: RunResult, peer: RunResult | None = None
) -> RateResult:
    """One offered rate: each gateway's percentiles minus the direct path's."""
    d = direct.latency
    result = RateResult(
        rate=rate,
        direct=direct,
        gateway=gateway,
        added_p50_ms=gateway.latency.p50_ms - d.p50_ms,
        added_p90_ms=gateway.latency.p90_ms - d.p90_ms,
        added_p99_ms=gateway.latency.p99_ms - d.p99_ms,
    )
    first = direct.first_byte
    if first is not None and gateway.first_byte is not None:
        result.added_first_byte_p50_ms = gateway.first_byte.p50_ms - first.p50_ms
        result.added_first_byte_p99_ms = gateway.first_byte.p99_ms - first.p99_ms
    if peer is not None:
        result.peer = peer
        result.peer_added_p50_ms = peer.latency.p50_ms - d.p50_ms
        result.peer_added_p90_ms = peer.latency.p90_ms - d.p90_ms
        result.peer_added_p99_ms = peer.latency.p99_ms - d.p99_ms
        if first is not None and peer.first_byte is not None:
            result.peer_added_first_byte_p50_ms = peer.first_byte.p50_ms - first.p50_ms
            result.peer_added_first_byte_p99_ms = peer.first_byte.p99_ms - first.p99_ms
    return result


def _row(figure: str, unit: str, gateway: float, peer: float) -> ComparisonRow:
    return ComparisonRow(
        figure=figure, unit=unit, gateway=gateway, peer=peer, ratio=ratio(gateway, peer)
    )


def _memory_rows(gateway: MemoryResult, peer: MemoryResult) -> list[ComparisonRow]:
    return [
        _row("RSS idle after start", "MiB", gateway.idle_start_rss_mb, peer.idle_start_rss_mb),
        _row("RSS peak under load", "MiB", gateway.peak_rss_mb, peer.peak_rss_mb),
        _row("RSS idle after load", "MiB", gateway.idle_after_rss_mb, peer.idle_after_rss_mb),
    ]


def _first_byte_rows(r: RateResult, at: str) -> list[ComparisonRow]:
    """A stream's added time to its first event (the figure a chat UI waits on)."""
    out = []
    for q, ours, theirs in (
        ("p50", r.added_first_byte_p50_ms, r.peer_added_first_byte_p50_ms),
        ("p99", r.added_first_byte_p99_ms, r.peer_added_first_byte_p99_ms),
    ):
        if ours is not None and theirs is not None:
            out.append(_row(f"added first byte {q} {at}", "ms", ours, theirs))
    return out


def rows(report: Report) -> list[ComparisonRow]:
    """The side-by-side figures of a run with a peer: per fixed rate, per closed loop, RSS."""
    peer = report.peer
    if peer is None:
        return []
    out: list[ComparisonRow] = []
    for r in report.latency:
        if r.peer is None or r.peer_added_p50_ms is None or r.peer_added_p99_ms is None:
            continue
        at = f"at {r.rate:g} req/s"
        out += [
            _row(f"added p50 {at}", "ms", r.added_p50_ms, r.peer_added_p50_ms),
            _row(f"added p99 {at}", "ms", r.added_p99_ms, r.peer_added_p99_ms),
        ]
        if report.settings.get("stream"):
            out += _first_byte_rows(r, at)
        out.append(_row(f"achieved {at}", "req/s", r.gateway.achieved_rps, r.peer.achieved_rps))
        if r.gateway.cpu_s is not None and r.peer.cpu_s is not None:
            cpu = cpu_ms_per_request(r.gateway), cpu_ms_per_request(r.peer)
            out.append(_row(f"CPU per request {at}", "CPU ms", *cpu))
    for key, run in report.max_throughput.items():
        name, _, conns = key.partition(", ")
        other = report.max_throughput.get(f"{peer}, {conns}")
        if name != "gateway" or other is None:
            continue
        loop = f"closed loop, {conns}"
        out.append(_row(f"throughput, {loop}", "req/s", run.achieved_rps, other.achieved_rps))
        if run.cpu_s is not None and other.cpu_s is not None:
            cpu = cpu_ms_per_request(run), cpu_ms_per_request(other)
            out.append(_row(f"CPU per request, {loop}", "CPU ms", *cpu))
    if report.memory is not None and report.peer_memory is not None:
        out += _memory_rows(report.memory, report.peer_memory)
    return out
