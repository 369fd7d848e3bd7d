"""The harness's results: one msgspec structure, written as JSON and as a markdown report.

Numbers from a shared, noisy machine mean little without the machine and the load it was
under, so the report always carries nproc, CPU model and the load average at start.
"""

from __future__ import annotations

import math
import os
import platform
import sys

import msgspec

from gateway.bench.loadgen import RunResult
from gateway.bench.stats import LatencySummary


class Machine(msgspec.Struct, kw_only=True):
    nproc: int
    cpu_model: str
    python: str
    kernel: str
    loadavg_at_start: list[float]


class RateResult(msgspec.Struct, kw_only=True):
    rate: float
    direct: RunResult
    gateway: RunResult
    added_p50_ms: float
    added_p90_ms: float
    added_p99_ms: float
    # The peer gateway (``--peer-*``), measured in the same interleaved segments.
    peer: RunResult | None = None
    peer_added_p50_ms: float | None = None
    peer_added_p90_ms: float | None = None
    peer_added_p99_ms: float | None = None
    # To the first byte of the body (a stream's first event), when the run streams.
    added_first_byte_p50_ms: float | None = None
    added_first_byte_p99_ms: float | None = None
    peer_added_first_byte_p50_ms: float | None = None
    peer_added_first_byte_p99_ms: float | None = None


class MemoryResult(msgspec.Struct, kw_only=True):
    processes: int
    idle_start_rss_mb: float
    peak_rss_mb: float
    idle_after_rss_mb: float
    idle_start_pss_mb: float
    peak_pss_mb: float
    idle_after_pss_mb: float


class ComparisonRow(msgspec.Struct, kw_only=True):
    """One figure for Routegate and the peer; ``ratio`` is Routegate ÷ peer (None: not
    meaningful, e.g. a zero or negative added latency)."""

    figure: str
    unit: str  # "ms", "CPU ms", "req/s" or "MiB"
    gateway: float
    peer: float
    ratio: float | None


class Report(msgspec.Struct, kw_only=True):
    command: str
    date: str
    machine: Machine
    settings: dict[str, object]
    latency: list[RateResult] = msgspec.field(default_factory=list)
    max_throughput: dict[str, RunResult] = msgspec.field(default_factory=dict)
    memory: MemoryResult | None = None
    peer: str | None = None  # the peer's label, when one was benched
    peer_memory: MemoryResult | None = None
    comparison: list[ComparisonRow] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)


def machine_info() -> Machine:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return Machine(
        nproc=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
        cpu_model=model,
        python=sys.version.split()[0],
        kernel=platform.release(),
        loadavg_at_start=[round(x, 2) for x in os.getloadavg()],
    )


def to_json(report: Report) -> bytes:
    """Pretty JSON without the raw latency samples (NaN becomes null)."""
    data = msgspec.to_builtins(report)
    for entry in data["latency"]:
        for side in ("direct", "gateway", "peer"):
            if entry.get(side):
                entry[side].pop("latencies_s", None)
                entry[side].pop("first_byte_s", None)
    for run in data["max_throughput"].values():
        run.pop("latencies_s", None)
        run.pop("first_byte_s", None)
    return msgspec.json.format(msgspec.json.encode(data), indent=2) + b"\n"


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _errors(run: RunResult) -> str:
    bad = {k: v for k, v in run.statuses.items() if not k.startswith("2")}
    return ", ".join(f"{k}: {v}" for k, v in sorted(bad.items())) or "0"


def _lat(s: LatencySummary) -> str:
    return f"{_f(s.p50_ms)} / {_f(s.p99_ms)}"


def _lat_first(run: RunResult) -> str:
    return _lat(run.first_byte) if run.first_byte is not None else "n/a"


