"""Retry in place (``defaults.failover``): when a failed attempt is retried on the same
deployment instead of moving to the next candidate.

Moving on is the default; staying is cheaper in two cases, and these tests pin both down
against real upstream servers, by the requests each upstream received and when:

- a 429 whose ``Retry-After: N`` is at most ``retry_after_max_s`` (2 s) and whose wait fits in
  the provider's ``timeout_s.total``: the same deployment again after N seconds (gap >= N,
  < N + 1). A longer ``Retry-After``, none, or one that would not fit: the next candidate at
  once.
- a 500/502/503 or a reset connection on a request's *first* attempt: one quick retry after
  50–250 ms. Not for a 504, a timeout or a refused connection, not for a later attempt, and
  not with ``quick_retry: false``.

Never more than two attempts at one deployment within 1.5 s. ``fallback_chain`` marks the
in-place attempt ``retry: true``; ``X-Fallback-Depth`` / ``-Attempted-Providers`` count only
deployments left behind. A request is one usage record however many attempts it made.

Each scenario has its own gateway (the ``support.faults`` pair: ``upstream-a`` cheap and
ranked first, ``upstream-b`` the fallback) whose breakers never open on failures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from support.checks import assert_error
from support.failover_rig import (
    A_TOKENS,
    GatewayFactory,
    Rig,
    assert_left_behind,
    assert_quick_gap,
    links,
    make_rig,
    reasons,
    reply_a,
    reply_b,
    served,
    streamed,
)
from support.faults import A_TEXT, B_TEXT, MODEL, NO_BREAKER, PRIMARY, SECONDARY, wait_usage
from support.upstream import Behaviour, Close, Hang, Status, UpstreamServer, closed_port

A, B = PRIMARY, SECONDARY
LONG_TOTAL = {"first_byte": 1.0, "total": 4.0, "stall": 1.0}  # room for a 2 s Retry-After
RigFactory = Callable[..., Rig]


def rate_limited(retry_after: str | None) -> Status:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Status(429, message="Rate limit reached for requests", headers=headers)


FAULTS: dict[str, Behaviour] = {
    "500": Status(500, message="The server had an error processing your request."),
    "502": Status(502, message="Bad gateway"),
    "503": Status(503, message="The engine is currently overloaded"),
    "reset": Close(),
}


@pytest.fixture
def env(provider_key_a: str, provider_key_b: str) -> dict[str, str]:
    return {"UPSTREAM_A_KEY": provider_key_a, "UPSTREAM_B_KEY": provider_key_b}


@pytest.fixture
def rig(
    make_gateway: GatewayFactory,
    upstream_a: UpstreamServer,
    upstream_b: UpstreamServer,
    env: dict[str, str],
) -> RigFactory:
    upstream_a.set_default(reply_a())
    upstream_b.set_default(reply_b())

    def make(**options: Any) -> Rig:
        return make_rig(make_gateway, upstream_a, upstream_b, env, health=NO_BREAKER, **options)

    return make


def ask(rig: Rig, stream: bool) -> tuple[httpx.Headers, list[Any], float]:
    """One chat request: its headers, ``fallback_chain`` (or []) and seconds to headers. The
    answer must be a whole one from whichever provider ``X-Provider-Used`` names."""
    if stream:
        result = rig.stream()
        final = streamed(result, result.headers.get("x-provider-used") or "")
        return (
            result.headers,
            final["routing_metadata"].get("fallback_chain", []),
            result.headers_after_s,
        )
    resp, elapsed = rig.chat()
    body = served(resp, resp.headers.get("x-provider-used") or "")
    return resp.headers, body["routing_metadata"].get("fallback_chain", []), elapsed


def assert_one_record(rig: Rig, provider: str) -> None:
    body = wait_usage(rig.gw, rig.key, 1, timeout=5.0)
    assert {p: b["requests"] for p, b in body["by_provider"].items()} == {provider: 1}, body


# --- 429 with Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("seconds", [1, 2])
def test_short_retry_after_is_waited_out_on_the_same_deployment(
    rig: RigFactory, seconds: int, stream: bool
):
    r = rig(timeouts=LONG_TOTAL)
    r.primary.enqueue(rate_limited(str(seconds)))
    headers, chain, elapsed = ask(r, stream)
    assert r.counts() == (2, 0), f"not retried in place (after {elapsed:.2f} s): {chain}"
    assert headers["x-provider-used"] == A
    (gap,) = r.primary_gaps()
    assert seconds <= gap < seconds + 1, f"retried after {gap:.2f} s, Retry-After was {seconds}"
    assert elapsed >= seconds
    assert links(chain) == [(A, "failed", False), (A, "success", True)]
    assert "rate" in (reasons(chain)[0] or ""), chain
    assert_left_behind(headers, [])
    assert_one_record(r, A)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("retry_after", "options"),
    [
        ("3", {"timeouts": LONG_TOTAL}),  # longer than retry_after_max_s (2 s)
        (None, {"timeouts": LONG_TOTAL}),  # no Retry-After at all
        ("2", {"timeouts": {"first_byte": 1.0, "total": 1.5, "stall": 1.0}}),  # would not fit
        ("1", {"failover": {"retry_after_max_s": 0.5}}),  # the setting is honoured
    ],
    ids=["too-long", "missing", "past-total", "max-0.5"],
)
def test_other_429s_move_on_at_once(
    rig: RigFactory, retry_after: str | None, options: dict[str, Any], stream: bool
):
    r = rig(**options)
    r.primary.enqueue(rate_limited(retry_after))
    headers, chain, elapsed = ask(r, stream)
    assert headers["x-provider-used"] == B
    assert r.counts() == (1, 1)
    assert elapsed < 0.9, f"the secondary answered after {elapsed:.2f} s: something waited"
    assert links(chain) == [(A, "failed", False), (B, "success", False)]
    assert_left_behind(headers, [A])
    assert_one_record(r, B)


# --- one quick retry for a one-off fault ----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_one_off_fault_is_retried_quickly_in_place(rig: RigFactory, fault: str, stream: bool):
    r = rig()
    r.primary.enqueue(FAULTS[fault])
    headers, chain, _ = ask(r, stream)
    assert headers["x-provider-used"] == A
    assert r.counts() == (2, 0), "a one-off fault was not retried on the primary"
    assert_quick_gap(r.primary_gaps()[0])
    assert links(chain) == [(A, "failed", False), (A, "success", True)]
    assert_left_behind(headers, [])
    body = wait_usage(r.gw, r.key, 1, timeout=5.0)
    assert body["by_provider"] == {A: {"requests": 1, "spend_usd": body["spend_usd"]}}, body
    assert (body["tokens"]["input"], body["tokens"]["output"]) == A_TOKENS, body


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("first", "second"), [("500", "500"), ("reset", "503"), ("502", "reset")])
def test_a_fault_that_repeats_moves_on_after_one_retry(
    rig: RigFactory, first: str, second: str, stream: bool
):
    r = rig()
    r.primary.enqueue(FAULTS[first], FAULTS[second])
    headers, chain, _ = ask(r, stream)
    assert headers["x-provider-used"] == B
    assert r.counts() == (2, 1)
    assert_quick_gap(r.primary_gaps()[0])
    assert links(chain) == [(A, "failed", False), (A, "failed", True), (B, "success", False)]
    assert_left_behind(headers, [A])
    assert_one_record(r, B)


NOT_QUICK = [
    ("504", False),
    ("504", True),
    ("timeout", True),
    ("refused", False),
    ("refused", True),
]


@pytest.mark.parametrize(("fault", "stream"), NOT_QUICK, ids=[f"{f}-{s}" for f, s in NOT_QUICK])
def test_no_quick_retry_for_504_timeout_or_refused(rig: RigFactory, fault: str, stream: bool):
    # refused: nothing listens where the gateway looks for the primary
    r = rig(primary_url=f"http://127.0.0.1:{closed_port()}/v1") if fault == "refused" else rig()
    if fault == "timeout":  # headers never come: past the 1 s first-byte timeout
        r.primary.enqueue(Hang(2.5))
    elif fault == "504":
        r.primary.enqueue(Status(504, message="Gateway Timeout"))
    headers, chain, _ = ask(r, stream)
    assert headers["x-provider-used"] == B
    assert links(chain) == [(A, "failed", False), (B, "success", False)]
    assert r.counts() == (0 if fault == "refused" else 1, 1)
    assert_left_behind(headers, [A])
    assert_one_record(r, B)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_quick_retry_false_moves_on_at_once(rig: RigFactory, stream: bool):
    r = rig(failover={"quick_retry": False})
    r.primary.enqueue(FAULTS["500"])
    headers, chain, _ = ask(r, stream)
    assert headers["x-provider-used"] == B
    assert r.counts() == (1, 1)
    assert links(chain) == [(A, "failed", False), (B, "success", False)]
    assert_left_behind(headers, [A])


def test_the_quick_retry_pause_follows_the_settings(rig: RigFactory):
    r = rig(failover={"quick_retry_min_s": 0.6, "quick_retry_max_s": 0.7})
    r.primary.enqueue(FAULTS["503"])
    served(r.chat()[0], A)
    (gap,) = r.primary_gaps()
    assert 0.6 <= gap <= 1.0, f"quick retry after {gap:.3f} s, configured 0.6–0.7 s"


def test_only_a_requests_first_attempt_gets_a_quick_retry(rig: RigFactory):
    r = rig()
    r.primary.enqueue(rate_limited(None))  # first attempt: moves on (no Retry-After)
    r.secondary.enqueue(FAULTS["500"])  # second attempt: a 500, not retried
    resp, _ = r.chat()
    assert_error(resp, 502, "provider_error")
    assert r.counts() == (1, 1), "the secondary's 500 (not the first attempt) was retried"
    # Both down for good: two attempts at the primary, one at the secondary, then 502. (First
    # the primary serves once, past its 1 s cooling after the 429: its circuit is closed.)
    time.sleep(1.1)
    served(r.chat()[0], A)
    r.primary.set_default(FAULTS["503"])
    r.secondary.set_default(FAULTS["503"])
    resp, _ = r.chat()
    assert_error(resp, 502, "provider_error")
    assert r.counts() == (4, 2)


# --- never hammered -------------------------------------------------------------------------------


SEQUENCES: dict[str, tuple[Behaviour, ...]] = {
    "500-then-429-short": (FAULTS["500"], rate_limited("1")),
    "429-0-twice": (rate_limited("0"), rate_limited("0")),
    "429-short-then-500": (rate_limited("1"), FAULTS["500"]),
    "reset-then-429-0": (Close(), rate_limited("0")),
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_never_more_than_two_attempts_at_one_deployment(rig: RigFactory, name: str):
    r = rig()
    r.primary.enqueue(*SEQUENCES[name])
    r.primary.set_default(FAULTS["500"])
    resp, _ = r.chat()
    served(resp, B)
    assert r.counts() == (2, 1), f"{name}: the primary was attempted {r.counts()[0]} times"
    chain = resp.json()["routing_metadata"]["fallback_chain"]
    assert links(chain) == [(A, "failed", False), (A, "failed", True), (B, "success", False)]
    assert_left_behind(resp.headers, [A])


# --- /v1/messages (Anthropic SDK) ---------------------------------------------------------------


@pytest.mark.parametrize("failures", [1, 2], ids=["once", "twice"])
def test_messages_stream_retries_a_one_off_500_in_place(rig: RigFactory, failures: int):
    r = rig()
    r.primary.enqueue(*[FAULTS["500"]] * failures)
    with (
        r.anthropic() as client,
        client.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        headers = stream.response.headers
    expected = A if failures == 1 else B
    assert text == (A_TEXT if expected == A else B_TEXT)
    assert final.stop_reason == "end_turn"
    assert headers["x-provider-used"] == expected
    assert r.counts() == (2, 0 if failures == 1 else 1)
    assert_quick_gap(r.primary_gaps()[0])
    assert_left_behind(headers, [] if failures == 1 else [A])
    assert_one_record(r, expected)
