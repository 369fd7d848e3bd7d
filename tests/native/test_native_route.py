"""Native routing: filtering versus a pure-Python reference, and ranking invariants."""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import _router_core as core
from gateway.config import load_config
from gateway.routing import RouteQuery, RoutingTable
from unit.scorer_reference import FAMILY_TOKEN_RATIOS, ReferenceScorer, family_prompt_tokens
from unit.test_scorer_properties import assert_matches_reference

IDS = 4
FEATURES = ("cost", "ttft", "throughput", "reliability", "quality")
RATIOS = [1.0, 1.15, 1.25, 1.3]


@dataclass
class Table:
    columns: dict[str, np.ndarray[Any, Any]]

    def build(self) -> core.CandidateTable:
        return core.CandidateTable(**self.columns)

    @property
    def rows(self) -> int:
        return len(self.columns["model"])

    def ratio(self, row: int) -> float:
        """The row's token ratio (1.0 when the table has no ``token_ratio`` column)."""
        ratios = self.columns.get("token_ratio")
        return 1.0 if ratios is None else float(ratios[row])


@st.composite
def tables(draw: st.DrawFn) -> Table:
    n = draw(st.integers(0, 16))
    tasks = draw(st.integers(1, 3))

    def col(elements: st.SearchStrategy[Any], dtype: Any) -> np.ndarray[Any, Any]:
        return np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype=dtype)

    price = st.sampled_from([0.0, 0.5, 1.0, 3.0, 15.0]) | st.floats(0, 30)
    unit = st.floats(0, 1)
    ratio = st.sampled_from(RATIOS) | st.floats(1, 3)
    # No column, an explicit None (both: 1.0 everywhere), or one ratio per row.
    kind = draw(st.sampled_from(["absent", "none", "per_row"]))
    ratios: dict[str, Any] = {}
    if kind == "none":
        ratios["token_ratio"] = None
    elif kind == "per_row":
        ratios["token_ratio"] = col(ratio, np.float64)
    return Table(
        {
            **ratios,
            "model": col(st.integers(-1, IDS), np.int32),
            "provider": col(st.integers(0, IDS), np.int32),
            "region": col(st.integers(0, IDS), np.int32),
            "price_input": col(price, np.float64),
            "price_output": col(price, np.float64),
            "price_cached": np.zeros(n),
            "context_window": col(st.integers(0, 4000), np.int64),
            "max_output": col(st.integers(0, 2000), np.int64),
            "capabilities": col(st.integers(0, 15), np.uint32),
            "data_policy": col(st.integers(0, 2), np.uint8),
            "key_source": col(st.integers(1, 2), np.uint8),
            "ttft_ms": col(st.sampled_from([100.0, 400.0]) | st.floats(1, 2000), np.float64),
            "throughput_tps": col(st.floats(1, 300), np.float64),
            "success_rate": col(unit, np.float64),
            "circuit_open": col(st.booleans(), np.bool_),
            "quality": np.array(
                draw(
                    st.lists(st.lists(unit, min_size=tasks, max_size=tasks), min_size=n, max_size=n)
                ),
                dtype=np.float64,
            ).reshape(n, tasks),
        }
    )


@dataclass
class Request:
    kwargs: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.kwargs.get(name, default)


