"""Routing-decision micro-benchmark: ``RoutingTable.route`` against a vectorised numpy reference.

Usage (from the repository root, after ``maturin develop --release``)::

    python benches/route_bench.py                  # writes benches/results/route-latest.{json,md}
    python benches/route_bench.py --sizes 100 --min-time 0.3 --no-write

For synthetic catalogs of 10 to 10,000 deployments it times, per call and interleaved in the
same run (the machine is shared and noisy, so ratios are the figures to trust):

* ``api``   - ``RoutingTable.route(RouteQuery(...))``: the public Python API (native core);
* ``numpy`` - ``NumpyRouter.route`` (``benches/numpy_reference.py``): the same decision with
  vectorised numpy, with the same kind of compiled-query cache;
* ``core``  - ``catalog.table.route(prebuilt RouteRequest)``: the native call alone;
* ``core_limit`` - the same with ``limit=CORE_LIMIT``: only the best few rows ranked.

Before timing, every size checks that ``api`` and ``numpy`` give identical ranked rows (scores
within 1e-9) for the query mix and for random queries. See benches/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from gateway import _router_core as core
from gateway.config import TASKS, Config, ModelConfig, OfferConfig, Price, ProviderConfig
from gateway.routing import RouteQuery, RoutingOptions, RoutingTable
from numpy_reference import (
    DEFAULT_EXPECTED_OUTPUT,
    NumpyRouter,
    Request,
)  # benches/ is on sys.path as the script's dir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

SIZES = (10, 100, 1_000, 10_000)
IMPLS = ("api", "numpy", "core", "core_limit", "core_filter")
CORE_LIMIT = 11  # ranked rows the ``core_limit`` cell asks for
REGIONS = (
    "us-east-1",
    "us-west-2",
    "us-central-1",
    "eu-west-1",
    "eu-central-1",
    "eu-north-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "sa-east-1",
    "global",
)
CAPS = (
    ("tools", 0.7),
    ("vision", 0.4),
    ("json_object", 0.6),
    ("json_schema", 0.4),
    ("reasoning", 0.2),
)
TARGET_API_US = 20.0
TARGET_SPEEDUP = 10.0
TARGET_SIZE = 100
SCORE_TOLERANCE = 1e-9


# ---------------------------------------------------------------- synthetic catalogs


def make_config(n: int, seed: int = 7) -> Config:
    """A catalog with exactly ``n`` deployments (offer × region rows), no mock provider."""
    rng = random.Random(seed * 1_000_003 + n)
    n_models = max(4, round(n**0.65))
    n_providers = max(3, round(n**0.4))
    providers = [
        ProviderConfig(
            id=f"prov-{p:02d}",
            format="openai",
            base_url=f"https://prov-{p:02d}.example/v1",
            regions=sorted(rng.sample(REGIONS, rng.randint(1, 4))),
            # every policy is present even in the smallest catalog
            data_policy=("zdr", "no_training", "none")[p]
            if p < 3
            else rng.choices(("none", "no_training", "zdr"), (4, 3, 2))[0],
        )
        for p in range(n_providers)
    ]
    models = []
    base_price = {}
    for m in range(n_models):
        level = rng.uniform(0.35, 0.95)
        quality = {
            task: round(min(1.0, max(0.0, level + rng.uniform(-0.15, 0.15))), 3)
            for task in TASKS
            if rng.random() < 0.85  # an absent task rates 0.5 in the table
        }
        models.append(ModelConfig(id=f"model-{m:04d}", family=f"fam-{m % 7}", quality=quality))
        base_price[m] = round(0.05 + 12.0 * level**3 * rng.uniform(0.5, 1.5), 2)
    pairs = [(m, p) for m in range(n_models) for p in range(n_providers)]
    rng.shuffle(pairs)
    offers: list[OfferConfig] = []
    remaining = n
    for m, p in pairs:
        if remaining == 0:
            break
        provider = providers[p]
        regions = rng.sample(provider.regions, rng.randint(1, len(provider.regions)))
        regions = sorted(regions[:remaining])
        remaining -= len(regions)
        price_in = round(base_price[m] * rng.uniform(0.8, 1.25), 2)
        context = rng.choice((8_192, 32_768, 128_000, 200_000, 1_000_000))
        offers.append(
            OfferConfig(
                model=models[m].id,
                provider=provider.id,
                price=Price(
                    input=price_in,
                    output=round(price_in * rng.choice((2, 3, 4, 5)), 2),
                    cached_input=round(price_in / 4, 3) if rng.random() < 0.5 else None,
                ),
                context_window=context,
                max_output=min(context, rng.choice((4_096, 8_192, 16_384, 32_768))),
                capabilities=[c for c, share in CAPS if rng.random() < share],  # type: ignore[misc]
                ttft_ms=float(rng.randrange(150, 2_000, 10)),
                throughput_tps=float(rng.randrange(20, 250)),
                regions=regions,
            )
        )
    if remaining:
        raise ValueError(f"cannot place {n} deployments on {len(pairs)} model-provider pairs")
    return Config(providers=providers, models=models, offers=offers)


@dataclass
class Subject:
    """One catalog size: the API's table, the numpy reference over the same rows, the queries."""

    size: int
    table: RoutingTable
    reference: NumpyRouter
    queries: list[RouteQuery]
    labels: list[str]
    requests: list[Any] = field(default_factory=list)  # core.RouteRequest per query
    filter_only: Any = None  # a RouteRequest that every row fails at its last constraint


