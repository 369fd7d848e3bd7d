"""Helpers for the fault-injection suite (tests/integration/test_faults.py).

- ``pair_config``: two OpenAI-format providers offering the same model; ``upstream-a`` (the
  primary) is ten times cheaper, so every strategy that weighs cost ranks it first; failover
  always moves on (``MOVE_ON``: no retry in place).
- SSE builders for ``ScriptedStream`` upstream answers (well-formed and malformed events).
- ``post_stream``: a streaming request read to the end with its timings.
- ``wait_usage``: ``GET /v1/usage?period=day`` polled until the expected count shows up.
- ``Footprint``: the gateway worker's RSS, file descriptors and TCP sockets from ``/proc``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .gateway import GatewayProcess, gateway_config, offer
from .upstream import UpstreamServer, iter_sse

MODEL = "gpt-4o"
PRIMARY = "upstream-a"
SECONDARY = "upstream-b"
PRIMARY_MODEL_ID = "a-gpt-4o"
SECONDARY_MODEL_ID = "b-gpt-4o"
A_TEXT = "served by the primary"
B_TEXT = "served by the secondary, the fallback"
# USD per 1M tokens (input, output)
PRIMARY_PRICE = (0.5, 1.0)
SECONDARY_PRICE = (5.0, 20.0)

TIMEOUTS: dict[str, float] = {"first_byte": 1.0, "total": 2.0, "stall": 1.0}
# Breakers as the scenarios need them: open after 3 consecutive failures, probe after 1 s,
# and again 1 s after a failed probe (no back-off: tests/integration/test_recovery.py has it).
HEALTH: dict[str, Any] = {
    "cooldown_s": 1,
    "max_cooldown_s": 1,
    "failure_threshold": 3,
    "learn_latency": False,
}
# Breakers that never open on failures (a 429 still cools its provider): every request of a
# burst then meets the fault instead of skipping an open circuit.
NO_BREAKER: dict[str, Any] = {
    "cooldown_s": 1,
    "max_cooldown_s": 1,
    "failure_threshold": 1_000_000,
    "failure_rate": 1.0,
    "learn_latency": False,
}

T = TypeVar("T")


def _provider(provider_id: str, base_url: str, key_env: str) -> dict[str, Any]:
    return {
        "id": provider_id,
        "format": "openai",
        "base_url": base_url,
        "api_key_env": key_env,
        "regions": ["us-east-1"],
        "data_policy": "no_training",
        "timeout_s": dict(TIMEOUTS),
    }


# Failover that always moves on: the fault suite checks what happens when an attempt fails
# over; retrying in place (a short Retry-After, a quick retry after a one-off 5xx) has its own
# suite (tests/integration/test_retry_in_place.py).
MOVE_ON: dict[str, Any] = {"quick_retry": False, "retry_after_max_s": 0}


def pair_config(
    a_url: str, b_url: str, *, health: dict[str, Any], failover: dict[str, Any] | None = None
) -> dict[str, Any]:
    return gateway_config(
        [
            _provider(PRIMARY, a_url, "UPSTREAM_A_KEY"),
            _provider(SECONDARY, b_url, "UPSTREAM_B_KEY"),
        ],
        [
            offer(
                MODEL,
                PRIMARY,
                PRIMARY_MODEL_ID,
                price_in=PRIMARY_PRICE[0],
                price_out=PRIMARY_PRICE[1],
            ),
            offer(
                MODEL,
                SECONDARY,
                SECONDARY_MODEL_ID,
                price_in=SECONDARY_PRICE[0],
                price_out=SECONDARY_PRICE[1],
            ),
        ],
        health=health,
        failover=MOVE_ON if failover is None else failover,
    )


def cost(price: tuple[float, float], prompt: int, completion: int) -> float:
    return (prompt * price[0] + completion * price[1]) / 1e6


def deepen_backlog(upstream: UpstreamServer, backlog: int = 128) -> None:
    """``socketserver`` listens with a backlog of 5: a burst of new connections would then
    wait for SYN retransmits (1 s), longer than the 1 s first-byte timeout. Listen deeper."""
    upstream._server.socket.listen(backlog)


# --- SSE events an upstream sends --------------------------------------------------------

DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def chunk(
    content: str | None = None,
    *,
    role: str | None = None,
    finish_reason: str | None = None,
    model: str = PRIMARY_MODEL_ID,
) -> bytes:
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return sse(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
    )


def usage_chunk(prompt: int, completion: int, *, model: str = PRIMARY_MODEL_ID) -> bytes:
    return sse(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    )


def answer_events(
    pieces: Sequence[str],
    *,
    finish_reason: str | None = "stop",
    usage: tuple[int, int] | None = None,
    done: bool = True,
) -> list[bytes]:
    """Role chunk, one chunk per piece, then optionally the finish, usage and ``[DONE]``."""
    events = [chunk("", role="assistant")]
    events += [chunk(piece) for piece in pieces]
    if finish_reason is not None:
        events.append(chunk(finish_reason=finish_reason))
    if usage is not None:
        events.append(usage_chunk(*usage))
    if done:
        events.append(DONE)
    return events


# --- what the caller sees ---------------------------------------------------------------


@dataclass
class StreamResult:
    status: int
    headers: httpx.Headers
    raw: str
    events: list[tuple[str | None, str]]
    headers_after_s: float  # from sending the request to the response headers
    elapsed_s: float  # from sending the request to the end of the body

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [json.loads(d) for e, d in self.events if e is None and d != "[DONE]"]

    @property
    def text(self) -> str:
        return "".join(
            c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c.get("choices")
        )

    @property
    def done(self) -> bool:
        return (None, "[DONE]") in self.events

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [json.loads(d) for e, d in self.events if e == "error"]

    @property
    def final(self) -> dict[str, Any]:
        """The gateway's closing chunk: ``choices: []`` with usage and routing_metadata."""
        finals = [c for c in self.chunks if c.get("choices") == [] and "usage" in c]
        assert len(finals) == 1, f"expected one usage chunk, got {len(finals)}: {self.raw[-800:]}"
        return finals[0]