def optional(values: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.none() | values


@st.composite
def requests(draw: st.DrawFn, tasks: int) -> Request:
    mask = st.none() | st.lists(st.booleans(), max_size=IDS + 1).map(
        lambda m: np.array(m, dtype=np.bool_)
    )
    weights = draw(st.tuples(*[st.floats(0, 1)] * 4, st.floats(0.05, 1)))
    return Request(
        {
            "model_mask": draw(mask),
            "provider_mask": draw(mask),
            "region_mask": draw(mask),
            "required_capabilities": draw(st.integers(0, 15)),
            "prompt_tokens": draw(st.integers(0, 3000)),
            "max_output_tokens": draw(st.integers(0, 1500)),
            "expected_output_tokens": draw(st.integers(0, 2000)),
            "min_data_policy": draw(st.integers(0, 2)),
            "key_source": draw(st.integers(0, 2)),
            "max_price_per_1m": draw(optional(st.floats(0, 30))),
            "max_ttft_ms": draw(optional(st.floats(0, 2000))),
            "min_throughput_tps": draw(optional(st.floats(0, 300))),
            "min_success_rate": draw(optional(st.floats(0, 1))),
            "weights": weights,
            "task": draw(st.integers(0, tasks - 1)),
            "quality_floor": draw(optional(st.floats(0, 1))),
            "cheapest": draw(st.booleans()),
        }
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Table, Request]:
    table = draw(tables())
    return table, draw(requests(table.columns["quality"].shape[1]))


def allowed(mask: np.ndarray[Any, Any] | None, ident: int) -> bool:
    return mask is None or (0 <= ident < len(mask) and bool(mask[ident]))


def reference_verdicts(t: Table, r: Request, row: int) -> list[bool]:
    """Which of CONSTRAINT_NAMES the row passes, written from the contract alone."""
    c = t.columns
    blended = (c["price_input"][row] + c["price_output"][row]) / 2
    quality = c["quality"][row, r.get("task")]

    def at_most(value: float, limit: float | None) -> bool:
        return limit is None or value <= limit

    def at_least(value: float, limit: float | None) -> bool:
        return limit is None or value >= limit

    mot = r.get("max_output_tokens")
    verdicts = {
        "model": allowed(r.get("model_mask"), int(c["model"][row])),
        "provider": allowed(r.get("provider_mask"), int(c["provider"][row])),
        "key_source": r.get("key_source") == 0 or int(c["key_source"][row]) == r.get("key_source"),
        "capabilities": int(c["capabilities"][row]) & r.get("required_capabilities")
        == r.get("required_capabilities"),
        "context_window": int(c["context_window"][row])
        >= family_prompt_tokens(r.get("prompt_tokens"), t.ratio(row)) + mot,
        "max_output": mot == 0 or int(c["max_output"][row]) >= mot,
        "region": allowed(r.get("region_mask"), int(c["region"][row])),
        "data_policy": int(c["data_policy"][row]) >= r.get("min_data_policy"),
        "price": at_most(blended, r.get("max_price_per_1m")),
        "quality_floor": at_least(quality, r.get("quality_floor")),
        "ttft": at_most(c["ttft_ms"][row], r.get("max_ttft_ms")),
        "throughput": at_least(c["throughput_tps"][row], r.get("min_throughput_tps")),
        "success_rate": at_least(c["success_rate"][row], r.get("min_success_rate")),
        "circuit": not c["circuit_open"][row],
    }
    assert set(verdicts) == set(core.CONSTRAINT_NAMES)
    return [verdicts[name] for name in core.CONSTRAINT_NAMES]


def expected_cost(t: Table, r: Request, row: int) -> float:
    """The prompt scaled by the row's token ratio (unrounded) plus the expected output."""
    c = t.columns
    return float(
        r.get("prompt_tokens") * t.ratio(row) * c["price_input"][row]
        + r.get("expected_output_tokens") * c["price_output"][row]
    )


@settings(max_examples=400, deadline=None)
@given(cases())
def test_route_matches_reference_filter(case: tuple[Table, Request]) -> None:
    table, req = case
    result = table.build().route(core.RouteRequest(**req.kwargs))
    verdicts = [reference_verdicts(table, req, row) for row in range(table.rows)]
    viable = {row for row, v in enumerate(verdicts) if all(v)}

    ranked = result.ranked.tolist()
    assert result.ranked.dtype == np.int64
    assert len(ranked) == len(set(ranked))
    assert set(ranked) == viable  # nothing violating returned, nothing satisfying dropped
    assert result.candidates_viable == len(viable)
    assert result.candidates_total == sum(v[0] for v in verdicts)

    emptied = next(
        (
            k
            for k in range(len(core.CONSTRAINT_NAMES))
            if not any(all(v[: k + 1]) for v in verdicts)
        ),
        None,
    )
    assert result.emptied_by == (None if emptied is None else core.CONSTRAINT_NAMES[emptied])
    assert result.health_only == (emptied is not None and emptied >= 10)

    scores = result.scores.tolist()
    assert len(scores) == len(ranked)
    assert all(a >= b for a, b in itertools.pairwise(scores))
    assert all(-1e-9 <= s <= 1 + 1e-9 for s in scores)
    if req.get("cheapest") and ranked:
        assert expected_cost(table, req, ranked[0]) == min(
            expected_cost(table, req, r) for r in viable
        )


@settings(max_examples=200, deadline=None)
@given(cases(), st.floats(1e-3, 1e3))
def test_scaling_weights_changes_nothing(case: tuple[Table, Request], factor: float) -> None:
    table, req = case
    built = table.build()
    base = built.route(core.RouteRequest(**req.kwargs))
    scaled_kwargs = {**req.kwargs, "weights": tuple(w * factor for w in req.get("weights"))}
    scaled = built.route(core.RouteRequest(**scaled_kwargs))
    np.testing.assert_allclose(scaled.scores, base.scores, rtol=1e-9, atol=1e-12)
    # Orders may only differ among rows whose scores are equal up to rounding.
    for a, b in zip(base.ranked.tolist(), scaled.ranked.tolist(), strict=True):
        if a != b:
            i, j = base.ranked.tolist().index(a), base.ranked.tolist().index(b)
            assert abs(base.scores[i] - base.scores[j]) < 1e-9
    exact = {**req.kwargs, "weights": tuple(w * 4 for w in req.get("weights"))}
    assert built.route(core.RouteRequest(**exact)).ranked.tolist() == base.ranked.tolist()


def small_table(n: int = 3) -> Table:
    return Table(
        {
            "model": np.arange(n, dtype=np.int32),
            "provider": np.zeros(n, np.int32),
            "region": np.zeros(n, np.int32),
            "price_input": np.array([3.0, 1.0, 2.0][:n]),
            "price_output": np.array([3.0, 1.0, 2.0][:n]),
            "price_cached": np.zeros(n),
            "context_window": np.full(n, 1000, np.int64),
            "max_output": np.full(n, 500, np.int64),
            "capabilities": np.full(n, core.CAP_TOOLS, np.uint32),
            "data_policy": np.zeros(n, np.uint8),
            "key_source": np.full(n, core.KEY_SOURCE_PLATFORM, np.uint8),
            "ttft_ms": np.array([100.0, 300.0, 200.0][:n]),
            "throughput_tps": np.full(n, 50.0),
            "success_rate": np.ones(n),
            "circuit_open": np.zeros(n, np.bool_),
            "quality": np.full((n, 2), 0.5),
        }
    )


def test_presets_order_rows() -> None:
    table = small_table().build()
    assert table.route(core.RouteRequest(cheapest=True, prompt_tokens=10)).ranked.tolist() == [
        1,
        2,
        0,
    ]
    ttft_first = core.RouteRequest(weights=(0, 1, 0, 0, 0))
    assert table.route(ttft_first).ranked.tolist() == [0, 2, 1]


def test_health_update_and_health_only() -> None:
    table = small_table().build()
    for row in range(3):
        table.update_health(
            row, ttft_ms=100.0, throughput_tps=50.0, success_rate=1.0, circuit_open=True
        )
    result = table.route(core.RouteRequest())
    assert (result.emptied_by, result.health_only, result.candidates_total) == ("circuit", True, 3)
    static = table.route(core.RouteRequest(required_capabilities=core.CAP_VISION))
    assert (static.emptied_by, static.health_only) == ("capabilities", False)
    with pytest.raises(IndexError):
        table.update_health(
            3, ttft_ms=1.0, throughput_tps=1.0, success_rate=1.0, circuit_open=False
        )


@pytest.mark.parametrize("rows", [3, 3 * 1500])
def test_threads_route_while_others_update_health(rows: int) -> None:
    """A small table is scored with the GIL held, a large one (past 2,048 rows) with it
    released; either way routers and health updates on several threads all finish, and every
    route sees every row."""
    columns = {
        name: np.concatenate([column] * (rows // 3))
        for name, column in small_table().columns.items()
    }
    columns["model"] = np.zeros(rows, np.int32)
    table = Table(columns).build()
    request = core.RouteRequest()
    seen: list[int] = []
    failures: list[BaseException] = []

    def route() -> None:
        try:
            for _ in range(200):
                seen.append(table.route(request).candidates_viable)
        except BaseException as error:  # reported below
            failures.append(error)

    def update() -> None:
        try:
            for i in range(2000):
                table.update_health(
                    i % rows, ttft_ms=50.0, throughput_tps=9.0, success_rate=1.0, circuit_open=False
                )
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=route) for _ in range(4)]
    threads += [threading.Thread(target=update) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a router or an update hung"
    assert not failures
    assert seen == [rows] * 800


def test_table_rejects_bad_columns() -> None:
    cols = small_table().columns
    with pytest.raises(ValueError, match="provider"):
        core.CandidateTable(**{**cols, "provider": np.zeros(2, np.int32)})
    with pytest.raises(ValueError, match=r"model.*int32"):
        core.CandidateTable(**{**cols, "model": np.arange(3, dtype=np.int64)})
    with pytest.raises(ValueError, match="quality"):
        core.CandidateTable(**{**cols, "quality": np.zeros((2, 2))})
    assert len(core.CandidateTable(**cols)) == 3
    assert core.CandidateTable(**cols).task_count == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights": (0.0, 0.0, 0.0, 0.0, 0.0)},
        {"weights": (-1.0, 1.0, 0.0, 0.0, 0.0)},
        {"weights": (float("nan"), 1.0, 0.0, 0.0, 0.0)},
        {"key_source": 3},
        {"min_data_policy": 9},
        {"prompt_tokens": -1},
        {"max_ttft_ms": float("nan")},
    ],
)
def test_request_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        core.RouteRequest(**kwargs)