def build(size: int, seed: int) -> Subject:
    """Compile a synthetic catalog both ways and give both the same live-health figures."""
    table = RoutingTable.from_config(make_config(size, seed), assume_credentials=True)
    reference = NumpyRouter(table.catalog)
    rng = random.Random(seed + size)
    for d in table.catalog.deployments:  # health priors: EWMA-like drift, a few open circuits
        health = {
            "ttft_ms": round(d.offer.ttft_ms * rng.uniform(0.8, 1.3), 1),
            "throughput_tps": round(d.offer.throughput_tps * rng.uniform(0.8, 1.2), 1),
            "success_rate": round(rng.uniform(0.9, 1.0), 3),
            "circuit_open": rng.random() < 0.01,
        }
        table.catalog.table.update_health(d.row, **health)
        reference.table.update_health(d.row, **health)
    counts: dict[str, int] = {}
    for d in table.catalog.deployments:
        counts[d.model.id] = counts.get(d.model.id, 0) + 1
    pinned = max(sorted(counts), key=lambda m: counts[m])
    mix = [
        (
            "auto + tools",
            RouteQuery(
                model="auto",
                capabilities=frozenset({"tools"}),
                prompt_tokens=1_200,
                task="code",
                difficulty=0.35,
            ),
        ),
        (
            "cost + regions eu-*",
            RouteQuery(
                model="auto",
                routing=RoutingOptions(optimize="cost", regions=["eu-*"]),
                prompt_tokens=800,
            ),
        ),
        (
            "fastest + zdr + max_cost",
            RouteQuery(
                model="fastest",
                routing=RoutingOptions(data_policy="zdr", max_cost_per_1m=8.0),
                prompt_tokens=3_000,
                max_output_tokens=1_024,
            ),
        ),
        (f"pinned {pinned}", RouteQuery(model=pinned, prompt_tokens=500)),
        (
            "cheapest + quality_floor",
            RouteQuery(
                model="cheapest",
                routing=RoutingOptions(quality_floor=0.7),
                prompt_tokens=2_000,
                task="math",
            ),
        ),
    ]
    subject = Subject(size, table, reference, [q for _, q in mix], [label for label, _ in mix])
    subject.requests = [
        route_request(reference.compiled(q).requests[0], q) for q in subject.queries
    ]
    # Every row fails min_success_rate (or at most the circuit): a full filter pass, no scoring.
    subject.filter_only = core.RouteRequest(min_success_rate=1.1)
    return subject


