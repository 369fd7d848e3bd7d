"""Fault injection against real upstream servers (issue 5, "Must show" 2 and 3).

Every scenario runs on its own gateway process (so no breaker or health state leaks between
scenarios) with two OpenAI-format providers offering ``gpt-4o``: ``upstream-a`` (the
primary, ten times cheaper, so ranked first) and ``upstream-b`` (the secondary). Provider
timeouts are ``first_byte`` 1 s, ``total`` 2 s, ``stall`` 1 s; health is
``{cooldown_s: 1, failure_threshold: 3, learn_latency: false}``.

Each scenario asserts what the caller saw (status, body, headers or SSE events), how many
requests each upstream received (and when, where timing is the point), and the usage records
written (``GET /v1/usage?period=day``: totals count failures too; ``by_provider`` counts the
requests a provider served). Each ends with ``assert_still_serves``: a plain and a streamed
request are served, the worker has no half-closed socket left and its logs no traceback.

Memory and connections (``test_burst_*``, "Must show" 3): one more gateway, whose breakers
never open on failures so that every request of a burst meets the fault, takes for each fault
a warm-up of 10 faulty requests, a baseline look at its worker process (the child of the
granian process started: ``VmRSS`` from ``/proc/<pid>/status``, descriptors from
``/proc/<pid>/fd``, TCP sockets by matching those descriptors' inodes in
``/proc/<pid>/net/tcp*``), a burst of 50 (20 for the faults that cost a timeout each), and a
second look once sockets settle. Tolerances, calibrated on this machine (seen: at most
~550 KiB of RSS growth and one extra pooled connection per burst):

- RSS may grow by at most ``RSS_TOLERANCE_KIB`` (3 MiB). CPython and its allocators keep
  freed memory, so "back to baseline" means "no growth proportional to the burst": anything
  that leaks more than ~60 KiB per faulty request (a body, a buffer, a task with its frames)
  shows above it.
- Open descriptors and TCP connections may exceed the baseline by at most
  ``CONN_TOLERANCE`` (2): the keep-alive pools to the upstreams are sized by concurrency,
  not by request count, and may differ by a connection from one burst to the next, while a
  leak of one socket per faulty request would add 20 to 50. No socket may be left
  half-closed (``CLOSE_WAIT``) and no client connection open; the worker keeps its pid (no
  crash and respawn) and still serves a healthy request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai
import pytest

from support.checks import assert_error, assert_error_shape, chat_body
from support.failover_rig import Rig as PairRig
from support.faults import (
    A_TEXT,
    B_TEXT,
    DONE,
    HEALTH,
    MODEL,
    NO_BREAKER,
    PRIMARY,
    PRIMARY_PRICE,
    SECONDARY,
    SECONDARY_PRICE,
    Footprint,
    StreamResult,
    answer_events,
    chunk,
    cost,
    deepen_backlog,
    pair_config,
    post_stream,
    run_parallel,
    settled_footprint,
    usage_chunk,
    wait_usage,
    worker_pid,
)
from support.gateway import GatewayProcess
from support.upstream import (
    Behaviour,
    Close,
    CutStream,
    Delay,
    Hang,
    Pause,
    Reply,
    ScriptedStream,
    Status,
    UpstreamServer,
)

A_TOKENS = (12, 9)  # (prompt, completion) the primary reports
B_TOKENS = (20, 5)  # … and the secondary
RSS_TOLERANCE_KIB = 3072
CONN_TOLERANCE = 2

CONTEXT_MESSAGE = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted "
    "in 130512 tokens. Please reduce the length of the messages."
)
INVALID_MESSAGE = "Invalid value for 'temperature': must be at most 2."


def upstream_400(code: str, message: str) -> Status:
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "messages",
            "code": code,
        }
    }
    return Status(400, body=body)


# --- upstreams and gateways -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def primary() -> Iterator[UpstreamServer]:
    with UpstreamServer("fault-primary") as up:
        deepen_backlog(up)
        yield up


@pytest.fixture(scope="module")
def secondary() -> Iterator[UpstreamServer]:
    with UpstreamServer("fault-secondary") as up:
        deepen_backlog(up)
        yield up


def _defaults(primary: UpstreamServer, secondary: UpstreamServer) -> None:
    for up in (primary, secondary):
        up.reset()
    primary.set_default(
        Reply(text=A_TEXT, prompt_tokens=A_TOKENS[0], completion_tokens=A_TOKENS[1])
    )
    secondary.set_default(
        Reply(text=B_TEXT, prompt_tokens=B_TOKENS[0], completion_tokens=B_TOKENS[1])
    )


@pytest.fixture(autouse=True)
def _fresh_pair(primary: UpstreamServer, secondary: UpstreamServer) -> None:
    _defaults(primary, secondary)


@pytest.fixture(scope="module")
def provider_env(provider_key_a: str, provider_key_b: str) -> dict[str, str]:
    return {"UPSTREAM_A_KEY": provider_key_a, "UPSTREAM_B_KEY": provider_key_b}


@dataclass
class Rig(PairRig):
    """One scenario's gateway, its live key and the two upstreams, and the after-fault check."""

    def assert_still_serves(self) -> None:
        """After the fault: healthy upstreams are served, plain and streamed; no socket of
        the worker is left half-closed or open towards a client; no traceback logged."""
        _defaults(self.primary, self.secondary)
        resp, _ = self.chat()
        assert resp.status_code == 200, f"no healthy answer after the fault: {resp.text}"
        assert resp.json()["choices"][0]["message"]["content"] in {A_TEXT, B_TEXT}
        streamed = self.stream()
        assert streamed.status == 200 and streamed.done, streamed.raw[-500:]
        assert streamed.text in {A_TEXT, B_TEXT}
        pid, port = worker_pid(self.gw), self.gw.port
        fp = settled_footprint(pid, lambda f: _quiet(f, port))
        assert _quiet(fp, port), f"worker sockets not settled: {fp.describe()} {fp.tcp}"
        assert "Traceback" not in self.gw.log_text(), self.gw.log_tail(60)