def test_task_out_of_range_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="task"):
        small_table().build().route(core.RouteRequest(task=5))


@settings(max_examples=300, deadline=None)
@given(cases())
def test_explain_names_the_first_failed_constraint(case: tuple[Table, Request]) -> None:
    table, req = case
    built = table.build()
    request = core.RouteRequest(**req.kwargs)
    explained = built.route(request, explain=True)
    rejected = explained.rejected_by
    assert rejected is not None
    assert rejected.dtype == np.int8 and rejected.shape == (table.rows,)

    viable = {row for row, code in enumerate(rejected.tolist()) if code == -1}
    assert viable == set(explained.ranked.tolist())
    for row, code in enumerate(rejected.tolist()):
        verdicts = reference_verdicts(table, req, row)
        if code == -1:
            assert all(verdicts)
        else:
            assert 0 <= code < len(core.CONSTRAINT_NAMES)
            assert all(verdicts[:code]), (row, core.CONSTRAINT_NAMES[code], verdicts)
            assert not verdicts[code], (row, core.CONSTRAINT_NAMES[code], verdicts)

    plain = built.route(request)
    assert plain.rejected_by is None
    assert built.route(request, explain=False).rejected_by is None
    assert plain.ranked.tolist() == explained.ranked.tolist()
    assert plain.scores.tolist() == explained.scores.tolist()
    assert (plain.candidates_total, plain.candidates_viable, plain.emptied_by) == (
        explained.candidates_total,
        explained.candidates_viable,
        explained.emptied_by,
    )
    assert plain.health_only == explained.health_only