def route_request(r: Request, query: RouteQuery) -> Any:
    """The native ``RouteRequest`` for a compiled reference request and the query's tokens."""
    return core.RouteRequest(
        model_mask=r.model_mask,
        provider_mask=r.provider_mask,
        region_mask=r.region_mask,
        required_capabilities=r.required_capabilities,
        prompt_tokens=query.prompt_tokens,
        max_output_tokens=query.max_output_tokens,
        expected_output_tokens=(
            query.expected_output_tokens or query.max_output_tokens or DEFAULT_EXPECTED_OUTPUT
        ),
        min_data_policy=r.min_data_policy,
        key_source=r.key_source,
        max_price_per_1m=r.max_price_per_1m,
        max_ttft_ms=r.max_ttft_ms,
        min_throughput_tps=r.min_throughput_tps,
        min_success_rate=r.min_success_rate,
        weights=r.weights,
        task=r.task,
        quality_floor=r.quality_floor,
        cheapest=r.cheapest,
    )


# ---------------------------------------------------------------- equivalence


def random_queries(subject: Subject, count: int, seed: int) -> list[RouteQuery]:
    """Varied queries (every strategy, limits, globs, allow-lists) for the equivalence check."""
    rng = random.Random(seed)
    catalog = subject.table.catalog
    model_ids = [m.id for m in catalog.models]
    provider_ids = [p.id for p in catalog.providers]
    out = []
    for _ in range(count):
        model: str | tuple[str, ...] = rng.choice(
            [
                "auto",
                "cheapest",
                "fastest",
                "best",
                rng.choice(model_ids),
                f"{rng.choice(model_ids)}:{rng.choice(['floor', 'nitro', 'cost', 'fast'])}",
                f"{rng.choice(provider_ids)}/{rng.choice(model_ids)}",
                tuple(rng.sample(model_ids, min(3, len(model_ids)))),
            ]
        )
        routing: dict[str, Any] = {}
        if rng.random() < 0.5:
            routing["optimize"] = rng.choice(
                ["cost", "cheapest", "speed", "ttft", "throughput", "balanced", "best"]
            )
        if rng.random() < 0.15:
            routing["weights"] = {
                k: rng.choice([0.0, 0.2, 1.0])
                for k in ("cost", "ttft", "throughput", "reliability", "quality")
            }
            routing["weights"]["cost"] = 0.5
        if rng.random() < 0.3:
            routing["regions"] = [rng.choice(["eu-*", "us-*", "ap-*", "global", "*-1"])]
        if rng.random() < 0.3:
            routing["data_policy"] = rng.choice(["no_training", "zdr"])
        for name, values in (
            ("max_cost_per_1m", [1.0, 5.0, 20.0]),
            ("quality_floor", [0.5, 0.7, 0.85]),
            ("max_ttft_ms", [400.0, 1_000.0]),
            ("min_throughput_tps", [50.0, 150.0]),
            ("min_success_rate", [0.93, 0.97]),
        ):
            if rng.random() < 0.2:
                routing[name] = rng.choice(values)
        if rng.random() < 0.15:
            routing["providers"] = rng.sample(provider_ids, min(2, len(provider_ids)))
        if rng.random() < 0.15:
            routing["exclude_providers"] = [rng.choice(provider_ids)]
        if isinstance(model, tuple) and rng.random() < 0.5:
            routing["mode"] = "fallback"
        out.append(
            RouteQuery(
                model=model,
                routing=msgspec.convert(routing, RoutingOptions),
                prompt_tokens=rng.choice([0, 300, 5_000, 50_000, 150_000]),
                max_output_tokens=rng.choice([0, 0, 1_000, 20_000]),
                capabilities=frozenset(
                    rng.sample(
                        ["tools", "vision", "json_schema", "reasoning"], rng.choice([0, 0, 1, 2])
                    )
                ),  # type: ignore[arg-type]
                task=rng.choice(TASKS),
                difficulty=rng.choice([0.0, 0.3, 0.8]),
            )
        )
    return out