def _quiet(fp: Footprint, gateway_port: int) -> bool:
    """No half-closed socket and no connection from a client still open."""
    inbound = [s for s in fp.connections() if s.local_port == gateway_port]
    return not fp.not_established() and not inbound


@pytest.fixture
def rig(
    make_gateway: Callable[..., GatewayProcess],
    primary: UpstreamServer,
    secondary: UpstreamServer,
    provider_env: dict[str, str],
) -> Rig:
    gw = make_gateway(
        pair_config(primary.base_url, secondary.base_url, health=HEALTH),
        provider_env,
        name="gw-faults",
    )
    key = gw.create_key("fault-injection")["key"]
    return Rig(gw, key, primary, secondary)


# --- what the caller saw --------------------------------------------------------------------------


def assert_served(
    resp: httpx.Response,
    provider: str,
    *,
    failed: tuple[tuple[str, str], ...] = (),
    viable: int | None = None,
) -> dict[str, Any]:
    """200 served by ``provider`` after the ``failed`` attempts ((provider, reason word))."""
    assert resp.status_code == 200, f"expected 200 from {provider}: {resp.status_code} {resp.text}"
    body = resp.json()
    text = A_TEXT if provider == PRIMARY else B_TEXT
    assert body["choices"][0]["message"]["content"] == text, body
    assert body["model"] == MODEL
    h = resp.headers
    meta = body["routing_metadata"]
    assert h.get("x-provider-used") == provider and meta["provider"] == provider, (h, meta)
    assert h.get("x-fallback-used") == ("true" if failed else "false"), dict(h)
    assert h.get("x-fallback-depth") == str(len(failed)), dict(h)
    if failed:
        attempted = (h.get("x-fallback-attempted-providers") or "").split(",")
        assert attempted == [p for p, _ in failed], f"X-Fallback-Attempted-Providers: {attempted}"
        chain = meta.get("fallback_chain")
        assert isinstance(chain, list) and len(chain) == len(failed) + 1, meta
        for link, (name, reason) in zip(chain, failed, strict=False):
            assert link["provider"] == name and link["status"] == "failed", chain
            assert link["model"] == MODEL, chain
            assert reason in (link.get("reason") or ""), f"reason {reason!r} not in {chain}"
        last = chain[-1]
        assert (last["provider"], last["model"], last["status"]) == (provider, MODEL, "success")
    else:
        assert "fallback_chain" not in meta, meta
        assert "x-fallback-attempted-providers" not in h
    if viable is not None:
        assert meta["candidates_viable"] == viable, meta
    return body


def expected_spend(a_served: int, b_served: int) -> float:
    return a_served * cost(PRIMARY_PRICE, *A_TOKENS) + b_served * cost(SECONDARY_PRICE, *B_TOKENS)


def assert_usage(
    rig: Rig, *, requests: int, a_served: int, b_served: int, exact_tokens: bool = True
) -> dict[str, Any]:
    """``requests`` records (failures included); spend and tokens only of served attempts."""
    body = wait_usage(rig.gw, rig.key, requests)
    by_provider = {name: b["requests"] for name, b in body["by_provider"].items()}
    expected = {name: n for name, n in ((PRIMARY, a_served), (SECONDARY, b_served)) if n}
    assert by_provider == expected, body
    if exact_tokens:
        assert body["tokens"]["input"] == a_served * A_TOKENS[0] + b_served * B_TOKENS[0], body
        assert body["tokens"]["output"] == a_served * A_TOKENS[1] + b_served * B_TOKENS[1], body
        assert body["spend_usd"] == pytest.approx(expected_spend(a_served, b_served)), body
    return body


