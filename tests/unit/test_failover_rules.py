"""Properties of the failover rules (``gateway.providers.failover``), the 400 classifier
(``providers.meaning``) and the circuit back-off (``HealthTracker.cooldown``)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import FailoverSettings, HealthSettings, load_config
from gateway.providers import AttemptFailure
from gateway.providers.failover import (
    HAMMER_ATTEMPTS,
    HAMMER_WINDOW_S,
    QUICK_RETRY_STATUSES,
    hammered,
    in_place_delay,
    larger_context,
)
from gateway.providers.meaning import meaning_of_400
from gateway.routing.catalog import Catalog
from gateway.routing.health import HealthTracker

SETTINGS = FailoverSettings()
SECONDS = st.floats(0, 30, allow_nan=False)
KINDS = st.sampled_from(
    ["rate_limited", "server_error", "timeout", "connect_error", "bad_request", "auth_error"]
)


def failure(
    kind: str, status: int | None = None, retry_after: float | None = None, reset: bool = False
) -> AttemptFailure:
    return AttemptFailure(kind, "x", status=status, retry_after=retry_after, reset=reset)  # type: ignore[arg-type]


def wait_for(
    fault: AttemptFailure,
    settings: FailoverSettings = SETTINGS,
    *,
    first_attempt: bool = True,
    retried: bool = False,
    times: list[float] | None = None,
    elapsed_s: float = 0.0,
    total_s: float = 60.0,
    rng: random.Random | None = None,
) -> float | None:
    """``in_place_delay`` with the common case's arguments as defaults."""
    return in_place_delay(
        fault,
        settings,
        first_attempt=first_attempt,
        retried=retried,
        times=[0.0] if times is None else times,
        elapsed_s=elapsed_s,
        total_s=total_s,
        rng=rng,
    )


@given(st.floats(0, 10, allow_nan=False), st.floats(0, 5, allow_nan=False))
@settings(max_examples=200)
def test_a_short_retry_after_is_waited_exactly_a_long_one_moves_on(
    retry_after: float, elapsed: float
) -> None:
    delay = wait_for(
        failure("rate_limited", 429, retry_after),
        first_attempt=False,
        times=[100.0],
        elapsed_s=elapsed,
    )
    if retry_after <= SETTINGS.retry_after_max_s:
        assert delay == retry_after
    else:
        assert delay is None
    never = FailoverSettings(retry_after_max_s=0)
    assert (
        wait_for(
            failure("rate_limited", 429, retry_after),
            never,
            times=[100.0],
            elapsed_s=elapsed,
        )
        is None
    )


def test_a_429_without_retry_after_moves_on() -> None:
    assert (
        wait_for(
            failure("rate_limited", 429),
        )
        is None
    )


@given(
    KINDS,
    st.sampled_from([None, 400, 401, 404, 500, 502, 503, 504, 529]),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**32),
)
@settings(max_examples=300)
def test_the_quick_retry_is_for_a_first_attempts_one_off_fault_only(
    kind: str, status: int | None, reset: bool, first: bool, seed: int
) -> None:
    delay = wait_for(
        failure(kind, status, None, reset),
        first_attempt=first,
        times=[5.0],
        rng=random.Random(seed),
    )
    one_off = (kind == "server_error" and status in QUICK_RETRY_STATUSES) or (
        kind == "connect_error" and reset
    )
    if first and one_off:
        assert delay is not None
        assert SETTINGS.quick_retry_min_s <= delay <= SETTINGS.quick_retry_max_s
    else:
        assert delay is None
    off = FailoverSettings(quick_retry=False)
    assert (
        wait_for(
            failure(kind, status, None, reset),
            off,
            first_attempt=first,
            times=[5.0],
        )
        is None
    )


@given(KINDS, st.floats(0, 2, allow_nan=False))
def test_a_deployment_is_retried_in_place_once_per_request(kind: str, wait: float) -> None:
    for status in (429, 500):
        assert (
            wait_for(
                failure(kind, status, wait, True),
                retried=True,
                times=[0.0, 0.1],
                elapsed_s=0.1,
            )
            is None
        )