def test_explain_small_table() -> None:
    table = small_table().build()
    result = table.route(core.RouteRequest(max_price_per_1m=2.5), explain=True)
    assert result.rejected_by is not None
    assert result.rejected_by.tolist() == [core.CONSTRAINT_NAMES.index("price"), -1, -1]


@settings(max_examples=200, deadline=None)
@given(cases(), st.integers(0, 20), st.booleans())
def test_limit_keeps_the_head_of_the_ranking(
    case: tuple[Table, Request], limit: int, explain: bool
) -> None:
    table, req = case
    built = table.build()
    request = core.RouteRequest(**req.kwargs)
    full = built.route(request, explain=explain)
    limited = built.route(request, limit=limit, explain=explain)
    k = min(limit, len(full.ranked))
    assert limited.ranked.tolist() == full.ranked.tolist()[:k]
    assert limited.scores.tolist() == full.scores.tolist()[:k]
    assert limited.candidates_viable == full.candidates_viable
    assert (limited.candidates_total, limited.emptied_by, limited.health_only) == (
        full.candidates_total,
        full.emptied_by,
        full.health_only,
    )
    # The explanation does not depend on the limit.
    if explain:
        assert limited.rejected_by is not None and full.rejected_by is not None
        assert limited.rejected_by.tolist() == full.rejected_by.tolist()
    else:
        assert limited.rejected_by is None