def stream_error(result: StreamResult) -> dict[str, Any]:
    """The single SSE ``error`` event of a failed stream (and no ``[DONE]``, no usage chunk)."""
    assert result.status == 200, result.raw[:500]
    assert not result.done, f"[DONE] after a failed stream: {result.raw[-500:]}"
    assert len(result.errors) == 1, f"expected one SSE error event: {result.raw[-800:]}"
    assert result.events[-1][0] == "error", "the error event must end the stream"
    err = assert_error_shape(result.errors[0])
    assert err["type"] == "provider_error", err
    assert not any(c.get("choices") == [] for c in result.chunks), "usage chunk after a failure"
    return err


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


# --- 429 ------------------------------------------------------------------------------------------


def _ask_until_primary_called(rig: Rig, calls: int, limit_s: float) -> list[httpx.Response]:
    """One request every ~100 ms until the primary has had ``calls`` requests."""
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + limit_s
    while rig.counts()[0] < calls and time.monotonic() < deadline:
        answers.append(rig.chat()[0])
        time.sleep(0.1)
    return answers


@pytest.mark.parametrize(
    ("retry_after", "cooling_s"),
    [("2", 2.0), (None, 1.0)],
    ids=["with-retry-after", "without-retry-after"],
)
def test_429_cools_the_primary(rig: Rig, retry_after: str | None, cooling_s: float):
    headers = (("Retry-After", retry_after),) if retry_after else ()
    rig.primary.enqueue(Status(429, message="Rate limit reached for requests", headers=headers))
    with rig.sdk() as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-provider-used"] == SECONDARY
    assert raw.headers["x-fallback-used"] == "true"
    completion = raw.parse()
    assert completion.choices[0].message.content == B_TEXT
    chain = completion.model_extra["routing_metadata"]["fallback_chain"]
    assert [(c["provider"], c["status"]) for c in chain] == [
        (PRIMARY, "failed"),
        (SECONDARY, "success"),
    ]
    assert "rate" in chain[0]["reason"], chain

    # Keep asking: the primary is not called again until the cooling has passed.
    answers = _ask_until_primary_called(rig, 2, cooling_s + 1.5)
    first, probe = (r.received_at for r in rig.primary.chat_requests()[:2])
    gap = probe - first
    assert cooling_s <= gap <= cooling_s + 0.5, f"primary called again after {gap:.2f} s"
    *cooling, returned = answers
    assert len(cooling) >= int(cooling_s / 0.2), f"only {len(cooling)} requests while cooling"
    for resp in cooling:  # skipped, not attempted: no fallback, primary not viable
        assert_served(resp, SECONDARY, viable=1)
    assert_served(returned, PRIMARY)
    assert_served(rig.chat()[0], PRIMARY)
    assert rig.counts() == (3, 1 + len(cooling))
    assert_usage(rig, requests=len(answers) + 2, a_served=2, b_served=1 + len(cooling))
    rig.assert_still_serves()


def test_429_everywhere_is_429_then_no_hammering(rig: Rig):
    rig.primary.enqueue(Status(429, message="slow down", headers=(("Retry-After", "1"),)))
    rig.secondary.enqueue(Status(429, message="slow down too", headers=(("Retry-After", "1"),)))
    resp, _ = rig.chat()
    assert_error(resp, 429, "rate_limit_exceeded")
    retry_after = resp.headers.get("retry-after") or ""
    assert retry_after.isdigit() and int(retry_after) >= 1, f"Retry-After {retry_after!r}"
    assert rig.counts() == (1, 1)
    cooled_at = time.monotonic()
    # Both providers said wait: the next request reaches neither.
    again, elapsed = rig.chat()
    assert elapsed < 0.5
    assert_error(again, 503, "no_providers_available")
    assert rig.counts() == (1, 1), "a provider that said wait was called"
    wait_until(cooled_at + 1.05)
    assert_served(rig.chat()[0], PRIMARY)
    assert_usage(rig, requests=3, a_served=1, b_served=0)
    rig.assert_still_serves()


# --- 5xx ------------------------------------------------------------------------------------------


def test_500_once_is_served_by_the_secondary(rig: Rig):
    rig.primary.enqueue(Status(500, message="The server had an error processing your request."))
    with rig.sdk() as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-provider-used"] == SECONDARY
    assert raw.headers["x-fallback-used"] == "true"
    assert raw.headers["x-fallback-depth"] == "1"
    assert raw.headers["x-fallback-attempted-providers"] == PRIMARY
    completion = raw.parse()
    assert completion.choices[0].message.content == B_TEXT
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == B_TOKENS
    meta = completion.model_extra["routing_metadata"]
    assert meta["provider"] == SECONDARY and meta["cost"]["output_tokens"] == B_TOKENS[1]
    assert [(c["provider"], c["status"]) for c in meta["fallback_chain"]] == [
        (PRIMARY, "failed"),
        (SECONDARY, "success"),
    ]
    assert rig.counts() == (1, 1)
    # One failure is below the threshold: the next request goes to the primary again.
    assert_served(rig.chat()[0], PRIMARY)
    assert rig.counts() == (2, 1)
    assert_usage(rig, requests=2, a_served=1, b_served=1)
    rig.assert_still_serves()


