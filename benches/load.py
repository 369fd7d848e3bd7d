"""Run the gateway load harness with its defaults; write benches/results/load-latest.{json,md}.

Usage (from the repository root, after ``maturin develop``):

    python benches/load.py                 # defaults: 200 and 1000 req/s, 10 s each, 1 worker
    python benches/load.py --stream        # the same with streaming responses
    python benches/load.py --workers 2     # any option of ``routegate bench`` is passed on

Takes under three minutes; see benches/README.md for what is measured.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv: list[str] | None = None) -> int:
    try:
        from gateway.bench import main as bench_main
    except ModuleNotFoundError:  # run from a source tree that is not installed
        sys.path.insert(0, str(HERE.parent / "python"))
        from gateway.bench import main as bench_main
    argv = sys.argv[1:] if argv is None else argv
    outputs = []
    if "--json-out" not in argv:
        outputs += ["--json-out", os.path.relpath(RESULTS / "load-latest.json")]
    if "--md-out" not in argv:
        outputs += ["--md-out", os.path.relpath(RESULTS / "load-latest.md")]
    return bench_main([*argv, *outputs])


if __name__ == "__main__":
    raise SystemExit(main())