def post_stream(
    http: httpx.Client, body: dict[str, Any], *, path: str = "/v1/chat/completions"
) -> StreamResult:
    t0 = time.monotonic()
    with http.stream("POST", path, json={**body, "stream": True}) as resp:
        headers_at = time.monotonic() - t0
        raw = resp.read().decode()
    elapsed = time.monotonic() - t0
    events = list(iter_sse(iter(raw.splitlines())))
    return StreamResult(resp.status_code, resp.headers, raw, events, headers_at, elapsed)


def run_parallel(fn: Callable[[int], T], count: int, concurrency: int) -> list[T]:
    """``fn(0) … fn(count - 1)`` on ``concurrency`` threads; results in call order."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(fn, range(count)))


# --- metering -----------------------------------------------------------------------------


def usage(gw: GatewayProcess, key: str) -> dict[str, Any]:
    with gw.http(key) as http:
        resp = http.get("/v1/usage", params={"period": "day"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body, dict)
    return body


def wait_usage(
    gw: GatewayProcess, key: str, requests: int, *, timeout: float = 1.0, settle: float = 0.15
) -> dict[str, Any]:
    """Poll until ``requests`` records are counted, then check that no more arrive."""
    deadline = time.monotonic() + timeout
    body = usage(gw, key)
    while body["requests"] < requests and time.monotonic() < deadline:
        time.sleep(0.02)
        body = usage(gw, key)
    time.sleep(settle)
    settled = usage(gw, key)
    assert settled == body, f"usage still changing: {body} -> {settled}"
    assert body["requests"] == requests, f"expected {requests} usage records: {body}"
    return body


# --- the gateway worker's footprint ----------------------------------------------------------

TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


@dataclass(frozen=True)
class TcpSocket:
    state: str
    local_port: int
    remote_port: int


@dataclass(frozen=True)
class Footprint:
    """One look at a process: resident memory, open descriptors, its TCP sockets."""

    rss_kib: int
    fds: int
    tcp: tuple[TcpSocket, ...] = field(default=())
    fd_kinds: tuple[tuple[str, int], ...] = field(default=())  # ("socket", 12), ("pipe", 2)…

    def connections(self) -> list[TcpSocket]:
        return [s for s in self.tcp if s.state != "LISTEN"]

    def not_established(self) -> list[TcpSocket]:
        return [s for s in self.connections() if s.state != "ESTABLISHED"]

    def to_port(self, port: int) -> int:
        return sum(1 for s in self.connections() if s.remote_port == port)

    @property
    def other_fds(self) -> int:
        """Descriptors that are not a TCP socket with a state (files, pipes, and sockets
        whose connection is gone but whose descriptor is still open)."""
        return self.fds - len(self.tcp)

    def describe(self) -> str:
        states: dict[str, int] = {}
        for s in self.connections():
            states[s.state] = states.get(s.state, 0) + 1
        peers: dict[int, int] = {}
        for s in self.connections():
            peers[s.remote_port] = peers.get(s.remote_port, 0) + 1
        return (
            f"rss={self.rss_kib} KiB fds={dict(self.fd_kinds)} tcp={states or '{}'} peers={peers}"
        )


def worker_pid(gw: GatewayProcess) -> int:
    """The granian worker serving requests: the single child of the process we started."""
    assert gw.proc is not None, "gateway not running"
    main = gw.proc.pid
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    if not children:  # kernels without the children file: scan for the parent pid
        children = [
            p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == main
        ]
    assert len(children) == 1, f"expected one worker under {main}, found {children}"
    return int(children[0])


def _ppid(proc_dir: Path) -> int | None:
    try:
        stat = (proc_dir / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _fd_targets(pid: int) -> list[str]:
    targets: list[str] = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(str(fd.readlink()))
        except OSError:  # closed while we looked
            continue
    return targets


def _fd_kind(target: str) -> str:
    if target.startswith(("socket:", "pipe:")):
        return target.split(":", 1)[0]
    if target.startswith("anon_inode:"):
        return target.split(":", 1)[1].strip("[]")
    return "file"


def _tcp_sockets(pid: int, inodes: set[str]) -> list[TcpSocket]:
    found: list[TcpSocket] = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if len(cols) < 10 or cols[9] not in inodes:
                continue
            local, remote, state = cols[1], cols[2], cols[3]
            found.append(
                TcpSocket(
                    state=TCP_STATES.get(state, state),
                    local_port=int(local.rsplit(":", 1)[1], 16),
                    remote_port=int(remote.rsplit(":", 1)[1], 16),
                )
            )
    return found


def footprint(pid: int) -> Footprint:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    targets = _fd_targets(pid)
    inodes = {t[8:-1] for t in targets if t.startswith("socket:[")}
    kinds: dict[str, int] = {}
    for target in targets:
        kinds[_fd_kind(target)] = kinds.get(_fd_kind(target), 0) + 1
    return Footprint(
        rss_kib=rss,
        fds=len(targets),
        tcp=tuple(_tcp_sockets(pid, inodes)),
        fd_kinds=tuple(sorted(kinds.items())),
    )


def settled_footprint(
    pid: int, done: Callable[[Footprint], bool], *, timeout: float = 5.0
) -> Footprint:
    """The footprint once ``done`` holds (closing sockets take a moment), or the last one."""
    deadline = time.monotonic() + timeout
    current = footprint(pid)
    while not done(current) and time.monotonic() < deadline:
        time.sleep(0.05)
        current = footprint(pid)
    return current