def test_persistent_503_opens_the_circuit(rig: Rig):
    rig.primary.set_default(Status(503, message="The engine is currently overloaded"))
    t0 = time.monotonic()
    answers = [rig.chat()[0] for _ in range(6)]
    assert time.monotonic() - t0 < 0.9, "too slow to stay inside the 1 s cool-down"
    for resp in answers[:3]:
        assert_served(resp, SECONDARY, failed=((PRIMARY, "server"),))
    for resp in answers[3:]:  # circuit open: the primary is no longer a candidate
        assert_served(resp, SECONDARY, viable=1)
    assert rig.counts() == (3, 6), "the primary kept receiving traffic after 3 failures"

    # After the cool-down exactly one probe; it fails, so the circuit opens again.
    third = rig.primary.chat_requests()[2].received_at
    wait_until(third + 1.1)
    assert_served(rig.chat()[0], SECONDARY, failed=((PRIMARY, "server"),))
    assert_served(rig.chat()[0], SECONDARY, viable=1)
    assert_served(rig.chat()[0], SECONDARY, viable=1)
    stamps = [r.received_at for r in rig.primary.chat_requests()]
    assert len(stamps) == 4, f"expected one probe, the primary got {len(stamps) - 3}"
    assert stamps[3] - stamps[2] >= 1.0, "probe sent before the cool-down ended"
    assert_usage(rig, requests=9, a_served=0, b_served=9)
    rig.assert_still_serves()


# --- transport faults -----------------------------------------------------------------------------


def test_connection_reset_before_headers(rig: Rig):
    rig.primary.enqueue(Close(), Close())
    resp, elapsed = rig.chat()
    assert_served(resp, SECONDARY, failed=((PRIMARY, "connect"),))
    assert elapsed < 1.0, f"fallback after a reset took {elapsed:.2f} s"
    streamed = rig.stream()
    assert streamed.status == 200 and streamed.done, streamed.raw[-500:]
    assert streamed.headers["x-provider-used"] == SECONDARY
    assert streamed.headers["x-fallback-used"] == "true"
    assert streamed.text == B_TEXT
    chain = streamed.final["routing_metadata"]["fallback_chain"]
    assert [c["provider"] for c in chain] == [PRIMARY, SECONDARY]
    assert streamed.elapsed_s < 1.0
    assert rig.counts() == (2, 2), "a reset attempt was retried on the same provider"
    assert_usage(rig, requests=2, a_served=0, b_served=2)
    rig.assert_still_serves()


def test_no_response_times_out_and_falls_back(rig: Rig):
    rig.primary.enqueue(Hang(3.5), Hang(3.5))
    resp, elapsed = rig.chat()
    assert_served(resp, SECONDARY, failed=((PRIMARY, "timeout"),))
    # non-streaming: the whole answer within timeout_s.total (2 s)
    assert 1.9 <= elapsed <= 3.0, f"non-streaming fallback after {elapsed:.2f} s, total is 2 s"
    streamed = rig.stream()
    assert streamed.status == 200 and streamed.done
    assert streamed.headers["x-provider-used"] == SECONDARY
    assert streamed.text == B_TEXT
    # streaming: the first byte within timeout_s.first_byte (1 s)
    assert 0.9 <= streamed.headers_after_s <= 1.8, (
        f"stream fallback after {streamed.headers_after_s:.2f} s, first_byte is 1 s"
    )
    assert rig.counts() == (2, 2)
    assert_usage(rig, requests=2, a_served=0, b_served=2)
    rig.assert_still_serves()


def test_slow_first_token_falls_back_before_any_byte(rig: Rig):
    # Headers at once, then the first token after 2.5 s: past the 1 s first-byte timeout.
    slow = ScriptedStream((Pause(2.5), *answer_events(["too ", "late"], usage=A_TOKENS)))
    rig.primary.enqueue(slow)
    streamed = rig.stream()
    assert streamed.status == 200 and streamed.done, streamed.raw[-500:]
    assert streamed.headers["x-provider-used"] == SECONDARY
    assert streamed.headers["x-fallback-used"] == "true"
    assert streamed.text == B_TEXT, "bytes of the slow primary reached the client"
    assert 0.9 <= streamed.headers_after_s <= 1.8, f"fell back after {streamed.headers_after_s}"
    final = streamed.final
    chain = final["routing_metadata"]["fallback_chain"]
    assert [(c["provider"], c["status"]) for c in chain] == [
        (PRIMARY, "failed"),
        (SECONDARY, "success"),
    ]
    assert "timeout" in chain[0]["reason"], chain
    assert (final["usage"]["prompt_tokens"], final["usage"]["completion_tokens"]) == B_TOKENS
    assert rig.counts() == (1, 1)
    assert_usage(rig, requests=1, a_served=0, b_served=1)
    rig.assert_still_serves()


# --- streams that go wrong after the first byte ---------------------------------------------------


