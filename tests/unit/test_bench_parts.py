"""The load harness's parts, without a gateway: upstream, client, load generator, stats."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bench import compare, peer, procs
from gateway.bench.client import Target, build_target, fetch
from gateway.bench.harness import parse_args
from gateway.bench.http11 import LAST_CHUNK, encode_chunk, parse_chunked, parse_head
from gateway.bench.loadgen import RunResult, merge, run_closed_loop, run_open_loop
from gateway.bench.report import MemoryResult, Report, machine_info, tables
from gateway.bench.setup import request_body
from gateway.bench.stats import LatencySummary, percentile, summarize


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


def test_a_stream_runs_first_byte_is_measured_from_the_same_start(bench_upstream: int) -> None:
    result = asyncio.run(run_open_loop(_target(bench_upstream, stream=True), 100, 0.5))
    assert result.first_byte is not None and result.first_byte.count == result.ok == 50
    assert all(
        0 < first <= whole
        for first, whole in zip(result.first_byte_s, result.latencies_s, strict=True)
    )


def test_the_first_byte_is_when_the_body_starts_not_when_it_ends() -> None:
    """A server that sends its head and first event, then the rest 200 ms later."""

    async def run() -> tuple[float, float]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                + encode_chunk(b"data: first\n\n")
            )
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.write(encode_chunk(b"data: [DONE]\n\n") + LAST_CHUNK)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            result = await run_closed_loop(
                build_target(f"http://127.0.0.1:{port}/v1/chat/completions", b"{}"), 1, 0.1
            )
        assert result.first_byte is not None and result.ok == 1
        return result.first_byte.p50_ms, result.latency.p50_ms

    first_ms, whole_ms = asyncio.run(run())
    assert first_ms < 100
    assert whole_ms >= 200


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


# --- the peer gateway and the side-by-side figures -------------------------------------------


def _run(p50: float, p99: float, *, rps: float = 100.0, cpu_s: float | None = None) -> RunResult:
    n = 200
    return RunResult(
        mode="open",
        target_rate=rps,
        connections=1,
        scheduled=n,
        completed=n,
        ok=n,
        elapsed_s=n / rps,
        achieved_rps=rps,
        statuses={"200": n},
        latency=LatencySummary(
            count=n, mean_ms=p50, p50_ms=p50, p90_ms=p99, p99_ms=p99, max_ms=p99
        ),
        cpu_s=cpu_s,
    )


def test_fill_replaces_only_known_placeholders() -> None:
    template = "port: {port}\nbase: http://{upstream_host}:{upstream_port}/\nx: {a: 1} {other}"
    values = {"port": "9", "upstream_host": "127.0.0.1", "upstream_port": "8"}
    assert peer.fill(template, values) == ("port: 9\nbase: http://127.0.0.1:8/\nx: {a: 1} {other}")


def test_parse_pair_headers_and_env() -> None:
    assert peer.parse_pair("Authorization:  Bearer a:b ", ":") == ("Authorization", "Bearer a:b")
    assert peer.parse_pair("OPENAI_API_KEY=sk=1", "=") == ("OPENAI_API_KEY", "sk=1")
    for bad in ("no-separator", ": value", "two words: x"):
        with pytest.raises(ValueError):
            peer.parse_pair(bad, ":")


def test_with_model_changes_only_the_model() -> None:
    body = request_body(stream=True)
    assert peer.with_model(body, None) is body
    changed = msgspec.json.decode(peer.with_model(body, "openai/gpt-4o-mini"))
    original = msgspec.json.decode(body)
    assert changed.pop("model") == "openai/gpt-4o-mini"
    original.pop("model")
    assert changed == original


def test_redact_hides_keys_headers_and_env() -> None:
    argv = ["--key", "rg_live_x", "--peer-header", "A: b", "--peer-env=K=v", "--rates", "5"]
    assert peer.redact(argv) == ["--key", "…", "--peer-header", "…", "--peer-env=…", "--rates", "5"]


def test_peer_options_are_checked() -> None:
    args = parse_args(["--peer-url", "http://127.0.0.1:1", "--peer-header", "X-A: 1"])
    assert args.peer and args.peer_headers == {"X-A": "1"} and args.peer_env_map == {}
    assert not parse_args([]).peer
    bad = [
        ["--peer-model", "m"],  # no peer
        ["--peer-url", "http://h", "--peer-name", "gateway"],
        ["--peer-url", "http://h", "--peer-config", "c.yaml"],  # template needs a command
        ["--peer-cmd", "x", "--peer-pid", "1"],
        ["--peer-cmd", "x", "--peer-env", "NOEQUALS"],
        ["--peer-url", "http://h", "--peer-path", "no-slash"],
    ]
    for argv in bad:
        with pytest.raises(SystemExit):
            parse_args(argv)


def test_ratio_and_cpu_per_request() -> None:
    assert compare.ratio(3.0, 1.5) == pytest.approx(2.0)
    for a, b in ((0.0, 1.0), (1.0, -0.5), (math.nan, 1.0), (1.0, 0.0)):
        assert compare.ratio(a, b) is None
    assert compare.cpu_ms_per_request(_run(1, 2, cpu_s=0.1)) == pytest.approx(0.5)
    assert math.isnan(compare.cpu_ms_per_request(_run(1, 2)))


def test_merge_sums_cpu_only_when_every_segment_has_it() -> None:
    assert merge([_run(1, 2, cpu_s=0.1), _run(1, 2, cpu_s=0.2)]).cpu_s == pytest.approx(0.3)
    assert merge([_run(1, 2, cpu_s=0.1), _run(1, 2)]).cpu_s is None


def test_rate_result_and_side_by_side_rows() -> None:
    direct, gateway, other = _run(0.5, 2.0), _run(1.5, 6.0, cpu_s=0.1), _run(1.0, 3.0, cpu_s=0.05)
    r = compare.rate_result(500, direct, gateway, other)
    assert (r.added_p50_ms, r.added_p99_ms) == (pytest.approx(1.0), pytest.approx(4.0))
    assert (r.peer_added_p50_ms, r.peer_added_p99_ms) == (pytest.approx(0.5), pytest.approx(1.0))
    assert compare.rate_result(500, direct, gateway).peer is None
    mem = MemoryResult(
        processes=2,
        idle_start_rss_mb=160,
        peak_rss_mb=200,
        idle_after_rss_mb=180,
        idle_start_pss_mb=1,
        peak_pss_mb=1,
        idle_after_pss_mb=1,
    )
    report = Report(command="x", date="d", machine=machine_info(), settings={}, peer="other")
    report.latency.append(r)
    report.max_throughput = {
        "gateway, 32 connections": _run(9, 9, rps=2000, cpu_s=1.0),
        "other, 32 connections": _run(3, 3, rps=8000),  # no CPU figure
        "direct, 32 connections": _run(1, 1, rps=50000),
    }
    report.memory, report.peer_memory = mem, msgspec.structs.replace(mem, peak_rss_mb=50)
    got = {row.figure: row for row in compare.rows(report)}
    assert got["added p50 at 500 req/s"].ratio == pytest.approx(2.0)
    assert got["added p99 at 500 req/s"].ratio == pytest.approx(4.0)
    assert got["CPU per request at 500 req/s"].ratio == pytest.approx(2.0)
    assert got["throughput, closed loop, 32 connections"].ratio == pytest.approx(0.25)
    assert "CPU per request, closed loop, 32 connections" not in got
    assert got["RSS peak under load"].ratio == pytest.approx(4.0)
    report.comparison = list(got.values())
    assert "| throughput, closed loop, 32 connections (req/s) | 2000 | 8000 | 0.25× |" in (
        tables(report)
    )
    assert compare.rows(msgspec.structs.replace(report, peer=None)) == []
    assert not any("first byte" in figure for figure in got)  # not a stream run


def test_a_stream_run_compares_the_added_time_to_the_first_byte() -> None:
    def streamed(p50: float, p99: float, first: tuple[float, float]) -> RunResult:
        summary = LatencySummary(
            count=1, mean_ms=first[0], p50_ms=first[0], p90_ms=first[1], p99_ms=first[1], max_ms=9
        )
        return msgspec.structs.replace(_run(p50, p99), first_byte=summary)

    direct = streamed(1.0, 2.0, (0.5, 1.0))
    r = compare.rate_result(100, direct, streamed(3.0, 5.0, (1.5, 3.0)), streamed(9, 9, (40.5, 41)))
    assert (r.added_first_byte_p50_ms, r.added_first_byte_p99_ms) == (1.0, 2.0)
    assert (r.peer_added_first_byte_p50_ms, r.peer_added_first_byte_p99_ms) == (40.0, 40.0)
    report = Report(
        command="x", date="d", machine=machine_info(), settings={"stream": True}, peer="other"
    )
    report.latency.append(r)
    got = {row.figure: row for row in compare.rows(report)}
    assert got["added first byte p50 at 100 req/s"].ratio == pytest.approx(1.0 / 40.0)
    assert got["added first byte p99 at 100 req/s"].ratio == pytest.approx(2.0 / 40.0)
    assert "| 100 | 0.50 / 1.00 | 1.50 / 3.00 | **1.00** | **2.00** |" in tables(report)


def test_tree_cpu_grows_with_work() -> None:
    before = procs.tree_cpu_s(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert procs.tree_cpu_s(os.getpid()) > before


def test_the_floor_forwards_to_the_upstream_as_documented(
    bench_upstream: int, tmp_path: Path
) -> None:
    """``gateway.bench.floor`` started with the command its docstring gives answers as the
    upstream does (docs/decisions.md quotes its figures)."""
    granian = str(Path(sys.executable).with_name("granian"))
    args = parse_args(
        [
            *("--peer-name", "floor", "--ready-timeout", "20"),
            "--peer-cmd",
            f"env FLOOR_UPSTREAM={{upstream}} {granian} --interface rsgi --port {{port}}"
            " --workers 1 --loop uvloop --no-ws gateway.bench.floor:app",
        ]
    )
    body = request_body(stream=False)
    with contextlib.ExitStack() as stack:
        upstream = f"http://127.0.0.1:{bench_upstream}/v1"
        started = peer.start(args, upstream, body, tmp_path, stack)
        assert started is not None
        resp = asyncio.run(fetch(started.target))
        direct = asyncio.run(fetch(_target(bench_upstream, stream=False)))
    assert resp.status == direct.status == 200
    assert msgspec.json.decode(resp.body) == msgspec.json.decode(direct.body)


def test_peer_start_launches_answers_and_stops(tmp_path: Path) -> None:
    """The bench upstream is itself an OpenAI-compatible server: launch it as the peer."""
    template = tmp_path / "peer.yaml"
    template.write_text("listen: {port}\nupstream: {upstream}\n")
    args = parse_args(
        [
            *("--peer-cmd", f"{sys.executable} -m gateway.bench.upstream --port {{port}}"),
            *("--peer-config", str(template), "--peer-name", "fake", "--ready-timeout", "20"),
            *("--peer-model", "fake-model", "--peer-header", "Authorization: Bearer x"),
        ]
    )
    body = request_body(stream=False)
    with contextlib.ExitStack() as stack:
        started = peer.start(args, "http://127.0.0.1:9/v1/", body, tmp_path, stack)
        assert started is not None and started.name == "fake" and started.pid
        resp = asyncio.run(fetch(started.target))
        assert resp.status == 200 and msgspec.json.decode(resp.body)["model"] == "fake-model"
        assert b"Authorization: Bearer x\r\n" in started.target.request
        written = (tmp_path / "peer-peer.yaml").read_text()
        port = started.target.port
        assert written == f"listen: {port}\nupstream: http://127.0.0.1:9/v1\n"
    with pytest.raises(ProcessLookupError):
        os.kill(started.pid, 0)


def test_distinct_prompts_are_valid_requests_that_differ_in_prompt_and_length() -> None:
    from gateway.bench.setup import request_bodies

    bodies = request_bodies(stream=False, prompts=50)
    decoded = [msgspec.json.decode(b) for b in bodies]
    prompts = [d["messages"][0]["content"] for d in decoded]
    assert len(set(prompts)) == 50 and len({len(p) for p in prompts}) > 10
    assert all(d["model"] == "gpt-4o-mini" and d["max_tokens"] == 32 for d in decoded)
    assert request_bodies(stream=True, prompts=1) == [request_body(stream=True)]


def test_a_target_sends_its_bodies_in_turn() -> None:
    bodies = [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    target = build_target("http://127.0.0.1:9/v1/chat/completions", bodies)
    sent = [target.next_request() for _ in range(7)]
    assert [s.rpartition(b"\r\n\r\n")[2] for s in sent] == [*bodies, *bodies, bodies[0]]
    assert target.request == sent[0]
    single = build_target("http://127.0.0.1:9/x", b"{}")
    assert single.next_request() == single.next_request() == single.request
