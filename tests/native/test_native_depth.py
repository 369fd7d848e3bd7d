"""``json_depth_exceeds``: the raw-byte nesting scan agrees with a real parse of any JSON
value (strings full of brackets, quotes and escapes included) and never fails on any bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway import _router_core as core
from gateway.edge.schemas import MAX_JSON_DEPTH

tricky_text = st.text(alphabet='[]{}"\\ab\n\u6a21', max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@given(values, st.booleans())
def test_scan_matches_the_parsed_depth(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    levels = depth(value)
    assert not core.json_depth_exceeds(body, limit=levels)
    if levels:
        assert core.json_depth_exceeds(body, limit=levels - 1)


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=8))
def test_any_bytes_are_scanned(body: bytes, limit: int) -> None:
    assert isinstance(core.json_depth_exceeds(body, limit=limit), bool)


def test_the_python_limit_is_the_native_one() -> None:
    assert MAX_JSON_DEPTH == core.MAX_JSON_DEPTH
    inside = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert not core.json_depth_exceeds(inside)
    assert core.json_depth_exceeds(b"[" + inside + b"]")
    assert core.analyze(b'{"messages": [], "x": ' + inside[1:-1] + b"}").message_count == 0