@settings(max_examples=200, deadline=None)
@given(
    cases(),
    st.none() | st.integers(0, 3000),
    st.none() | st.integers(0, 1500),
    st.none() | st.integers(0, 2000),
    st.booleans(),
)
def test_token_overrides_equal_a_rebuilt_request(
    case: tuple[Table, Request],
    prompt: int | None,
    max_output: int | None,
    expected: int | None,
    explain: bool,
) -> None:
    table, req = case
    built = table.build()
    overrides = {
        "prompt_tokens": prompt,
        "max_output_tokens": max_output,
        "expected_output_tokens": expected,
    }
    overridden = built.route(core.RouteRequest(**req.kwargs), explain=explain, **overrides)
    rebuilt_kwargs = {**req.kwargs, **{k: v for k, v in overrides.items() if v is not None}}
    rebuilt = built.route(core.RouteRequest(**rebuilt_kwargs), explain=explain)
    assert overridden.ranked.tolist() == rebuilt.ranked.tolist()
    assert overridden.scores.tolist() == rebuilt.scores.tolist()
    assert (
        overridden.candidates_total,
        overridden.candidates_viable,
        overridden.emptied_by,
        overridden.health_only,
    ) == (
        rebuilt.candidates_total,
        rebuilt.candidates_viable,
        rebuilt.emptied_by,
        rebuilt.health_only,
    )
    if explain:
        assert overridden.rejected_by is not None and rebuilt.rejected_by is not None
        assert overridden.rejected_by.tolist() == rebuilt.rejected_by.tolist()


@given(cases(), st.none() | st.floats(0, 1), st.booleans())
def test_a_quality_floor_override_equals_a_rebuilt_request(
    case: tuple[Table, Request], floor: float | None, explain: bool
) -> None:
    table, req = case
    built = table.build()
    overridden = built.route(core.RouteRequest(**req.kwargs), explain=explain, quality_floor=floor)
    rebuilt_kwargs = {**req.kwargs} if floor is None else {**req.kwargs, "quality_floor": floor}
    rebuilt = built.route(core.RouteRequest(**rebuilt_kwargs), explain=explain)
    assert overridden.ranked.tolist() == rebuilt.ranked.tolist()
    assert overridden.scores.tolist() == rebuilt.scores.tolist()
    assert (overridden.candidates_viable, overridden.emptied_by) == (
        rebuilt.candidates_viable,
        rebuilt.emptied_by,
    )
    if explain:
        assert overridden.rejected_by is not None and rebuilt.rejected_by is not None
        assert overridden.rejected_by.tolist() == rebuilt.rejected_by.tolist()


def test_a_nan_quality_floor_override_is_refused() -> None:
    with pytest.raises(ValueError, match="quality_floor"):
        small_table().build().route(core.RouteRequest(), quality_floor=math.nan)


def test_route_rejects_negative_overrides() -> None:
    table = small_table().build()
    for name in ("prompt_tokens", "max_output_tokens", "expected_output_tokens", "limit"):
        with pytest.raises(ValueError, match=name):
            table.route(core.RouteRequest(), **{name: -1})
    assert table.route(core.RouteRequest(), limit=0).ranked.tolist() == []
    assert table.route(core.RouteRequest(), limit=0).candidates_viable == 3


# ---------------------------------------------------------------- per-family token ratios


def test_token_ratio_of_every_family() -> None:
    assert set(FAMILY_TOKEN_RATIOS) == set(core.FAMILIES)
    for family, ratio in FAMILY_TOKEN_RATIOS.items():
        assert core.token_ratio(family) == ratio
        assert core.token_ratio(family.upper()) == ratio
    assert core.token_ratio("claude") == 1.3
    assert core.token_ratio("gpt-4o") == 1.0
    for unknown in ("", "no-such-family", None):
        assert core.token_ratio(unknown) == 1.0


