"""The load harness's parts, without a gateway: upstream, client, load generator, stats."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bench import procs
from gateway.bench.client import Target, build_target, fetch
from gateway.bench.http11 import LAST_CHUNK, encode_chunk, parse_chunked, parse_head
from gateway.bench.loadgen import run_closed_loop, run_open_loop
from gateway.bench.setup import request_body
from gateway.bench.stats import percentile, summarize


@pytest.fixture(scope="module")
def bench_upstream() -> Iterator[int]:
    proc, port = procs.start_upstream()
    try:
        yield port
    finally:
        procs.stop(proc)


def _target(port: int, *, stream: bool) -> Target:
    return build_target(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        request_body(stream=stream),
        {"Authorization": "Bearer bench"},
    )


def test_upstream_answers_openai_shapes(bench_upstream: int) -> None:
    async def go() -> tuple[bytes, bytes]:
        plain = await fetch(_target(bench_upstream, stream=False))
        streamed = await fetch(_target(bench_upstream, stream=True))
        assert plain.status == streamed.status == 200
        return plain.body, streamed.body

    plain, streamed = asyncio.run(go())
    completion = msgspec.json.decode(plain)
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "gpt-4o-mini"
    assert completion["usage"]["total_tokens"] > 0
    events = [e.removeprefix(b"data: ") for e in streamed.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    last = msgspec.json.decode(events[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0


def test_open_loop_fixed_rate(bench_upstream: int) -> None:
    result = asyncio.run(run_open_loop(_target(bench_upstream, stream=False), 100, 1.0))
    assert result.scheduled == 100
    assert result.completed == result.ok == 100
    assert result.statuses == {"200": 100}
    assert len(result.latencies_s) == 100
    assert all(x > 0 for x in result.latencies_s)
    assert 0 < result.latency.p50_ms <= result.latency.p99_ms <= result.latency.max_ms
    # Open loop: 100 requests due over [0, 0.99] s, so about 100 req/s were achieved.
    assert 80 < result.achieved_rps < 120


def test_open_loop_count_bound_and_streaming(bench_upstream: int) -> None:
    target = _target(bench_upstream, stream=True)
    result = asyncio.run(run_open_loop(target, 200, 5.0, max_count=50))
    assert result.scheduled == result.ok == 50


def test_closed_loop_counts(bench_upstream: int) -> None:
    result = asyncio.run(run_closed_loop(_target(bench_upstream, stream=False), 4, 0.3))
    assert result.ok > 0 and result.ok == result.completed
    assert result.statuses == {"200": result.ok}


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(0, 100),
)
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    ours = percentile(sorted(values), q)
    theirs = float(np.percentile(np.array(values), q))
    assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-6)


def test_summarize_empty_and_units() -> None:
    assert summarize([]).count == 0
    s = summarize([0.001, 0.002, 0.003])
    assert s.p50_ms == pytest.approx(2.0) and s.max_ms == pytest.approx(3.0)


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=8), st.integers(1, 64))
def test_chunked_roundtrip_any_split(parts: list[bytes], split: int) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire = head + b"".join(encode_chunk(p) for p in parts) + LAST_CHUNK
    cut = min(split, len(wire) - 1)
    assert parse_chunked(wire[:cut], len(head)) is None
    parsed = parse_head(wire)
    assert parsed is not None and parsed.chunked and parsed.end == len(head)
    assert parse_chunked(wire, parsed.end) == (b"".join(parts), len(wire))