def test_stream_cut_mid_answer(rig: Rig):
    # role chunk + 3 content pieces, then the primary drops the connection
    cut = CutStream(after_chunks=4, reply=Reply(text="one two three four five"))
    rig.primary.enqueue(cut, cut)
    streamed = rig.stream()
    assert streamed.headers["x-provider-used"] == PRIMARY
    err = stream_error(streamed)
    assert err["code"] == "provider_error", err
    assert streamed.text == "one two three ", streamed.text
    with rig.sdk() as client:
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass
    assert rig.counts() == (2, 0), "a stream cut after its first byte was retried"
    body = assert_usage(rig, requests=2, a_served=2, b_served=0, exact_tokens=False)
    assert body["tokens"]["output"] > 0 and body["spend_usd"] > 0, "partial usage not metered"
    rig.assert_still_serves()


def test_stream_stall_times_out_with_an_error_event(rig: Rig):
    steps = answer_events(["Hello ", "wor"], finish_reason=None, done=False)
    rig.primary.enqueue(ScriptedStream(tuple(steps), end="hang", hang_s=4.0))
    streamed = rig.stream()
    assert streamed.headers["x-provider-used"] == PRIMARY
    err = stream_error(streamed)
    assert err["code"] == "provider_timeout", err
    assert streamed.text == "Hello wor"
    assert 1.0 <= streamed.elapsed_s <= 2.0, f"stall noticed after {streamed.elapsed_s:.2f} s"
    assert rig.counts() == (1, 0), "a stalled stream was retried"
    body = assert_usage(rig, requests=1, a_served=1, b_served=0, exact_tokens=False)
    assert body["tokens"]["output"] > 0, "partial usage not metered"
    rig.assert_still_serves()


# Not SSE data a chunk can be read from: never relayed, the stream goes on.
GARBAGE = (
    b"data: {not json\n\n",
    b"data: [1, 2, 3]\n\n",
    b"data: \xff\xfe\x00\x01\n\n",
    b"this line has no field name\n\n",
)
# JSON objects that break the chunk schema: relaying them crashes the caller's SDK.
MISSHAPEN = (
    b'data: {"id": "x", "object": "chat.completion.chunk", "choices": "nope"}\n\n',
    b'data: {"id": "x", "object": "chat.completion.chunk", '
    b'"choices": [{"index": 0, "delta": null, "finish_reason": null}]}\n\n',
    b'data: {"id": "x", "object": "chat.completion.chunk", '
    b'"choices": [{"index": 0, "delta": {"content": 5}, "finish_reason": null}]}\n\n',
)


def _with_junk(junk: tuple[bytes, ...]) -> ScriptedStream:
    """Content reaches the client first (the pause ends that read), then the junk."""
    return ScriptedStream(
        (
            chunk("", role="assistant"),
            chunk("Hello "),
            Pause(0.3),
            *junk,
            chunk("world"),
            chunk(finish_reason="stop"),
            usage_chunk(11, 3),
            DONE,
        )
    )


def _junk_first(bad: bytes) -> ScriptedStream:
    return ScriptedStream(
        (chunk("", role="assistant"), bad, chunk("Hello"), chunk(finish_reason="stop"), DONE)
    )


def _sdk_text(rig: Rig) -> str:
    with rig.sdk() as client:
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def _chain(streamed: StreamResult) -> list[tuple[str, str]]:
    chain = streamed.final["routing_metadata"]["fallback_chain"]
    return [(a["provider"], a["status"]) for a in chain]


def test_a_malformed_chunk_before_the_first_token_fails_over(rig: Rig):
    """Nothing reached the client yet: the attempt failed, the secondary serves it all."""
    # (GARBAGE's last line is not an event at all: an SSE field nobody reads, so ignored.)
    for bad in (*GARBAGE[:-1], *MISSHAPEN):
        rig.primary.enqueue(_junk_first(bad))
        streamed = rig.stream()
        assert streamed.status == 200 and streamed.errors == [], streamed.raw[-800:]
        assert streamed.done and streamed.text == B_TEXT, bad
        assert _chain(streamed) == [(PRIMARY, "failed"), (SECONDARY, "success")]
        time.sleep(1.1)  # past the primary's 1 s cool-down, should its breaker have opened
    # A 200 whose body is not JSON is a server error: failed over, never a 500.
    rig.primary.enqueue(Status(200, body="<html>upstream proxy error</html>"))
    resp, _ = rig.chat()
    assert_served(resp, SECONDARY, failed=((PRIMARY, "server"),))
    rig.assert_still_serves()