def _first_byte_table(latency: list[RateResult]) -> list[str]:
    """A stream's time to its first event, per offered rate (what a chat UI waits on)."""
    out = [
        "### Added time to the first byte of the stream (open loop, ms)",
        "",
        "| offered req/s | direct p50 / p99 | gateway p50 / p99 | **added p50** | **added p99** |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in latency:
        p50, p99 = r.added_first_byte_p50_ms, r.added_first_byte_p99_ms
        if p50 is None or p99 is None:
            continue
        out.append(
            f"| {r.rate:g} | {_lat_first(r.direct)} | {_lat_first(r.gateway)}"
            f" | **{_f(p50)}** | **{_f(p99)}** |"
        )
    return [*out, ""] if len(out) > 4 else []


_DIGITS = {"ms": 2, "CPU ms": 3, "req/s": 0, "MiB": 1}


def _comparison(report: Report) -> list[str]:
    peer = report.peer or "peer"
    out = [
        f"### Routegate and {peer} side by side (same upstream and request, interleaved)",
        "",
        f"| figure | Routegate | {peer} | Routegate ÷ {peer} |",
        "|---|---:|---:|---:|",
    ]
    for row in report.comparison:
        digits = _DIGITS.get(row.unit, 2)
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.2f}×"
        out.append(
            f"| {row.figure} ({row.unit}) | {_f(row.gateway, digits)} | {_f(row.peer, digits)}"
            f" | {ratio} |"
        )
    return [*out, ""]


def tables(report: Report) -> str:
    """The figures as markdown tables (also the console summary)."""
    out: list[str] = []
    if report.latency:
        out += [
            "### Added latency at fixed rates (open loop, ms, from scheduled send time)",
            "",
            "| offered req/s | direct p50 / p99 | gateway p50 / p99 | **added p50** | **added p99**"
            " | gateway achieved req/s | gateway errors |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        out += [
            f"| {r.rate:g} | {_lat(r.direct.latency)} | {_lat(r.gateway.latency)}"
            f" | **{_f(r.added_p50_ms)}** | **{_f(r.added_p99_ms)}**"
            f" | {r.gateway.achieved_rps:.0f} | {_errors(r.gateway)} |"
            for r in report.latency
        ]
        out.append("")
    if report.settings.get("stream"):
        out += _first_byte_table(report.latency)
    if report.max_throughput:
        out += [
            "### Maximum throughput (closed loop: each connection sends when answered)",
            "",
            "| target | connections | req/s | p50 / p99 ms | errors |",
            "|---|---:|---:|---:|---|",
        ]
        out += [
            f"| {name.split(',')[0]} | {run.connections} | {run.achieved_rps:.0f}"
            f" | {_lat(run.latency)} | {_errors(run)} |"
            for name, run in report.max_throughput.items()
        ]
        out.append("")
    if report.memory is not None:
        m = report.memory
        out += [
            f"### Gateway memory ({m.processes} processes in the tree, MiB)",
            "",
            "| | idle after start | peak under load | idle after load |",
            "|---|---:|---:|---:|",
            f"| RSS (sum) | {m.idle_start_rss_mb:.1f} | {m.peak_rss_mb:.1f}"
            f" | {m.idle_after_rss_mb:.1f} |",
            f"| PSS (sum) | {m.idle_start_pss_mb:.1f} | {m.peak_pss_mb:.1f}"
            f" | {m.idle_after_pss_mb:.1f} |",
            "",
        ]
    if report.comparison:
        out += _comparison(report)
    out += [f"- {note}" for note in report.notes]
    return "\n".join(out).rstrip() + "\n"


def to_markdown(report: Report) -> str:
    m = report.machine
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
    return (
        "# Routegate load benchmark\n\n"
        f"- Command: `{report.command}`\n"
        f"- Date: {report.date}\n"
        f"- Machine: {m.nproc} CPUs ({m.cpu_model}), Linux {m.kernel}, Python {m.python},"
        f" load average at start {m.loadavg_at_start}\n"
        f"- Settings: {settings}\n\n" + tables(report)
    )