@given(SECONDS, st.floats(0.1, 30, allow_nan=False), st.floats(0, 2, allow_nan=False))
@settings(max_examples=200)
def test_the_wait_ends_before_the_deadline(elapsed: float, total: float, wait: float) -> None:
    delay = wait_for(
        failure("rate_limited", 429, wait),
        elapsed_s=elapsed,
        total_s=total,
    )
    if delay is not None:
        assert elapsed + delay < total


@given(
    st.lists(st.floats(0, 3, allow_nan=False), min_size=1, max_size=4).map(sorted),
    st.floats(0, 2, allow_nan=False),
)
@settings(max_examples=300)
def test_never_more_than_two_attempts_within_the_window(earlier: list[float], wait: float) -> None:
    delay = wait_for(
        failure("rate_limited", 429, wait),
        first_attempt=False,
        times=earlier,
    )
    if delay is not None:
        at = earlier[-1] + delay
        window = [t for t in [*earlier, at] if t > at - HAMMER_WINDOW_S]
        assert len(window) <= HAMMER_ATTEMPTS


@given(st.lists(st.floats(0, 10, allow_nan=False), max_size=6), st.floats(0, 12, allow_nan=False))
def test_hammered_counts_the_attempts_in_the_window(times: list[float], now: float) -> None:
    recent = sum(1 for t in times if t >= now - HAMMER_WINDOW_S)
    assert hammered(times, now) == (recent >= HAMMER_ATTEMPTS)


CONTEXT_ERRORS = [
    (
        {"code": "context_length_exceeded", "type": "invalid_request_error"},
        "This model's maximum context length is 128000 tokens.",
    ),
    ({"type": "invalid_request_error"}, "prompt is too long: 210000 tokens > 200000 maximum"),
    (
        {"status": "INVALID_ARGUMENT"},
        "The input token count (300000) exceeds the maximum number of tokens allowed (1048576).",
    ),
    (None, "Input is too long for requested model."),
]
FILTER_ERRORS = [
    (
        {"code": "content_filter", "param": "prompt"},
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy.",
    ),
    ({"code": "content_policy_violation"}, "Your request was rejected by our safety system."),
    ({"code": "invalid_prompt", "innererror": {"code": "ResponsibleAIPolicyViolation"}}, "no"),
]
OTHER_ERRORS = [
    ({"code": "invalid_value", "param": "temperature"}, "temperature must be at most 2"),
    ({"type": "invalid_request_error"}, "messages: roles must alternate"),
    (None, "Unrecognized request argument supplied: foo"),
]


def test_400s_are_read_by_what_they_mean() -> None:
    for error, message in CONTEXT_ERRORS:
        assert meaning_of_400(error, message) == "context_length", message
    for error, message in FILTER_ERRORS:
        assert meaning_of_400(error, message) == "content_filter", message
    for error, message in OTHER_ERRORS:
        assert meaning_of_400(error, message) == "bad_request", message


@given(
    st.dictionaries(st.sampled_from(["code", "type", "status", "param"]), st.text(max_size=40)),
    st.text(max_size=200),
)
@settings(max_examples=300)
def test_any_error_object_gets_one_of_the_three_meanings(
    error: dict[str, str], message: str
) -> None:
    assert meaning_of_400(error, message) in {"context_length", "content_filter", "bad_request"}


CATALOG = Catalog(load_config(None), environ={})


@given(st.sampled_from(CATALOG.deployments), st.sampled_from(CATALOG.deployments))
@settings(max_examples=200)
def test_a_context_length_error_moves_only_to_a_larger_window(a: object, b: object) -> None:
    from gateway.routing.catalog import Deployment

    assert isinstance(a, Deployment) and isinstance(b, Deployment)
    bigger = b.offer.context_window > a.offer.context_window
    assert larger_context(a, b) == (bigger and b.model.id != a.model.id)
    assert not larger_context(a, a)


@given(
    st.floats(0.5, 60, allow_nan=False), st.floats(0.5, 120, allow_nan=False), st.integers(0, 100)
)
def test_the_back_off_doubles_per_failed_probe_up_to_its_cap(
    cooldown: float, cap: float, reopenings: int
) -> None:
    health = HealthTracker(CATALOG, HealthSettings(cooldown_s=cooldown, max_cooldown_s=cap))
    seconds = health.cooldown(reopenings)
    assert seconds == min(max(cap, cooldown), cooldown * 2.0**reopenings)
    assert health.cooldown(0) == cooldown
    assert health.cooldown(reopenings + 1) >= seconds
