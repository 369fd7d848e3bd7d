"""Gateways and checks for the stream-rescue suites (tests/integration/test_stream_rescue*.py).

``rescue_config``: up to three providers offering ``gpt-4o``, ranked by price: ``upstream-a``
(OpenAI format, cheapest, first), ``upstream-b`` (OpenAI format), ``anthro-c`` (Anthropic
format, dearest); each offer's ``prefill`` declared only when a test names it, so the
defaults (``assistant`` for Anthropic, ``none`` otherwise) are what the others get. Timeouts
are short (first token 1 s, stall 1 s) and breakers never open, so each scenario meets its
fault on every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from .checks import assert_error_shape
from .continuation import Style, content_text
from .faults import NO_BREAKER, StreamResult, cost
from .gateway import GatewayProcess, gateway_config, offer
from .upstream import RecordedRequest

MODEL = "gpt-4o"
A, B, C = "upstream-a", "upstream-b", "anthro-c"
MODEL_IDS = {A: "a-gpt-4o", B: "b-gpt-4o", C: "c-claude-sonnet"}
PRICES: dict[str, tuple[float, float]] = {A: (0.5, 1.0), B: (5.0, 20.0), C: (8.0, 30.0)}
KEY_ENVS = {A: "UPSTREAM_A_KEY", B: "UPSTREAM_B_KEY", C: "ANTHRO_C_KEY"}
TIMEOUTS = {"first_byte": 1.0, "stall": 1.0, "total": 10.0}
CHAIN_KEYS = {"provider", "model", "status", "reason", "key_source", "continuation"}


def rescue_config(urls: dict[str, str], prefill: dict[str, Style | str]) -> dict[str, Any]:
    """Providers for ``urls`` (provider id → base URL); ``prefill`` declares offers' styles."""
    providers: list[dict[str, Any]] = []
    offers: list[dict[str, Any]] = []
    for pid, url in urls.items():
        providers.append(
            {
                "id": pid,
                "format": "anthropic" if pid == C else "openai",
                "base_url": url,
                "api_key_env": KEY_ENVS[pid],
                "regions": ["us-east-1"],
                "data_policy": "no_training",
                "timeout_s": dict(TIMEOUTS),
            }
        )
        price_in, price_out = PRICES[pid]
        entry = offer(MODEL, pid, MODEL_IDS[pid], price_in=price_in, price_out=price_out)
        if pid in prefill:
            entry["prefill"] = prefill[pid]
        offers.append(entry)
    return gateway_config(providers, offers, health=NO_BREAKER)


# --- what the caller saw ------------------------------------------------------------------


def chain_of(result: StreamResult) -> list[dict[str, Any]]:
    chain = result.final["routing_metadata"].get("fallback_chain")
    assert isinstance(chain, list), f"no fallback_chain: {result.final}"
    for link in chain:
        assert set(link) >= CHAIN_KEYS, f"chain entry lacks {CHAIN_KEYS - set(link)}: {link}"
    return chain


def chain_summary(chain: list[dict[str, Any]]) -> list[tuple[str, str, str | None, bool]]:
    """``(provider, status, reason, continuation)`` of each attempt."""
    return [(c["provider"], c["status"], c["reason"], c["continuation"]) for c in chain]


def assert_one_stream(result: StreamResult, text: str) -> dict[str, Any]:
    """A complete stream: ``text`` each byte once, one id, one usage chunk, then ``[DONE]``.
    Returns the final (usage) chunk."""
    assert result.status == 200, result.raw[:500]
    assert result.errors == [], f"error event in a rescued stream: {result.raw[-800:]}"
    assert result.events[-1] == (None, "[DONE]"), f"no [DONE] at the end: {result.raw[-400:]}"
    assert result.text == text, f"client text {result.text!r} != {text!r}"
    ids = {c.get("id") for c in result.chunks}
    assert len(ids) == 1, f"chunks carry several ids: {ids}"
    return result.final


def usage_pair(final: dict[str, Any]) -> tuple[int, int]:
    return int(final["usage"]["prompt_tokens"]), int(final["usage"]["completion_tokens"])