def test_table_rejects_bad_token_ratios() -> None:
    cols = small_table().columns
    for bad in (0.5, 0.0, -1.0, 0.999, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"token_ratio.*row 1"):
            core.CandidateTable(**cols, token_ratio=np.array([1.0, bad, 1.3]))
    with pytest.raises(ValueError, match="token_ratio"):
        core.CandidateTable(**cols, token_ratio=np.ones(2))
    with pytest.raises(ValueError, match=r"token_ratio.*float64"):
        core.CandidateTable(**cols, token_ratio=np.ones(3, dtype=np.float32))
    assert len(core.CandidateTable(**cols, token_ratio=None)) == 3


def test_context_window_uses_the_scaled_prompt() -> None:
    # Rows 0-2: ratios 1.0, 1.15, 1.3, all with a 1000-token window.
    table = core.CandidateTable(**small_table().columns, token_ratio=np.array([1.0, 1.15, 1.3]))

    def viable(prompt: int, output: int) -> list[int]:
        request = core.RouteRequest(prompt_tokens=prompt, max_output_tokens=output)
        return sorted(table.route(request).ranked.tolist())

    # 700 × 1.3 = 910 and ⌈700 × 1.15⌉ = ⌈804.99…⌉ = 805.
    assert viable(700, 90) == [0, 1, 2]
    assert viable(700, 91) == [0, 1]
    assert viable(700, 195) == [0, 1]
    assert viable(700, 196) == [0]
    explained = table.route(
        core.RouteRequest(prompt_tokens=700, max_output_tokens=196), explain=True
    )
    assert explained.rejected_by is not None
    context = core.CONSTRAINT_NAMES.index("context_window")
    assert explained.rejected_by.tolist() == [-1, context, context]


def test_cost_uses_the_scaled_prompt() -> None:
    cols = {**small_table().columns, "price_input": np.array([1.0, 1.2, 1.4])}
    cols["price_output"] = np.zeros(3)
    cheapest = core.RouteRequest(cheapest=True, prompt_tokens=500, expected_output_tokens=0)
    assert core.CandidateTable(**cols).route(cheapest).ranked.tolist() == [0, 1, 2]
    # Costs 500 × 1.3 × 1.0 = 650, 500 × 1.0 × 1.2 = 600, 500 × 1.0 × 1.4 = 700.
    scaled = core.CandidateTable(**cols, token_ratio=np.array([1.3, 1.0, 1.0]))
    assert scaled.route(cheapest).ranked.tolist() == [1, 0, 2]


@settings(max_examples=200, deadline=None)
@given(cases())
def test_unit_ratios_route_as_without_ratios(case: tuple[Table, Request]) -> None:
    table, req = case
    request = core.RouteRequest(**req.kwargs)
    plain = {k: v for k, v in table.columns.items() if k != "token_ratio"}
    without = core.CandidateTable(**plain).route(request, explain=True)
    ones = core.CandidateTable(**plain, token_ratio=np.ones(table.rows)).route(
        request, explain=True
    )
    assert ones.ranked.tolist() == without.ranked.tolist()
    assert ones.scores.tolist() == without.scores.tolist()
    assert ones.rejected_by is not None and without.rejected_by is not None
    assert ones.rejected_by.tolist() == without.rejected_by.tolist()
    assert (ones.candidates_total, ones.candidates_viable, ones.emptied_by) == (
        without.candidates_total,
        without.candidates_viable,
        without.emptied_by,
    )
    # And that is the unscaled rule: prompt + output against the window.
    context = core.CONSTRAINT_NAMES.index("context_window")
    need = req.get("prompt_tokens") + req.get("max_output_tokens")
    for row, code in enumerate(without.rejected_by.tolist()):
        if code == -1 or code > context:
            assert int(plain["context_window"][row]) >= need


