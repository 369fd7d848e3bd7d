"""The load harness: the gateway's own overhead, measured against a direct call.

Order of a run: start the bench upstream and the gateway (each in its own process group),
wait for ``/ready``, create a live key, start the optional peer gateway (``peer.py``), check
one request end to end per path, warm every path up, then for each rate alternate the paths'
segments (ABBA, so drift on a noisy machine hits all alike), then closed-loop maximum
throughput in the same order, then memory when idle. Every phase is bounded in time;
children are stopped on any exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

import msgspec

from gateway.bench import compare, peer, procs
from gateway.bench.client import Target, build_target, fetch
from gateway.bench.loadgen import Live, RunResult, merge, run_closed_loop, run_open_loop
from gateway.bench.monitor import MemorySampler, default_out, progress
from gateway.bench.report import Report, machine_info, tables, to_json, to_markdown
from gateway.bench.setup import command_line, request_bodies, start_gateway

_SETTLE_S = 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="routegate bench", description=__doc__.split("\n")[0])
    p.add_argument("--rates", default="200,1000", help="offered req/s, comma-separated")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per rate and path")
    p.add_argument("--rounds", type=int, default=2, help="ABBA segments per rate and loop")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per path")
    p.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument(
        "--prompts",
        type=_positive_int,
        default=1,
        help="distinct prompts sent in turn (1: one fixed request; real traffic: many)",
    )
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
    p.add_argument("--gateway-pid", type=int, help="PID of --gateway-url's server (memory, CPU)")
    p.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `serve` argument for the started gateway (repeat; --gateway-arg=--loop=rloop)",
    )
    p.add_argument("--upstream-url", help="use a running upstream (base URL ending in /v1)")
    p.add_argument("--ready-timeout", type=float, default=60.0)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    peer.add_args(p)
    args = p.parse_args(argv)
    peer.check_args(p, args)
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


async def _check(name: str, target: Target, stream: bool) -> str | None:
    """One request before load: a wrong answer must stop the run, not fill it with errors."""
    resp = await fetch(target)
    # A peer's stream may end without `data: [DONE]`; any answer with choices will do.
    done = b"[DONE]" if stream and name in ("direct", "gateway") else b'"choices"'
    if resp.status != 200 or done not in resp.body:
        raise RuntimeError(f"{name}: HTTP {resp.status}: {resp.body[:500]!r}")
    if stream or name != "gateway":
        return None
    meta = msgspec.json.decode(resp.body).get("routing_metadata") or {}
    provider = meta.get("provider")
    if provider != "bench-upstream":
        return f"gateway served by provider {provider!r}, expected 'bench-upstream'"
    return None


async def run_phases(
    args: argparse.Namespace, paths: dict[str, Target], pids: dict[str, int], report: Report
) -> None:
    """Check, warm up, fixed rates, closed loops, memory; ``paths`` starts with "direct"."""
    out = default_out(args.progress)
    for name, target in paths.items():
        note = await _check(name, target, args.stream)
        if note:
            report.notes.append(note)
    samplers = {name: MemorySampler(pid) for name, pid in pids.items()}
    idle_start = {}
    if samplers:
        await asyncio.sleep(1.0)
        idle_start = {name: sampler.sample() for name, sampler in samplers.items()}
        for sampler in samplers.values():
            sampler.start()

    async def segment(name: str, label: str, seconds: float, rate: float, conns: int) -> RunResult:
        """One open-loop run at ``rate`` (or closed loop when rate is 0), with the server's CPU."""
        pid = pids.get(name)
        cpu0 = procs.tree_cpu_s(pid) if pid else 0.0
        live = Live(int(rate * seconds), seconds)
        async with progress(label, live, out):
            if rate:
                result = await run_open_loop(
                    paths[name], rate, seconds, max_conns=args.max_conns, drain_s=5.0, live=live
                )
            else:
                result = await run_closed_loop(paths[name], conns, seconds, live=live)
        if pid:
            result.cpu_s = procs.tree_cpu_s(pid) - cpu0
        # An overloaded gateway is still working off what was cancelled: let it finish.
        await asyncio.sleep(_SETTLE_S + (2.0 if rate and result.ok < result.scheduled else 0.0))
        return result

    async def interleaved(
        label: str, seconds: float, rate: float, conns: int
    ) -> dict[str, RunResult]:
        """``rounds`` segments per path in ABBA order (A B C C B A …), pooled per path."""
        runs: dict[str, list[RunResult]] = {name: [] for name in paths}
        for r in range(args.rounds):
            for name in list(paths) if r % 2 == 0 else list(reversed(paths)):
                tag = f"{name} {label} {r + 1}/{args.rounds}"
                runs[name].append(await segment(name, tag, seconds / args.rounds, rate, conns))
        return {name: merge(segments) for name, segments in runs.items()}

    if args.warmup > 0:
        for name in paths:
            await segment(name, f"warm-up {name}", args.warmup, args.rate_list[0], 0)
    for rate in args.rate_list:
        runs = await interleaved(f"{rate:g}/s", args.duration, rate, 0)
        for name, run in runs.items():
            if name != "direct" and (run.achieved_rps < 0.9 * rate or run.ok < run.scheduled):
                report.notes.append(
                    f"at {rate:g} req/s {name} answered {run.ok}/{run.scheduled}"
                    f" with 2xx at {run.achieved_rps:.0f} req/s: it is saturated there"
                )
        other = runs.get(report.peer) if report.peer else None
        report.latency.append(compare.rate_result(rate, runs["direct"], runs["gateway"], other))
    for conns in args.conc_list if args.max_duration > 0 else []:
        runs = await interleaved(f"x{conns}", args.max_duration, 0, conns)
        for name in sorted(runs, key=lambda n: n == "direct"):  # direct last
            report.max_throughput[f"{name}, {conns} connections"] = runs[name]
    if samplers:
        for sampler in samplers.values():
            await sampler.stop()
        await asyncio.sleep(2.0)
        memory = {n: s.result(idle_start[n], s.sample()) for n, s in samplers.items()}
        report.memory = memory.get("gateway")
        report.peer_memory = memory.get(report.peer or "")
    report.comparison = compare.rows(report)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the harness; 0 on success, 1 when the gateway or upstream could not be benched."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    report = Report(
        command=command_line(peer.redact(argv)),
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        machine=machine_info(),
        settings={
            k: getattr(args, k)
            for k in (
                *("rates", "duration", "rounds", "warmup", "workers", "stream", "governed"),
                *("concurrency", "max_duration", "max_conns"),
            )
        }
        | peer.settings(args),
        peer=args.peer_name if args.peer else None,
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
                base, key, pid = start_gateway(
                    upstream_base,
                    Path(tmpdir),
                    stack,
                    workers=args.workers,
                    governed=args.governed,
                    ready_timeout=args.ready_timeout,
                    serve_args=args.gateway_arg,
                )
            bodies = request_bodies(stream=args.stream, prompts=args.prompts)
            paths = {
                "direct": build_target(
                    upstream_base.rstrip("/") + "/chat/completions",
                    bodies,
                    {"Authorization": "Bearer bench-upstream-key"},
                ),
                "gateway": build_target(
                    base + "/v1/chat/completions", bodies, {"Authorization": f"Bearer {key}"}
                ),
            }
            pids = {"gateway": pid} if pid else {}
            other = peer.start(args, upstream_base, bodies, Path(tmpdir), stack)
            if other is not None:
                paths[other.name] = other.target
                if other.pid:
                    pids[other.name] = other.pid
            asyncio.run(run_phases(args, paths, pids, report))
    except (RuntimeError, OSError, ValueError) as exc:
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