def broken_share(final: dict[str, Any], continuation_tokens: tuple[int, int]) -> tuple[int, int]:
    """The broken attempt's share of the summed usage: total minus the continuation's (which
    its upstream reported). A cut attempt reports nothing, so the gateway counts it: both
    parts must be positive — the broken attempt read the prompt and wrote the delivered text."""
    prompt, completion = usage_pair(final)
    share = (prompt - continuation_tokens[0], completion - continuation_tokens[1])
    assert share[0] > 0 and share[1] > 0, (
        f"final usage {(prompt, completion)} is not the continuation's {continuation_tokens} "
        "plus the broken attempt's"
    )
    return share


def assert_stream_error(result: StreamResult, *words: str) -> dict[str, Any]:
    """The stream ends with one ``event: error`` in the documented shape, never ``[DONE]``;
    its message contains one of ``words`` (case-insensitive). Returns the whole body."""
    assert result.status == 200, result.raw[:500]
    assert not result.done, f"[DONE] after an unrescued break: {result.raw[-500:]}"
    assert len(result.errors) == 1, f"expected one error event: {result.raw[-800:]}"
    assert result.events[-1][0] == "error", "the error event must end the stream"
    body = result.errors[0]
    err = assert_error_shape(body)
    assert isinstance(body.get("request_id"), str) and body["request_id"], body
    assert err["code"] in {"provider_error", "provider_timeout"}, err
    message = err["message"].lower()
    assert any(w.lower() in message for w in words), f"message says not why ({words}): {err}"
    return body


# --- what the upstreams received ----------------------------------------------------------


def assert_continuation_request(
    sent: RecordedRequest, first: RecordedRequest, style: Style, delivered: str
) -> None:
    """``sent`` continues ``first``: the same conversation, then the prefill of ``style``."""
    body, original = sent.json, first.json
    assert isinstance(body, dict) and isinstance(original, dict)
    assert body.get("stream") is True, body
    *conversation, last = body["messages"]
    assert last["role"] == "assistant", f"no prefill at the end: {body['messages']}"
    if style == "assistant":
        # Anthropic rejects trailing whitespace in a prefill: the gateway holds it back.
        assert content_text(last["content"]) == delivered.rstrip(), last
        assert [m["role"] for m in conversation] == [m["role"] for m in original["messages"]]
        return
    assert conversation == original["messages"], (conversation, original["messages"])
    assert last["content"] == delivered, last
    if style == "continue_final_message":
        assert body.get("continue_final_message") is True, body
        assert body.get("add_generation_prompt") is False, body
        assert "prefix" not in last, last
    else:
        assert last.get("prefix") is True, last
        assert "continue_final_message" not in body, body


def assert_fresh_request(sent: RecordedRequest) -> None:
    """An ordinary request: no prefill at the end of it."""
    messages = sent.json["messages"]
    assert messages[-1]["role"] != "assistant", f"a prefill where none belongs: {messages}"


# --- metering -----------------------------------------------------------------------------


def rescue_cost(shares: dict[str, tuple[int, int]]) -> float:
    """Each attempt's tokens at its own deployment's price."""
    return sum(cost(PRICES[pid], *tokens) for pid, tokens in shares.items())


def usage_record(gw: GatewayProcess, request_id: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The request's usage record (management API), once the usage writer has stored it."""
    ws = gw.default_workspace_id()
    deadline = time.monotonic() + timeout
    with httpx.Client(
        base_url=gw.base_url,
        headers={"Authorization": f"Bearer {gw.admin_key}"},
        timeout=5.0,
        trust_env=False,
    ) as http:
        while True:
            resp = http.get(f"/v1/workspaces/{ws}/usage/{request_id}")
            if resp.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert resp.status_code == 200, f"no usage record {request_id}: {resp.text}"
    record = resp.json()
    assert isinstance(record, dict)
    return record


@dataclass
class Rig:
    gw: GatewayProcess
    key: str

    def http(self, timeout: float = 20.0) -> httpx.Client:
        return self.gw.http(self.key, timeout=timeout)