def same_decision(a: Any, b: Any) -> str | None:
    """None when equal; else what differs."""
    if not np.array_equal(a.ranked_rows, b.ranked_rows):
        return f"ranked rows differ: {a.ranked_rows[:8]} vs {b.ranked_rows[:8]}"
    if len(a.scores) and float(np.max(np.abs(a.scores - b.scores))) > SCORE_TOLERANCE:
        return f"scores differ by {float(np.max(np.abs(a.scores - b.scores))):.3g}"
    for name in (
        "strategy",
        "candidates_total",
        "candidates_viable",
        "emptied_by",
        "health_only",
        "warnings",
    ):
        if getattr(a, name) != getattr(b, name):
            return f"{name}: {getattr(a, name)!r} vs {getattr(b, name)!r}"
    return None


def verify(subject: Subject, random_count: int, seed: int) -> dict[str, Any]:
    """Check api == numpy (and core == api where one native call decides) before timing."""
    mix = []
    for label, query, request in zip(
        subject.labels, subject.queries, subject.requests, strict=True
    ):
        api, ref = subject.table.route(query), subject.reference.route(query)
        problem = same_decision(api, ref)
        if problem:
            raise SystemExit(f"size {subject.size}, {label}: numpy != api: {problem}")
        native = subject.table.catalog.table.route(request)
        relaxed = (
            subject.reference.compiled(query).relaxed is not None
            and native.emptied_by == "quality_floor"
        )
        if not relaxed and not np.array_equal(native.ranked, api.ranked_rows):
            raise SystemExit(f"size {subject.size}, {label}: core != api")
        mix.append(
            {
                "query": label,
                "total": api.candidates_total,
                "viable": api.candidates_viable,
                "emptied_by": api.emptied_by,
                "top_score": round(float(api.scores[0]), 4) if len(api) else None,
            }
        )
    checked = non_empty = 0
    max_diff = 0.0
    for query in random_queries(subject, random_count, seed + subject.size):
        api, ref = subject.table.route(query), subject.reference.route(query)
        problem = same_decision(api, ref)
        if problem:
            raise SystemExit(f"size {subject.size}, random {query!r}: numpy != api: {problem}")
        if len(api):
            non_empty += 1
            max_diff = max(max_diff, float(np.max(np.abs(api.scores - ref.scores))))
        checked += 1
    return {
        "mix": mix,
        "random_queries": checked,
        "random_non_empty": non_empty,
        "max_score_diff": max_diff,
    }


# ---------------------------------------------------------------- timing


def timed_batch(
    call: Callable[[Any], object], args: Sequence[Any], start: int, n: int, out: list[int]
) -> int:
    """Time ``n`` calls one by one (query mix cycled from ``start``); returns ns spent."""
    clock = time.perf_counter_ns
    k = len(args)
    spent = 0
    for i in range(start, start + n):
        a = args[i % k]
        t0 = clock()
        call(a)
        t = clock() - t0
        out.append(t)
        spent += t
    return spent


@dataclass
class Cell:
    """Samples of one implementation at one size."""

    samples: list[int] = field(default_factory=list)
    spent_ns: int = 0

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.samples)
        n = len(ordered)
        return {
            "calls": n,
            "median_us": statistics.median(ordered) / 1e3,
            "p99_us": ordered[min(n - 1, int(0.99 * n))] / 1e3,
            "mean_us": self.spent_ns / n / 1e3,
            "decisions_per_s": n / (self.spent_ns / 1e9),
        }


