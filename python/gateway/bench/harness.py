"""The load harness: the gateway's own overhead, measured against a direct call.

Order of a run: start the bench upstream and the gateway (each in its own process group),
wait for ``/ready``, create a live key, check one request end to end, warm both paths up,
then for each rate alternate direct and gateway segments (ABBA, so drift on a noisy machine
hits both alike), then closed-loop maximum throughput, then the gateway's memory when idle.
Every phase is bounded in time; children are stopped on any exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import secrets
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

import httpx
import msgspec

from gateway.bench import procs
from gateway.bench.client import Target, build_target, fetch
from gateway.bench.loadgen import Live, RunResult, merge, run_closed_loop, run_open_loop
from gateway.bench.monitor import MemorySampler, default_out, progress
from gateway.bench.report import (
    RateResult,
    Report,
    machine_info,
    tables,
    to_json,
    to_markdown,
)
from gateway.bench.setup import command_line, create_live_key, request_body, write_config

_SETTLE_S = 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="routegate bench", description=__doc__.split("\n")[0])
    p.add_argument("--rates", default="200,1000", help="offered req/s, comma-separated")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per rate and path")
    p.add_argument("--rounds", type=int, default=2, help="alternating segments per rate")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per path")
    p.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument(
        "--governed",
        action="store_true",
        help="give the bench key RPM/TPM limits and its workspace a budget (never reached), "
        "so every request reserves and settles in the store",
    )
    p.add_argument("--concurrency", default="4,32", help="connections, max-throughput (list)")
    p.add_argument("--max-duration", type=float, default=4.0, help="seconds per max run")
    p.add_argument("--max-conns", type=int, default=256, help="connection cap, fixed rates")
    p.add_argument("--json-out", type=Path)
    p.add_argument("--md-out", type=Path)
    p.add_argument("--gateway-url", help="bench an already-running gateway (needs --key)")
    p.add_argument("--key", help="live gateway key for --gateway-url")
    p.add_argument("--gateway-pid", type=int, help="PID of --gateway-url's server, for memory")
    p.add_argument("--upstream-url", help="use a running upstream (base URL ending in /v1)")
    p.add_argument("--ready-timeout", type=float, default=60.0)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    if args.gateway_url and not args.key:
        p.error("--gateway-url needs --key")
    try:
        args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        p.error(f"--rates must be numbers, got {args.rates!r}")
    try:
        args.conc_list = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        p.error(f"--concurrency must be integers, got {args.concurrency!r}")
    if not args.rate_list or min(args.rate_list) <= 0 or args.duration <= 0 or args.rounds < 1:
        p.error("rates, duration and rounds must be positive")
    return args


async def _check(name: str, target: Target, stream: bool) -> str | None:
    """One request before load: a wrong answer must stop the run, not fill it with errors."""
    resp = await fetch(target)
    ok = resp.status == 200 and (b"[DONE]" in resp.body if stream else b'"choices"' in resp.body)
    if not ok:
        raise RuntimeError(f"{name}: HTTP {resp.status}: {resp.body[:500]!r}")
    if stream or name != "gateway":
        return None
    meta = msgspec.json.decode(resp.body).get("routing_metadata") or {}
    provider = meta.get("provider")
    if provider != "bench-upstream":
        return f"gateway served by provider {provider!r}, expected 'bench-upstream'"
    return None


async def run_phases(
    args: argparse.Namespace, paths: dict[str, Target], pid: int | None, report: Report
) -> None:
    out = default_out(args.progress)
    for name, target in paths.items():
        note = await _check(name, target, args.stream)
        if note:
            report.notes.append(note)
    sampler = MemorySampler(pid) if pid else None
    idle_start = None
    if sampler is not None:
        await asyncio.sleep(1.0)
        idle_start = sampler.sample()
        sampler.start()

    async def segment(label: str, target: Target, rate: float, seconds: float) -> RunResult:
        live = Live(int(rate * seconds), seconds)
        async with progress(label, live, out):
            result = await run_open_loop(
                target, rate, seconds, max_conns=args.max_conns, drain_s=5.0, live=live
            )
        # An overloaded gateway is still working off what was cancelled: let it finish.
        await asyncio.sleep(_SETTLE_S + (2.0 if result.ok < result.scheduled else 0.0))
        return result

    if args.warmup > 0:
        for name, target in paths.items():
            await segment(f"warm-up {name}", target, args.rate_list[0], args.warmup)
    seg = args.duration / args.rounds
    for rate in args.rate_list:
        runs: dict[str, list[RunResult]] = {name: [] for name in paths}
        for r in range(args.rounds):
            order = list(paths) if r % 2 == 0 else list(reversed(paths))
            for name in order:
                label = f"{name} {rate:g}/s {r + 1}/{args.rounds}"
                runs[name].append(await segment(label, paths[name], rate, seg))
        direct, gateway = merge(runs["direct"]), merge(runs["gateway"])
        if gateway.achieved_rps < 0.9 * rate or gateway.ok < gateway.scheduled:
            report.notes.append(
                f"at {rate:g} req/s the gateway answered {gateway.ok}/{gateway.scheduled}"
                f" with 2xx at {gateway.achieved_rps:.0f} req/s: it is saturated there"
            )
        report.latency.append(
            RateResult(
                rate=rate,
                direct=direct,
                gateway=gateway,
                added_p50_ms=gateway.latency.p50_ms - direct.latency.p50_ms,
                added_p90_ms=gateway.latency.p90_ms - direct.latency.p90_ms,
                added_p99_ms=gateway.latency.p99_ms - direct.latency.p99_ms,
            )
        )
    if args.max_duration > 0:
        for conns in args.conc_list:
            for name in ("gateway", "direct"):
                live = Live(0, args.max_duration)
                async with progress(f"max throughput {name} x{conns}", live, out):
                    report.max_throughput[f"{name}, {conns} connections"] = await run_closed_loop(
                        paths[name], conns, args.max_duration, live=live
                    )
                await asyncio.sleep(_SETTLE_S)
    if sampler is not None and idle_start is not None:
        await sampler.stop()
        await asyncio.sleep(2.0)
        report.memory = sampler.result(idle_start, sampler.sample())


def _start_gateway(
    args: argparse.Namespace, upstream_base: str, tmp: Path, stack: contextlib.ExitStack
) -> tuple[str, str, int]:
    """Start ``python -m gateway serve`` on a free port; returns (base URL, live key, PID)."""
    admin_key = "rg_live_" + secrets.token_hex(20)
    config = write_config(tmp, upstream_base)
    port = procs.free_port()
    env = procs.child_env(
        {
            "ROUTEGATE_DATA_DIR": str(tmp / "data"),
            "ROUTEGATE_ADMIN_KEY": admin_key,
            "BENCH_UPSTREAM_KEY": secrets.token_hex(16),
        },
        scrub=True,
    )
    (tmp / "data").mkdir()
    log_path = tmp / "gateway.log"
    log = stack.enter_context(log_path.open("wb"))
    serve = ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = procs.spawn(["-m", "gateway", *serve, "--workers", str(args.workers)], env, log)
    stack.callback(procs.stop, proc)
    base = f"http://127.0.0.1:{port}"
    procs.wait_ready(base + "/ready", proc, args.ready_timeout, log_path)
    try:
        key = create_live_key(base, admin_key, governed=args.governed)
    except (httpx.HTTPError, RuntimeError, KeyError) as exc:
        raise RuntimeError(f"creating a bench key failed: {exc}{procs.log_tail(log_path)}") from exc
    return base, key, proc.pid


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the harness; 0 on success, 1 when the gateway or upstream could not be benched."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    report = Report(
        command=command_line(argv),
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        machine=machine_info(),
        settings={
            k: getattr(args, k)
            for k in (
                *("rates", "duration", "rounds", "warmup", "workers", "stream", "governed"),
                *("concurrency", "max_duration", "max_conns"),
            )
        },
    )
    try:
        with (
            contextlib.ExitStack() as stack,
            tempfile.TemporaryDirectory(prefix="routegate-bench-") as tmpdir,
        ):
            upstream_base = args.upstream_url
            if upstream_base is None:
                up, up_port = procs.start_upstream()
                stack.callback(procs.stop, up)
                upstream_base = f"http://127.0.0.1:{up_port}/v1"
            if args.gateway_url:
                base, key, pid = args.gateway_url.rstrip("/"), args.key, args.gateway_pid
            else:
                base, key, pid = _start_gateway(args, upstream_base, Path(tmpdir), stack)
            body = request_body(stream=args.stream)
            paths = {
                "direct": build_target(
                    upstream_base.rstrip("/") + "/chat/completions",
                    body,
                    {"Authorization": "Bearer bench-upstream-key"},
                ),
                "gateway": build_target(
                    base + "/v1/chat/completions", body, {"Authorization": f"Bearer {key}"}
                ),
            }
            asyncio.run(run_phases(args, paths, pid, report))
    except (RuntimeError, OSError) as exc:
        print(f"\nroutegate bench: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    text = tables(report)
    print("\n" + text)
    for path, data in ((args.json_out, to_json(report)), (args.md_out, to_markdown(report))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data if isinstance(data, bytes) else data.encode())
            print(f"wrote {path}")
    return 0
