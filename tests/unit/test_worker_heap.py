"""A worker settles its heap once its app is built (docs/decisions.md: the collector's cost)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("factory", ["gateway.edge.rsgi:create_rsgi_app", "gateway.app:create_app"])
def test_a_worker_freezes_what_it_built_and_collects_the_young_generation_less_often(
    tmp_path: Path, factory: str
) -> None:
    module, name = factory.split(":")
    script = (
        "import gc, importlib\n"
        f"app = getattr(importlib.import_module({module!r}), {name!r})()\n"
        "from gateway.edge.app import GC_GEN0_THRESHOLD\n"
        "print(gc.get_freeze_count() > 10_000, gc.get_threshold()[0] == GC_GEN0_THRESHOLD)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEGATE_")}
    env["ROUTEGATE_DATA_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"], out.stdout