def test_a_malformed_chunk_after_content_is_never_a_hole(rig: Rig):
    """Content reached the client, and no candidate here accepts a prefill: the stream ends
    with the error event (never ``[DONE]`` with the text after the hole), and is metered."""
    for junk in (GARBAGE, MISSHAPEN):
        rig.primary.enqueue(_with_junk(junk))
        streamed = rig.stream()
        assert streamed.status == 200 and not streamed.done, streamed.raw[-800:]
        assert streamed.text == "Hello "
        (error,) = streamed.errors
        message = error["error"]["message"]
        assert "not a valid chat.completion.chunk" in message, message
        assert "could not be continued" in message, message
        relayed = [
            c
            for c in streamed.chunks
            if not isinstance(c.get("choices"), list)
            or any(
                not isinstance(ch.get("delta"), dict)
                or not isinstance(ch["delta"].get("content", ""), str | None)
                for ch in c["choices"]
            )
        ]
        assert relayed == [], f"misshapen upstream chunks relayed to the client: {relayed}"
    rig.primary.enqueue(_with_junk(MISSHAPEN))
    with pytest.raises(openai.APIError):  # the SDK raises on the error event, never crashes
        _sdk_text(rig)
    body = wait_usage(rig.gw, rig.key, 3)
    assert body["by_provider"][PRIMARY]["requests"] == 3
    rig.assert_still_serves()


