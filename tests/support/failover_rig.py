"""Shared rig for the failover suites: retry in place (``test_retry_in_place.py``), upstream
400s read by their meaning (``test_error_meaning.py``) and prompt recovery of a healed
provider (``test_recovery.py``).

These suites check *where* each attempt of a request went, so everything here is about
attempts: the config of a gateway (the ``support.faults`` pair, with ``defaults.failover``
and provider timeouts set per scenario), the ``fallback_chain`` links and their exact keys,
the ``X-Fallback-*`` headers (which count deployments left behind, not attempts), the gaps
between the requests an upstream received (the in-place waits), and the single usage
record a request leaves however many attempts it made.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai

from .admin import ok, ws_path
from .anthropic_upstream import anthropic_error
from .checks import chat_body
from .faults import (
    A_TEXT,
    B_TEXT,
    MODEL,
    PRIMARY,
    TIMEOUTS,
    StreamResult,
    pair_config,
    post_stream,
)
from .gateway import GatewayProcess, new_secret
from .upstream import RecordedRequest, Reply, Status, UpstreamServer

A_TOKENS = (12, 9)  # (prompt, completion) the primary reports
B_TOKENS = (20, 5)  # … and the secondary
LINK_KEYS = frozenset(
    {"provider", "model", "status", "reason", "key_source", "retry", "continuation"}
)
QUICK_GAP = (0.04, 1.0)  # what a 50–250 ms quick retry may look like between two requests
GatewayFactory = Callable[..., GatewayProcess]


# --- configs --------------------------------------------------------------------------------------


def pair(
    a_url: str,
    b_url: str,
    *,
    health: dict[str, Any],
    failover: dict[str, Any] | None = None,
    timeouts: dict[str, float] | None = None,
) -> dict[str, Any]:
    """``support.faults.pair_config`` with provider timeouts and ``defaults.failover`` as
    given: ``None`` leaves it out, so the gateway's own defaults apply."""
    config = pair_config(a_url, b_url, health=health)
    config["defaults"].pop("failover", None)
    if failover is not None:
        config["defaults"]["failover"] = dict(failover)
    for provider in config["providers"]:
        provider["timeout_s"] = dict(timeouts or TIMEOUTS)
    return config


def provider(
    provider_id: str, base_url: str, *, fmt: str = "openai", total_s: float = 4.0
) -> dict[str, Any]:
    """A provider whose key is in ``<ID>_KEY`` (see ``provider_env``)."""
    return {
        "id": provider_id,
        "format": fmt,
        "base_url": base_url,
        "api_key_env": key_env(provider_id),
        "regions": ["us-east-1"],
        "data_policy": "no_training",
        "timeout_s": {"first_byte": 2.0, "total": total_s, "stall": 2.0},
    }


def key_env(provider_id: str) -> str:
    return provider_id.upper().replace("-", "_") + "_KEY"


def provider_env(config: dict[str, Any]) -> dict[str, str]:
    """A fresh secret for every provider of ``config``."""
    return {p["api_key_env"]: new_secret("sk-fo-") for p in config["providers"]}


def openai_400(code: str | None, message: str) -> Status:
    """An OpenAI (or Azure) 400 error body."""
    error = {"message": message, "type": "invalid_request_error", "param": "messages", "code": code}
    return Status(400, body={"error": error})


def anthropic_400(message: str) -> Status:
    return Status(400, body=anthropic_error("invalid_request_error", message))


def gemini_400(message: str) -> Status:
    error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
    return Status(400, body={"error": error})


def reply_a() -> Reply:
    return Reply(text=A_TEXT, prompt_tokens=A_TOKENS[0], completion_tokens=A_TOKENS[1])


def reply_b() -> Reply:
    return Reply(text=B_TEXT, prompt_tokens=B_TOKENS[0], completion_tokens=B_TOKENS[1])


# --- one scenario's gateway -----------------------------------------------------------------------


@dataclass
class Rig:
    """A gateway in front of the primary and the secondary, with a live key."""

    gw: GatewayProcess
    key: str
    primary: UpstreamServer
    secondary: UpstreamServer

    def http(self, timeout: float = 20.0) -> httpx.Client:
        return self.gw.http(self.key, timeout=timeout)

    def chat(self, **extra: Any) -> tuple[httpx.Response, float]:
        t0 = time.monotonic()
        with self.http() as http:
            resp = http.post("/v1/chat/completions", json=chat_body(model=MODEL, **extra))
        return resp, time.monotonic() - t0

    def stream(self, **extra: Any) -> StreamResult:
        with self.http() as http:
            return post_stream(http, chat_body(model=MODEL, **extra))

    def sdk(self) -> openai.OpenAI:
        return self.gw.openai(self.key, timeout=20.0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.gw.base_url, api_key=self.key, max_retries=0, timeout=20.0
        )

    def counts(self) -> tuple[int, int]:
        return len(self.primary.chat_requests()), len(self.secondary.chat_requests())

    def primary_gaps(self) -> list[float]:
        return gaps(self.primary.chat_requests())


