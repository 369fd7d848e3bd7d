"""Integration-only fixtures (the shared ones live in tests/conftest.py)."""

from __future__ import annotations

import pytest

from support.upstream import UpstreamServer


@pytest.fixture(autouse=True)
def _fresh_upstreams(upstream_a: UpstreamServer, upstream_b: UpstreamServer) -> None:
    """Every test starts with empty request logs and the default ``Reply`` behaviour."""
    upstream_a.reset()
    upstream_b.reset()
