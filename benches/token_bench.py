"""Token-counting benchmark: the native core against ``tiktoken`` on the same corpus.

Interleaved in one run (round-robin, best of ``--rounds``), single thread:
exact counting MB/s for ``o200k_base`` and ``cl100k_base`` (ours vs ``len(enc.encode_ordinary)``),
the estimator's MB/s, ``analyze`` on a typical 2 KB chat body (µs), and the estimator's
overestimate per family against exact ``o200k_base`` counts. tiktoken runs offline from the
core's bundled vocabularies. ``--baseline PATH`` also times an earlier build of the extension
(a copied ``_router_core*.so``) in the same interleaved rounds, for before/after figures.
Writes ``benches/results/tokens-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.native import corpus  # noqa: E402

corpus.offline_tiktoken_cache()

import tiktoken  # noqa: E402

from gateway import _router_core as core  # noqa: E402

CHAT_BODY = json.dumps(
    {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "system",
                "content": "You are a helpful assistant for a logistics company. Answer "
                "precisely, cite the order number, and keep answers under 120 words. " * 5,
            },
            {"role": "user", "content": "Where is order 48213? It was due on Monday. " * 8},
            {
                "role": "assistant",
                "content": "Order 48213 left the Rotterdam hub on Saturday and is "
                "expected in Lyon on Wednesday; the delay came from a customs check. " * 6,
            },
            {"role": "user", "content": "Can you summarise the delay and the next steps?"},
        ],
        "temperature": 0.2,
        "max_tokens": 300,
    }
).encode()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def load_baseline(path: Path) -> ModuleType:
    """An earlier build of the extension, imported under its own init name."""
    spec = importlib.util.spec_from_file_location("_router_core", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def estimator_errors(texts: list[str], o200k: list[int], cl100k: list[int]) -> dict[str, Any]:
    """Estimator overestimate per family against exact counts."""
    errors: dict[str, Any] = {}
    for family in core.FAMILIES:
        exact = cl100k if family == "text-embedding-3" else o200k
        ratios = [
            core.estimate_tokens(t, family=family) / n
            for t, n in zip(texts, exact, strict=True)
            if n
        ]
        below = sum(
            core.estimate_tokens(t, family=family) < n for t, n in zip(texts, exact, strict=True)
        )
        errors[family] = {
            "mean_over": round(statistics.fmean(ratios), 2),
            "median_over": round(statistics.median(ratios), 2),
            "max_over": round(max(ratios), 2),
            "below_exact": below,
        }
    return errors


def baseline_cases(old: Any, texts: list[str], body_reps: int) -> dict[str, Callable[[], object]]:
    """The previous build's exact counts and ``analyze``, timed in the same rounds."""
    cases: dict[str, Callable[[], object]] = {}
    for name in corpus.ENCODINGS:
        old.count_tokens("warm", encoding=name)
        cases[f"baseline {name}"] = lambda name=name: [
            old.count_tokens(t, encoding=name) for t in texts
        ]

    def old_analyze_loop() -> None:
        for _ in range(body_reps):
            old.analyze(CHAT_BODY)

    cases["baseline analyze 2 KB body"] = old_analyze_loop
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benches" / "results")
    parser.add_argument(
        "--baseline", type=Path, help="an earlier _router_core*.so to time side by side"
    )
    args = parser.parse_args()
    old: Any = args.baseline and load_baseline(args.baseline)

    texts = list(corpus.build_corpus())
    nbytes = sum(len(t.encode()) for t in texts)
    encs = {name: tiktoken.get_encoding(name) for name in corpus.ENCODINGS}
    for name in corpus.ENCODINGS:
        core.count_tokens("warm", encoding=name)  # type: ignore[arg-type]
        encs[name].encode_ordinary("warm")
    body_reps = 2000

    def analyze_loop() -> None:
        for _ in range(body_reps):
            core.analyze(CHAT_BODY)

    cases: dict[str, Callable[[], object]] = {}
    for name, enc in encs.items():
        cases[f"tiktoken {name}"] = lambda enc=enc: [len(enc.encode_ordinary(t)) for t in texts]
        cases[f"routegate {name}"] = lambda name=name: [
            core.count_tokens(t, encoding=name) for t in texts
        ]
    cases["routegate estimate (gpt-4o)"] = lambda: [
        core.estimate_tokens(t, family="gpt-4o") for t in texts
    ]
    cases["analyze 2 KB body"] = analyze_loop
    cases.update(baseline_cases(old, texts, body_reps) if old else {})
    samples: dict[str, list[float]] = {k: [] for k in cases}
    load_start = os.getloadavg()
    for _ in range(args.rounds):
        for key, fn in cases.items():
            samples[key].append(timed(fn))

    def mbs(key: str) -> float:
        return nbytes / min(samples[key]) / 1e6

    throughput = {k: round(mbs(k), 2) for k in cases if "analyze" not in k}
    analyze_us = min(samples["analyze 2 KB body"]) / body_reps * 1e6
    analyze_median = statistics.median(samples["analyze 2 KB body"]) / body_reps * 1e6
    baseline: dict[str, Any] | None = None
    if old:
        old_samples = samples["baseline analyze 2 KB body"]
        baseline = {
            "path": str(args.baseline),
            "analyze_2kb_us": {
                "best": round(min(old_samples) / body_reps * 1e6, 2),
                "median": round(statistics.median(old_samples) / body_reps * 1e6, 2),
            },
        }
    load_after = os.getloadavg()

    o200k = [core.count_tokens(t, encoding="o200k_base") for t in texts]
    cl100k = [core.count_tokens(t, encoding="cl100k_base") for t in texts]
    errors = estimator_errors(texts, o200k, cl100k)
    english = "The quick brown fox jumps over the lazy dog while the cat sleeps. " * 50
    english_ratio = core.estimate_tokens(english, family="gpt-4o") / core.count_tokens(
        english, encoding="o200k_base"
    )

    result = {
        "corpus_strings": len(texts),
        "corpus_bytes": nbytes,
        "rounds": args.rounds,
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "loadavg_start": load_start,
            "loadavg_end": load_after,
            "python": platform.python_version(),
            "tiktoken": tiktoken.__version__,
        },
        "throughput_mb_s": throughput,
        "speedup": {
            name: round(throughput[f"routegate {name}"] / throughput[f"tiktoken {name}"], 2)
            for name in corpus.ENCODINGS
        },
        "estimator_speedup_vs_tiktoken_o200k": round(
            throughput["routegate estimate (gpt-4o)"] / throughput["tiktoken o200k_base"], 1
        ),
        "analyze_2kb_us": {"best": round(analyze_us, 2), "median": round(analyze_median, 2)},
        "analyze_body_bytes": len(CHAT_BODY),
        "baseline": baseline,
        "estimator_over_o200k": errors,
        "estimator_over_english_prose": round(english_ratio, 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tokens-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Token counting: native core vs tiktoken",
        "",
        f"Corpus: {len(texts):,} strings, {nbytes:,} bytes (`tests/native/corpus.py`); single "
        f"thread, best of {args.rounds} interleaved rounds; {os.cpu_count()} cores, load "
        f"{load_start[0]:.2f} at start, {load_after[0]:.2f} at end (1-min avg); tiktoken "
        f"{tiktoken.__version__}.",
        "",
        "| case | MB/s | vs tiktoken |",
        "|---|---:|---:|",
    ]
    for key, value in throughput.items():
        name = "o200k_base" if "o200k" in key or "estimate" in key else "cl100k_base"
        label = f"{key} (previous build)" if key.startswith("baseline") else key
        base = throughput[f"tiktoken {name}"]
        lines.append(f"| {label} | {value:.2f} | {value / base:.2f}× |")
    lines += [
        "",
        f"`analyze` on a {len(CHAT_BODY):,}-byte chat body (exact o200k prompt_tokens): "
        f"**{analyze_us:.1f} µs** best, {analyze_median:.1f} µs median"
        + (
            f" (previous build, same run: {baseline['analyze_2kb_us']['best']:.1f} µs best, "
            f"{baseline['analyze_2kb_us']['median']:.1f} µs median)."
            if baseline
            else "."
        ),
        "",
        "Estimator overestimate against exact counts (o200k; cl100k for text-embedding-3):",
        "",
        "| family | mean × | median × | max × | strings below exact |",
        "|---|---:|---:|---:|---:|",
    ]
    for family, e in errors.items():
        lines.append(
            f"| {family} | {e['mean_over']} | {e['median_over']} | {e['max_over']} "
            f"| {e['below_exact']} |"
        )
    lines += ["", f"On English prose the gpt-4o bound is {english_ratio:.2f}× the exact count."]
    (args.out / "tokens-latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