def make_rig(
    make_gateway: GatewayFactory,
    primary: UpstreamServer,
    secondary: UpstreamServer,
    env: dict[str, str],
    *,
    health: dict[str, Any],
    failover: dict[str, Any] | None = None,
    timeouts: dict[str, float] | None = None,
    primary_url: str | None = None,
    name: str = "gw-failover",
) -> Rig:
    """``primary_url``: where the gateway looks for the primary instead of ``primary``."""
    a_url = primary_url or primary.base_url
    config = pair(a_url, secondary.base_url, health=health, failover=failover, timeouts=timeouts)
    gw = make_gateway(config, env, name=name)
    return Rig(gw, gw.create_key(name)["key"], primary, secondary)


def gaps(requests: Sequence[RecordedRequest]) -> list[float]:
    """Seconds between consecutive requests an upstream received."""
    stamps = [r.received_at for r in requests]
    return [b - a for a, b in itertools.pairwise(stamps)]


# --- what the caller saw --------------------------------------------------------------------------


def links(chain: Any) -> list[tuple[str, str, bool]]:
    """``(provider, status, retry)`` of each ``fallback_chain`` link, after checking that
    every link has exactly the documented keys."""
    assert isinstance(chain, list) and chain, f"no fallback_chain: {chain!r}"
    out: list[tuple[str, str, bool]] = []
    for link in chain:
        assert isinstance(link, dict), chain
        assert set(link) == LINK_KEYS, f"link keys {sorted(link)} != {sorted(LINK_KEYS)}"
        assert isinstance(link["retry"], bool) and link["continuation"] is False, link
        out.append((link["provider"], link["status"], link["retry"]))
    return out


def reasons(chain: Any) -> list[str | None]:
    return [link.get("reason") for link in chain]


def assert_left_behind(headers: httpx.Headers, providers: Sequence[str]) -> None:
    """``X-Fallback-Depth`` / ``-Attempted-Providers`` name each deployment that failed and
    was left behind, once; a failure retried in place is not one."""
    assert headers.get("x-fallback-depth") == str(len(providers)), dict(headers)
    attempted = headers.get("x-fallback-attempted-providers")
    if providers:
        assert attempted == ",".join(providers), f"X-Fallback-Attempted-Providers: {attempted}"
        assert headers.get("x-fallback-used") == "true", dict(headers)
    else:
        assert attempted is None, f"X-Fallback-Attempted-Providers: {attempted}"


def served(resp: httpx.Response, provider_id: str) -> dict[str, Any]:
    """A 200 chat completion served by ``provider_id`` (A's or B's text); its body."""
    assert resp.status_code == 200, f"{resp.status_code} {resp.text[:600]}"
    body: dict[str, Any] = resp.json()
    text = A_TEXT if provider_id == PRIMARY else B_TEXT
    assert body["choices"][0]["message"]["content"] == text, body
    assert resp.headers.get("x-provider-used") == provider_id, dict(resp.headers)
    assert body["routing_metadata"]["provider"] == provider_id
    return body


def streamed(result: StreamResult, provider_id: str) -> dict[str, Any]:
    """A complete stream served by ``provider_id``; its closing usage chunk."""
    assert result.status == 200, result.raw[:600]
    assert result.errors == [] and result.done, result.raw[-800:]
    assert result.text == (A_TEXT if provider_id == PRIMARY else B_TEXT), result.raw[-800:]
    assert result.headers.get("x-provider-used") == provider_id, dict(result.headers)
    return result.final


def assert_quick_gap(gap: float) -> None:
    low, high = QUICK_GAP
    assert low <= gap <= high, f"quick retry after {gap:.3f} s, not 50–250 ms"


# --- usage records ------------------------------------------------------------------------------


def usage_record(gw: GatewayProcess, request_id: str, timeout: float = 8.0) -> dict[str, Any]:
    """The usage record of ``request_id`` (default workspace), once the writer stored it."""
    assert gw.admin_key and request_id
    path = ws_path(gw.default_workspace_id(), f"/usage/{request_id}")
    deadline = time.monotonic() + timeout
    with gw.http(gw.admin_key) as http:
        resp = http.get(path)
        while resp.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.05)
            resp = http.get(path)
    record: dict[str, Any] = ok(resp)
    return record