@settings(max_examples=200, deadline=None)
@given(cases(), st.data())
def test_a_higher_ratio_only_fails_the_context_window_sooner(
    case: tuple[Table, Request], data: st.DataObject
) -> None:
    table, req = case
    if table.rows == 0:
        return
    row = data.draw(st.integers(0, table.rows - 1))
    raise_by = data.draw(st.sampled_from([0.15, 0.3]) | st.floats(0, 2))
    ratios = np.array([table.ratio(r) for r in range(table.rows)], dtype=np.float64)
    before = Table({**table.columns, "token_ratio": ratios.copy()})
    ratios[row] += raise_by
    after = Table({**table.columns, "token_ratio": ratios})
    request = core.RouteRequest(**req.kwargs)
    old = before.build().route(request, explain=True).rejected_by
    new = after.build().route(request, explain=True).rejected_by
    assert old is not None and new is not None
    context = core.CONSTRAINT_NAMES.index("context_window")
    for r, (was, now) in enumerate(zip(old.tolist(), new.tolist(), strict=True)):
        if r != row or was == now:
            assert was == now, r
        else:  # newly rejected by the context window, having passed everything before it
            assert now == context and (was == -1 or was > context), (r, was, now)
        was_ok = reference_verdicts(before, req, r)[context]
        assert was_ok or not reference_verdicts(after, req, r)[context]


def test_claude_prompt_near_the_window_is_rejected_but_openai_kept() -> None:
    """Public API, built-in catalog: a prompt that fits a 200k window as counted (o200k) but
    not once scaled to Claude's tokens (× 1.3) keeps o4-mini and rejects Claude."""
    routing = RoutingTable.from_config(assume_credentials=True)
    rows = routing.catalog.deployments
    claude = next(d for d in rows if d.model.family == "claude" and d.provider.id == "anthropic")
    openai = next(
        d
        for d in rows
        if d.model.family in ("o-series", "gpt-5", "gpt-4.1", "gpt-4o")
        and d.provider.id == "openai"
        and d.offer.context_window == claude.offer.context_window
    )
    window = claude.offer.context_window
    ratio = core.token_ratio("claude")
    assert ratio > 1.0 and core.token_ratio(openai.model.family) == 1.0
    # The largest count that still fits once scaled (153,846 for 200,000 at 1.3).
    start = int(window / ratio)
    largest_fitting = max(n for n in range(start - 2, start + 3) if math.ceil(n * ratio) <= window)
    models = (claude.model.id, openai.model.id)

    def decide(prompt_tokens: int) -> tuple[set[int], dict[int, str]]:
        decision = routing.route(
            RouteQuery(model=models, prompt_tokens=prompt_tokens), explain=True
        )
        kept = {c.row for c in decision.candidates}
        return kept, {r.row: r.constraint for r in decision.rejections}

    for prompt in (window - 1, largest_fitting + 1):
        kept, rejected = decide(prompt)
        assert rejected[claude.row] == "context_window", prompt
        assert openai.row in kept, prompt
    kept, _ = decide(largest_fitting)
    assert {claude.row, openai.row} <= kept


BUILT_IN = load_config(None)
BUILT_IN_TABLE = RoutingTable.from_config(BUILT_IN, assume_credentials=True)
BUILT_IN_REFERENCE = ReferenceScorer(BUILT_IN, {}, assume_credentials=True)
# Around the built-in windows (128k, 131,072, 200k, 262,144, 1M) as counted and as scaled.
PROMPTS = [0, 1000, 100_000, 111_304, 111_305, 153_846, 153_847, 199_999, 230_000, 900_000]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(["auto", "cheapest", "best", *sorted(m.id for m in BUILT_IN.models)]),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(PROMPTS) | st.integers(0, 1_100_000),
    st.sampled_from([0, 0, 1000, 8192, 32_000]),
    st.sampled_from([0, 256, 4000]),
)
def test_built_in_catalog_matches_the_reference(
    models: list[str], prompt: int, max_output: int, expected_output: int
) -> None:
    """Every family of the built-in catalog, decided by the product and by the reference."""
    query = RouteQuery(
        model=models[0] if len(models) == 1 else tuple(models),
        prompt_tokens=prompt,
        max_output_tokens=max_output,
        expected_output_tokens=expected_output,
    )
    decision = BUILT_IN_TABLE.route(query, explain=True)
    expected = BUILT_IN_REFERENCE.route(query)
    assert_matches_reference(decision, expected)
    rejected = {r.row: r.constraint for r in decision.rejections}
    assert [rejected.get(row) for row in range(len(expected.rejected_by))] == expected.rejected_by