def test_stream_without_done_after_finish_is_finalised(rig: Rig):
    with_usage = answer_events(["Hello ", "world"], usage=(11, 3), done=False)
    without_usage = answer_events(["Hello ", "world"], usage=None, done=False)
    rig.primary.enqueue(ScriptedStream(tuple(with_usage)), ScriptedStream(tuple(without_usage)))
    first = rig.stream()
    second = rig.stream()
    for streamed in (first, second):
        assert streamed.status == 200 and streamed.errors == [], streamed.raw[-800:]
        assert streamed.events[-1] == (None, "[DONE]"), streamed.raw[-300:]
        assert streamed.text == "Hello world"
        assert streamed.final["choices"] == []
        # promptly: on the upstream's end of body, not after the 1 s stall timeout
        assert streamed.elapsed_s < 0.6, f"finalised after {streamed.elapsed_s:.2f} s"
    usage = first.final["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (11, 3)
    assert "usage_estimated" not in first.final["routing_metadata"]
    estimated = second.final
    assert estimated["routing_metadata"].get("usage_estimated") is True, estimated
    assert estimated["usage"]["completion_tokens"] > 0
    assert rig.counts() == (2, 0)
    body = wait_usage(rig.gw, rig.key, 2)
    assert body["by_provider"] == {
        PRIMARY: {"requests": 2, "spend_usd": pytest.approx(body["spend_usd"])}
    }
    assert body["tokens"]["output"] == 3 + estimated["usage"]["completion_tokens"]
    rig.assert_still_serves()


def test_stream_without_finish_or_done_is_an_error(rig: Rig):
    steps = tuple(answer_events(["Hello ", "wor"], finish_reason=None, done=False))
    rig.primary.enqueue(ScriptedStream(steps), ScriptedStream(steps))
    streamed = rig.stream()
    assert streamed.headers["x-provider-used"] == PRIMARY
    err = stream_error(streamed)
    assert err["code"] == "provider_error", err
    assert streamed.text == "Hello wor"
    assert streamed.elapsed_s < 0.6, f"error sent after {streamed.elapsed_s:.2f} s"
    with rig.sdk() as client:
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass
    assert rig.counts() == (2, 0), "a truncated stream was retried"
    body = assert_usage(rig, requests=2, a_served=2, b_served=0, exact_tokens=False)
    assert body["tokens"]["output"] > 0
    rig.assert_still_serves()


# --- request errors: propagated, never retried, never failed over (a content-policy 400 is an
# answer, and a context-length one may move to a larger window: tests/integration/
# test_error_meaning.py; here both offers have the same window) -----------------------------------


@pytest.mark.parametrize(
    ("code", "message", "client_codes"),
    [
        # SPEC §6 maps an upstream 400 to invalid_request; context_length_exceeded (the
        # SPEC's own 400 code for it) is accepted too.
        (
            "context_length_exceeded",
            CONTEXT_MESSAGE,
            {"invalid_request", "context_length_exceeded"},
        ),
        ("invalid_value", INVALID_MESSAGE, {"invalid_request"}),
    ],
    ids=["context-length", "invalid-value"],
)
def test_400_is_propagated_not_retried(rig: Rig, code: str, message: str, client_codes: set[str]):
    rig.primary.set_default(upstream_400(code, message))
    with rig.sdk() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
    assert caught.value.status_code == 400
    assert message in caught.value.message, caught.value.message
    assert caught.value.code in client_codes, caught.value.body
    for stream in (False, True):
        resp, _ = rig.chat(stream=stream)
        got = resp.json().get("error", {}).get("code") if resp.status_code == 400 else None
        err = assert_error(resp, 400, got if got in client_codes else "invalid_request")
        assert message in err["message"]
        assert resp.headers.get("x-error-provider") == PRIMARY
        assert resp.headers.get("x-error-retryable") == "false"
    assert rig.counts() == (4, 0), "a 400 was retried or failed over"
    # Four request errors in a row do not open the primary's circuit.
    _defaults(rig.primary, rig.secondary)
    assert_served(rig.chat()[0], PRIMARY)
    assert_usage(rig, requests=5, a_served=1, b_served=0)
    rig.assert_still_serves()


# --- flapping primary -----------------------------------------------------------------------------


def test_flapping_primary_circuit_opens_probes_and_closes(rig: Rig):
    p = rig.primary
    p.set_default(Status(503, message="down"))
    # Down: three failures open the circuit, then traffic moves to the secondary.
    for _ in range(3):
        assert_served(rig.chat()[0], SECONDARY, failed=((PRIMARY, "server"),))
    for _ in range(2):
        assert_served(rig.chat()[0], SECONDARY, viable=1)
    assert rig.counts() == (3, 5)
    # Still down after the cool-down: one probe fails, the circuit opens again.
    wait_until(p.chat_requests()[2].received_at + 1.1)
    assert_served(rig.chat()[0], SECONDARY, failed=((PRIMARY, "server"),))
    for _ in range(2):
        assert_served(rig.chat()[0], SECONDARY, viable=1)
    assert rig.counts() == (4, 8)
    # Up again, and slow enough (0.6 s) that the probe is in flight while others arrive.
    p.set_default(
        Delay(0.6, Reply(text=A_TEXT, prompt_tokens=A_TOKENS[0], completion_tokens=A_TOKENS[1]))
    )
    wait_until(p.chat_requests()[3].received_at + 1.1)

    def concurrent(i: int) -> httpx.Response:
        if i:
            time.sleep(0.15)  # request 0 is the probe; the others come while it runs
        return rig.chat()[0]

    answers = run_parallel(concurrent, 6, 6)
    assert_served(answers[0], PRIMARY)
    for resp in answers[1:]:  # half-open with a probe under way: skipped, not attempted
        assert_served(resp, SECONDARY)
    stamps = [r.received_at for r in p.chat_requests()]
    assert len(stamps) == 5, f"half-open circuit let {len(stamps) - 4} requests through"
    assert stamps[4] - stamps[3] >= 1.0
    # The probe succeeded: the circuit is closed and traffic returns to the primary.
    p.set_default(Reply(text=A_TEXT, prompt_tokens=A_TOKENS[0], completion_tokens=A_TOKENS[1]))
    for _ in range(3):
        assert_served(rig.chat()[0], PRIMARY)
    assert rig.counts() == (8, 13)
    assert_usage(rig, requests=17, a_served=4, b_served=13)
    rig.assert_still_serves()


# --- bursts: memory and connections return to their baseline --------------------------------------


@dataclass(frozen=True)
class BurstCase:
    fault: Behaviour
    stream: bool
    expect: str  # "fallback" (200 by B), "sse-error", "finalised" (200 by A, [DONE]), "400"
    count: int = 50
    warmup: int = 10
    concurrency: int = 5


def _scripted(
    *steps: bytes | Pause, end: Literal["eof", "cut", "hang"] = "eof", hang_s: float = 5.0
) -> ScriptedStream:
    return ScriptedStream(steps, end=end, hang_s=hang_s)


BURSTS: dict[str, BurstCase] = {
    # Retry-After 0 cools the primary for no time: every (sequential) request meets the 429.
    "429": BurstCase(
        Status(429, headers=(("Retry-After", "0"),)), False, "fallback", concurrency=1
    ),
    "503": BurstCase(Status(503), False, "fallback"),
    "reset-before-headers": BurstCase(Close(), False, "fallback"),
    "reset-before-headers-stream": BurstCase(Close(), True, "fallback"),
    "no-response": BurstCase(Hang(3.0), False, "fallback", count=20, concurrency=20),
    "slow-first-token": BurstCase(
        _scripted(Pause(2.0), *answer_events(["late"])),
        True,
        "fallback",
        count=20,
        concurrency=20,
    ),
    "non-json-200": BurstCase(Status(200, body="not json"), False, "fallback"),
    "stream-cut": BurstCase(CutStream(after_chunks=3), True, "sse-error"),
    "stream-stall": BurstCase(
        _scripted(*answer_events(["Hel"], finish_reason=None, done=False), end="hang", hang_s=3.0),
        True,
        "sse-error",
        count=20,
        concurrency=20,
    ),
    "malformed-chunk": BurstCase(
        _scripted(
            chunk("", role="assistant"), *GARBAGE, chunk("Hi"), chunk(finish_reason="stop"), DONE
        ),
        True,
        "fallback",
    ),
    "no-done-after-finish": BurstCase(
        _scripted(*answer_events(["Hi"], usage=(5, 1), done=False)), True, "finalised"
    ),
    "no-finish-no-done": BurstCase(
        _scripted(*answer_events(["Hi"], finish_reason=None, done=False)), True, "sse-error"
    ),
    "context-length-400": BurstCase(
        upstream_400("context_length_exceeded", CONTEXT_MESSAGE), False, "400"
    ),
    "invalid-value-400": BurstCase(upstream_400("invalid_value", INVALID_MESSAGE), True, "400"),
}


@pytest.fixture(scope="module")
def burst_gw(
    tmp_path_factory: pytest.TempPathFactory,
    primary: UpstreamServer,
    secondary: UpstreamServer,
    provider_env: dict[str, str],
    admin_key: str,
) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(
        tmp_path_factory.mktemp("gw-burst"),
        config=pair_config(primary.base_url, secondary.base_url, health=NO_BREAKER),
        env=provider_env,
        admin_key=admin_key,
        name="gw-burst",
    )
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
    assert "Traceback" not in gw.log_text(), gw.log_tail(80)


def _one(http: httpx.Client, case: BurstCase) -> str:
    """One faulty request; returns what the caller got, as ``BurstCase.expect`` names it."""
    body = chat_body(model=MODEL)
    if not case.stream:
        resp = http.post("/v1/chat/completions", json=body)
        if resp.status_code == 400:
            return "400"
        ok = resp.status_code == 200 and resp.headers.get("x-provider-used") == SECONDARY
        return "fallback" if ok else f"{resp.status_code} {resp.text[:200]}"
    result = post_stream(http, body)
    if result.status == 400:
        return "400"
    if result.status != 200:
        return f"{result.status} {result.raw[:200]}"
    provider = result.headers.get("x-provider-used")
    if result.errors and not result.done and provider == PRIMARY:
        return "sse-error"
    if result.done and not result.errors:
        return "fallback" if provider == SECONDARY else "finalised"
    return f"unexpected stream end: {result.raw[-300:]}"


def _burst(gw: GatewayProcess, case: BurstCase, count: int) -> list[str]:
    limits = httpx.Limits(max_connections=case.concurrency)
    with httpx.Client(
        base_url=gw.base_url,
        headers={"Authorization": f"Bearer {gw.admin_key}"},
        timeout=15.0,
        trust_env=False,
        limits=limits,
    ) as http:
        return run_parallel(lambda _: _one(http, case), count, case.concurrency)


def _primary_serving(gw: GatewayProcess) -> None:
    """Start from a closed circuit: a half-open primary left by an earlier burst would
    otherwise reopen on its first failure and let most of this burst skip the fault."""
    deadline = time.monotonic() + 3.0
    with gw.http(gw.admin_key) as http:
        while True:
            resp = http.post("/v1/chat/completions", json=chat_body(model=MODEL))
            assert resp.status_code == 200, resp.text
            if resp.headers.get("x-provider-used") == PRIMARY:
                return
            assert time.monotonic() < deadline, "the primary's circuit never closed"
            time.sleep(0.1)


@pytest.mark.parametrize("name", list(BURSTS))
def test_burst_leaves_memory_and_connections_at_baseline(
    burst_gw: GatewayProcess, primary: UpstreamServer, secondary: UpstreamServer, name: str
):
    case = BURSTS[name]
    pid, port = worker_pid(burst_gw), burst_gw.port
    _primary_serving(burst_gw)
    primary.set_default(case.fault)
    warm = _burst(burst_gw, case, case.warmup)
    assert set(warm) == {case.expect}, warm
    before = settled_footprint(pid, lambda f: _quiet(f, port))
    assert _quiet(before, port), f"not settled after warm-up: {before.tcp}"
    calls_before = len(primary.chat_requests())

    outcomes = _burst(burst_gw, case, case.count)

    wrong = [o for o in outcomes if o != case.expect]
    assert not wrong, f"{len(wrong)}/{case.count} requests did not get {case.expect!r}: {wrong[:3]}"
    met = len(primary.chat_requests()) - calls_before
    assert met == case.count, f"only {met}/{case.count} requests met the fault"

    upstreams = (primary.port, secondary.port)

    def pooled(f: Footprint, port: int) -> int:
        """Connections to an upstream a keep-alive pool may hold: its size before, or as
        many as the burst had requests in flight."""
        return max(before.to_port(port), case.concurrency) + CONN_TOLERANCE

    def settled(f: Footprint) -> bool:
        return (
            _quiet(f, port)
            and all(f.to_port(p) <= pooled(f, p) for p in upstreams)
            and f.other_fds <= before.other_fds + CONN_TOLERANCE
        )

    after = settled_footprint(pid, settled)
    report = f"{name}: before {before.describe()}; after {after.describe()}"
    print(report)
    assert worker_pid(burst_gw) == pid, "the worker was replaced (crashed?)"
    assert not after.not_established(), f"half-closed sockets left: {report} {after.tcp}"
    strangers = [s for s in after.connections() if s.remote_port not in upstreams]
    assert not strangers, f"connections to neither upstream nor client: {strangers}"
    for p in upstreams:
        assert after.to_port(p) <= pooled(after, p), f"connections to :{p} grew: {report}"
    assert after.other_fds <= before.other_fds + CONN_TOLERANCE, (
        f"descriptors other than live TCP connections grew: {report}"
    )
    assert after.rss_kib - before.rss_kib <= RSS_TOLERANCE_KIB, report
    # …and it still serves a healthy request, from the primary once its circuit closes.
    primary.set_default(Reply(text=A_TEXT))
    _primary_serving(burst_gw)
