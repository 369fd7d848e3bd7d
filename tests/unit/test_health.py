"""Properties of the health tracker: circuits, probes, Retry-After, EWMA (fake clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import HealthSettings, load_config
from gateway.routing.catalog import Catalog
from gateway.routing.health import COUNTED_FAILURES, HealthTracker

CONFIG = load_config(None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker(**overrides: float) -> tuple[HealthTracker, Catalog, Clock]:
    catalog = Catalog(CONFIG, environ={})
    clock = Clock()
    return HealthTracker(catalog, HealthSettings(**overrides), clock), catalog, clock  # type: ignore[arg-type]


ROWS = st.integers(0, len(Catalog(CONFIG, environ={}).deployments) - 1)
FAILURES = st.sampled_from(sorted(COUNTED_FAILURES))


@given(ROWS, st.integers(1, 8), FAILURES)
@settings(max_examples=50, deadline=None)
def test_circuit_opens_exactly_at_the_threshold(row: int, threshold: int, kind: str) -> None:
    health, _, _ = tracker(failure_threshold=threshold, window=1000, failure_rate=1.0)
    for _ in range(threshold - 1):
        health.failure(row, kind)
        assert health.claim(row)
    health.failure(row, kind)
    assert health.state(row).state == "open"
    assert not health.claim(row)


@given(ROWS, st.booleans())
@settings(max_examples=50, deadline=None)
def test_half_open_admits_one_probe_whose_outcome_decides(row: int, probe_ok: bool) -> None:
    health, _, clock = tracker(failure_threshold=1, cooldown_s=30)
    health.failure(row, "server_error")
    clock.now += 29.9
    health.refresh()
    assert not health.claim(row)
    clock.now += 0.2
    health.refresh()
    assert health.claim(row)  # the probe
    assert not health.claim(row)  # everyone else waits for it
    if probe_ok:
        health.success(row)
        assert health.state(row).state == "closed" and health.claim(row)
    else:
        health.failure(row, "timeout")
        assert health.state(row).state == "open" and not health.claim(row)


@given(ROWS, st.sampled_from(["bad_request", "auth_error", "client_error"]), st.integers(1, 30))
@settings(max_examples=50, deadline=None)
def test_request_errors_never_trip_a_circuit(row: int, kind: str, times: int) -> None:
    health, _, _ = tracker(failure_threshold=1)
    for _ in range(times):
        health.failure(row, kind)
    assert health.claim(row)


@given(ROWS, st.floats(0.5, 120))
@settings(max_examples=50, deadline=None)
def test_retry_after_cools_every_row_of_the_provider(row: int, wait: float) -> None:
    health, catalog, clock = tracker()
    cooled = catalog.deployments[row]
    same = (cooled.provider.id, cooled.key_source)
    siblings = [d.row for d in catalog.deployments if (d.provider.id, d.key_source) == same]
    others = [
        d.row for d in catalog.deployments if d.provider.id == same[0] and d.row not in siblings
    ]
    health.failure(row, "rate_limited", wait)
    assert not any(health.claim(r) for r in siblings)
    assert all(health.claim(r) for r in others)  # the other key source is not cooled
    clock.now += wait + 0.01
    health.refresh()
    assert health.claim(row)


@given(ROWS, st.lists(st.floats(1, 10_000), min_size=1, max_size=40), st.integers(1, 10))
@settings(max_examples=50, deadline=None)
def test_ewma_stays_within_observations_and_priors_hold_until_min_samples(
    row: int, samples: list[float], min_samples: int
) -> None:
    health, catalog, _ = tracker(min_samples=min_samples)
    prior = catalog.deployments[row].offer.ttft_ms
    for value in samples:
        health.observe(row, ttft_ms=value)
    state = health.state(row)
    assert min(samples) - 1e-6 <= state.ttft_ms <= max(samples) + 1e-6
    published = _published_ttft(catalog, row)
    expected = state.ttft_ms if len(samples) >= min_samples else prior
    assert published == pytest.approx(expected)


def test_learning_off_keeps_priors() -> None:
    health, catalog, _ = tracker()
    health = HealthTracker(catalog, HealthSettings(learn_latency=False))
    for _ in range(20):
        health.observe(0, ttft_ms=1.0, tps=1e6)
    assert _published_ttft(catalog, 0) == catalog.deployments[0].offer.ttft_ms


def _published_ttft(catalog: Catalog, row: int) -> float:
    """Read back what the table holds, through the router: rows over max_ttft are dropped."""
    import numpy as np

    from gateway import _router_core as core

    mask = np.zeros(len(catalog.models), dtype=np.bool_)
    mask[catalog.model_index[catalog.deployments[row].model.id]] = True
    low, high = 0.0, 1e9
    for _ in range(80):  # bisect the TTFT ceiling at which the row stops being viable
        mid = (low + high) / 2
        result = catalog.table.route(core.RouteRequest(model_mask=mask, max_ttft_ms=mid))
        if row in result.ranked.tolist():
            high = mid
        else:
            low = mid
    return high


@settings(max_examples=50, deadline=None)
@given(ROWS, st.floats(0.5, 60.0), st.floats(0.0, 30.0))
def test_a_circuit_shared_by_another_process_opens_here_for_its_remaining_time(
    row: int, seconds: float, age: float
) -> None:
    health, _, clock = tracker()
    clock.now = 1000.0
    health.adopt(row, seconds, age)
    assert health.state(row).state == "open"
    assert health.claim(row) is False
    assert health.state(row).consecutive_failures == 0, "adopting is not a failure"
    shared = health.shared_state()
    assert shared[row][0] == pytest.approx(seconds)
    assert shared[row][1] == pytest.approx(age)
    clock.now += seconds
    health.refresh()
    assert health.state(row).state == "half_open"


@settings(max_examples=50, deadline=None)
@given(ROWS, st.floats(0.5, 60.0), st.floats(0.1, 30.0), st.floats(0.0, 0.99))
def test_a_success_seen_here_after_the_other_process_opened_wins(
    row: int, seconds: float, age: float, fraction: float
) -> None:
    """A row that served successfully here after the remote circuit opened stays closed."""
    health, _, clock = tracker()
    clock.now = 1000.0
    health.success(row)
    clock.now += age * fraction  # the success came after the remote opening
    health.adopt(row, seconds, age)
    assert health.state(row).state == "closed"
    assert health.shared_state() == {}


@given(ROWS, FAILURES, st.integers(1, 6))
@settings(max_examples=50, deadline=None)
def test_failed_probes_back_off_to_the_cap_and_a_success_resets(
    row: int, kind: str, probes: int
) -> None:
    health, _, clock = tracker(failure_threshold=1, cooldown_s=5, max_cooldown_s=15)
    health.failure(row, kind)
    expected = 5.0
    for _ in range(probes):
        clock.now += expected - 0.01
        health.refresh()
        assert not health.claim(row)
        clock.now += 0.02
        health.refresh()
        assert health.claim(row)  # the probe, after exactly the back-off
        health.failure(row, kind)
        expected = min(15.0, expected * 2)
    clock.now += expected + 0.01
    health.refresh()
    assert health.claim(row)
    health.success(row)
    health.failure(row, kind)
    clock.now += 5.01
    health.refresh()
    assert health.claim(row)  # back to the first cool-down


@given(ROWS, st.sampled_from(["bad_request", "auth_error", "context_length", "content_filter"]))
@settings(max_examples=30, deadline=None)
def test_a_probe_that_meets_a_request_error_frees_the_probe(row: int, kind: str) -> None:
    health, _, clock = tracker(failure_threshold=1, cooldown_s=5)
    health.failure(row, "server_error")
    clock.now += 5.01
    health.refresh()
    assert health.claim(row)
    health.failure(row, kind)  # says nothing about the deployment
    assert health.claim(row)  # the next request may probe


@given(st.lists(st.booleans(), max_size=300), st.integers(1, 50))
def test_the_failure_count_follows_the_window(outcomes: list[bool], window: int) -> None:
    """The running count equals counting the window, whatever falls out of it."""
    import collections

    from gateway.routing.health import DeploymentHealth

    health = DeploymentHealth(1.0, 1.0, 1.0, 1.0, outcomes=collections.deque(maxlen=window))
    for ok in outcomes:
        health.record(ok)
        assert health.failures_in_window == health.outcomes.count(False)
        kept = health.outcomes
        assert health.success_rate == (kept.count(True) / len(kept) if kept else 1.0)