def measure(subject: Subject, min_time: float, deadline: float) -> dict[str, Cell]:
    """Interleave short batches of api / numpy / core (rotating order) until each has spent
    ``min_time`` seconds in timed calls, or the run's deadline passes."""
    calls: dict[str, tuple[Callable[[Any], object], Sequence[Any]]] = {
        "api": (subject.table.route, subject.queries),
        "numpy": (subject.reference.route, subject.queries),
        "core": (subject.table.catalog.table.route, subject.requests),
        "core_limit": (
            lambda r: subject.table.catalog.table.route(r, limit=CORE_LIMIT),
            subject.requests,
        ),
        "core_filter": (subject.table.catalog.table.route, [subject.filter_only]),
    }
    cells = {name: Cell() for name in IMPLS}
    k = len(subject.queries)
    batch = {}
    for name, (call, args) in calls.items():  # warm up, then size batches to ~10 ms
        scratch: list[int] = []
        spent = timed_batch(call, args, 0, 10 * k, scratch)
        batch[name] = max(k, int(0.01e9 / (spent / len(scratch))) // k * k)
    rounds = 0
    gc.collect()
    gc.disable()
    try:
        while min(c.spent_ns for c in cells.values()) < min_time * 1e9 and (
            time.monotonic() < deadline or rounds < 3
        ):
            shift = rounds % len(IMPLS)
            order = IMPLS[shift:] + IMPLS[:shift]
            for name in order if rounds % 2 == 0 else order[::-1]:
                call, args = calls[name]
                cell = cells[name]
                cell.spent_ns += timed_batch(
                    call, args, len(cell.samples), batch[name], cell.samples
                )
            rounds += 1
    finally:
        gc.enable()
    return cells


def per_query_medians(subject: Subject, cell: Cell) -> dict[str, float]:
    """Median µs of each query of the mix (samples are in cycle order)."""
    k = len(subject.queries)
    return {
        label: statistics.median(cell.samples[i::k]) / 1e3 for i, label in enumerate(subject.labels)
    }


def breakdown(subject: Subject, iterations: int) -> dict[str, float]:
    """Median ns per call of the steps of ``RoutingTable.route`` over the mix, each rebuilt from
    public pieces and timed on its own (interleaved), to show where the time beyond the native
    call goes. The last entry is the API total less the steps."""
    encode = msgspec.json.Encoder().encode
    native = subject.table.catalog.table.route
    queries, requests = subject.queries, subject.requests
    compiled = [subject.reference.compiled(q).requests[0] for q in queries]
    results = [native(r) for r in requests]

    def key(q: RouteQuery) -> tuple[object, ...]:
        return (
            q.model,
            encode(q.routing),
            encode(q.defaults),
            q.capabilities,
            q.task,
            q.difficulty,
            q.key_mode,
            q.allowed_models,
            q.data_policy_floor,
        )

    cache = {key(q): q for q in queries}

    def read(r: Any) -> object:
        return (
            r.ranked,
            r.scores,
            r.emptied_by,
            r.candidates_total,
            r.candidates_viable,
            r.health_only,
        )

    steps: dict[str, tuple[Callable[[Any], object], Sequence[Any]]] = {
        "api total: RoutingTable.route(query)": (subject.table.route, queries),
        "cache key + lookup (2 msgspec encodes, tuple hash, dict get)": (
            lambda q: cache.get(key(q)),
            queries,
        ),
        "core.RouteRequest(...) from cached masks + token counts": (
            lambda pair: route_request(*pair),
            list(zip(compiled, queries, strict=True)),
        ),
        "core table.route(request): filter + score + rank": (native, requests),
        "RouteResult getters (2 new numpy arrays + 4 fields)": (read, results),
    }
    samples: dict[str, list[int]] = {name: [] for name in steps}
    gc.disable()
    try:
        for _ in range(iterations):
            for name, (call, args) in steps.items():
                timed_batch(call, args, 0, len(args) * 20, samples[name])
    finally:
        gc.enable()
    medians = {name: float(statistics.median(s)) for name, s in samples.items()}
    total, *parts = medians.values()
    medians["rest (Decision object, branches, calls), by difference"] = total - sum(parts)
    return medians


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "msgspec": msgspec.__version__,
        "router_core": core.__version__,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Routegate routing-decision benchmark",
        "",
        f"- Command: `{report['command']}`",
        f"- Date: {report['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['platform']}, Python "
        f"{m['python']}, numpy {m['numpy']}, load average at start {m['load_average_start']}",
        f"- Settings: min {report['settings']['min_time_s']} s of timed calls per cell, "
        f"interleaved batches; query mix of {len(report['settings']['query_mix'])} queries "
        "cycled; GC off while timing",
        "",
        "### Per decision (µs; `numpy/api` = ratio of medians, measured interleaved)",
        "",
        "| deployments | api median / p99 | numpy median / p99 | **numpy/api** | "
        f"core median | core limit={CORE_LIMIT} | core filter-only | api − core | "
        "api decisions/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["sizes"]:
        a, n, c = row["api"], row["numpy"], row["core"]
        lines.append(
            f"| {row['size']:,} | {a['median_us']:.1f} / {a['p99_us']:.1f} | "
            f"{n['median_us']:.1f} / {n['p99_us']:.1f} | **{row['numpy_over_api']:.1f}×** | "
            f"{c['median_us']:.1f} | {row['core_limit']['median_us']:.1f} | "
            f"{row['core_filter_only']['median_us']:.1f} | "
            f"{row['api_overhead_us']:.1f} | "
            f"{a['decisions_per_s']:,.0f} |"
        )
    lines += ["", "### Targets", ""]
    for t in report["targets"]:
        lines.append(f"- {t['what']}: {t['value']} → **{'met' if t['met'] else 'NOT met'}**")
    lines += [
        "",
        "### Median µs per query of the mix (api / numpy)",
        "",
        "| deployments | " + " | ".join(report["settings"]["query_mix"]) + " |",
        "|---:|" + "---:|" * len(report["settings"]["query_mix"]),
    ]
    for row in report["sizes"]:
        cells = [
            f"{a:.1f} / {n:.1f}"
            for a, n in zip(
                row["per_query_api_us"].values(), row["per_query_numpy_us"].values(), strict=True
            )
        ]
        lines.append(f"| {row['size']:,} | " + " | ".join(cells) + " |")
    if report.get("breakdown"):
        b = report["breakdown"]
        lines += [
            "",
            f"### Where the API's time goes ({b['size']} deployments, median ns per "
            "step, steps timed separately)",
            "",
            "| step | ns |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {ns:,.0f} |" for name, ns in b["median_ns"].items()]
    lines += [
        "",
        "Equivalence: before timing, each size checks that api and numpy give the "
        "same ranked rows, counts and `emptied_by` (scores within 1e-9) for the mix and "
        f"{report['settings']['random_queries']} random queries; max score difference "
        f"seen: {max(r['verify']['max_score_diff'] for r in report['sizes']):.2g}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument(
        "--min-time",
        type=float,
        default=1.0,
        help="seconds of timed calls per implementation and size (≥ 0.3)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=110.0,
        help="stop adding rounds after this long (every cell gets ≥ 3 rounds)",
    )
    parser.add_argument("--random-queries", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    began = time.monotonic()
    info = machine()
    report: dict[str, Any] = {
        "command": "python benches/route_bench.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "settings": {
            "min_time_s": args.min_time,
            "seed": args.seed,
            "random_queries": args.random_queries,
            "query_mix": [],
        },
        "sizes": [],
    }
    print(f"{info['nproc']} CPUs ({info['cpu_model']}), load {info['load_average_start']}")
    header = (
        f"{'deployments':>11} | {'api med/p99 µs':>15} | {'numpy med/p99 µs':>17} | "
        f"{'numpy/api':>9} | {'core µs':>7} | {'limit µs':>8} | {'filter µs':>9} | "
        f"{'api-core':>8} | "
        f"{'api dec/s':>9}"
    )
    print(header)
    print("-" * len(header))
    breakdown_subject = None
    for index, size in enumerate(sizes):
        subject = build(size, args.seed)
        report["settings"]["query_mix"] = subject.labels
        checked = verify(subject, args.random_queries, args.seed)
        budget_left = args.max_seconds - (time.monotonic() - began)
        deadline = time.monotonic() + budget_left / (len(sizes) - index + 1)
        cells = measure(subject, args.min_time, deadline)
        s = {name: cell.summary() for name, cell in cells.items()}
        row = {
            "size": size,
            "api": s["api"],
            "numpy": s["numpy"],
            "core": s["core"],
            "core_limit": s["core_limit"],
            "core_filter_only": s["core_filter"],
            "numpy_over_api": s["numpy"]["median_us"] / s["api"]["median_us"],
            "numpy_over_api_p99": s["numpy"]["p99_us"] / s["api"]["p99_us"],
            "numpy_over_core": s["numpy"]["median_us"] / s["core"]["median_us"],
            "api_overhead_us": s["api"]["median_us"] - s["core"]["median_us"],
            "per_query_api_us": per_query_medians(subject, cells["api"]),
            "per_query_numpy_us": per_query_medians(subject, cells["numpy"]),
            "per_query_core_us": per_query_medians(subject, cells["core"]),
            "verify": checked,
        }
        report["sizes"].append(row)
        a, n, c = s["api"], s["numpy"], s["core"]
        print(
            f"{size:>11,} | {a['median_us']:>7.1f}/{a['p99_us']:<7.1f} | "
            f"{n['median_us']:>8.1f}/{n['p99_us']:<8.1f} | {row['numpy_over_api']:>8.1f}× | "
            f"{c['median_us']:>7.1f} | {s['core_limit']['median_us']:>8.1f} | "
            f"{s['core_filter']['median_us']:>9.1f} | "
            f"{row['api_overhead_us']:>8.1f} | "
            f"{a['decisions_per_s']:>9,.0f}",
            flush=True,
        )
        if size == TARGET_SIZE:
            breakdown_subject = subject
    if breakdown_subject is not None:
        ns = breakdown(breakdown_subject, iterations=30)
        report["breakdown"] = {"size": TARGET_SIZE, "median_ns": ns}
        print(f"\nwhere the API's time goes at {TARGET_SIZE} deployments (median ns per step):")
        for name, value in ns.items():
            print(f"  {name:<55} {value:>8,.0f}")
    at_target = next((r for r in report["sizes"] if r["size"] == TARGET_SIZE), None)
    report["targets"] = (
        []
        if at_target is None
        else [
            {
                "what": f"api median at {TARGET_SIZE} deployments < {TARGET_API_US:g} µs",
                "value": f"{at_target['api']['median_us']:.1f} µs "
                f"(p99 {at_target['api']['p99_us']:.1f} µs)",
                "met": at_target["api"]["median_us"] < TARGET_API_US,
            },
            {
                "what": f"api ≥ {TARGET_SPEEDUP:g}× faster than numpy at {TARGET_SIZE} deployments",
                "value": f"{at_target['numpy_over_api']:.1f}×",
                "met": at_target["numpy_over_api"] >= TARGET_SPEEDUP,
            },
        ]
    )
    print()
    for t in report["targets"]:
        print(f"target: {t['what']}: {t['value']} -> {'met' if t['met'] else 'NOT met'}")
    report["elapsed_s"] = round(time.monotonic() - began, 1)
    print(f"elapsed {report['elapsed_s']} s")
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "route-latest.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "route-latest.md").write_text(markdown(report))
        print(f"wrote {os.path.relpath(RESULTS / 'route-latest.json')} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
