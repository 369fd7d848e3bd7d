"""Continuing a stream that broke after content reached the client (docs/behaviour.md,
"Continuing a broken stream").

The answer so far (read natively from the chunks the client received) is sent as an
assistant prefill to a candidate whose offer declares one (``OfferConfig.prefill``): others
in rank order first, then the deployment that broke, each at most twice in 1.5 s. The new
leg's chunks are stitched natively into the client's stream (``StreamStitch``: the first
attempt's id, no second role, the repeated text skipped). An answer that broke during a tool
call, a refusal or before its reasoning produced any text cannot be continued from a prefill;
nor can one longer than ``KEPT_BYTES`` of chunks. With no client bytes of content yet, any
candidate may start the answer afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gateway import _router_core as core
from gateway.api.outcome import Outcome
from gateway.api.stream_legs import Leg, RelayFor, open_leg
from gateway.config import PrefillStyle
from gateway.providers import AttemptFailure
from gateway.providers.dispatch import Attempt
from gateway.providers.failover import hammered
from gateway.routing.catalog import Deployment

KEPT_BYTES = 8 * 1024 * 1024
"""Client bytes a stream keeps to be able to continue its answer."""


def with_prefill(
    payload: dict[str, Any], style: PrefillStyle, text: str
) -> tuple[dict[str, Any], str]:
    """``payload`` asking to continue ``text``, and the text the answer will repeat first
    (to skip). Anthropic rejects a prefill ending in whitespace: it is held back, and skipped
    if the continuation starts with it."""
    if not text:
        return payload, ""
    messages = list(payload.get("messages") or [])
    out = dict(payload)
    skip = ""
    if style == "assistant":
        prefill = text.rstrip()
        skip = text[len(prefill) :]
        if not prefill:
            return payload, skip
        messages.append({"role": "assistant", "content": prefill})
    elif style == "continue_final_message":
        messages.append({"role": "assistant", "content": text})
        out["continue_final_message"] = True
        out["add_generation_prompt"] = False
    else:  # prefix, prefix_echo
        messages.append({"role": "assistant", "content": text, "prefix": True})
        skip = text if style == "prefix_echo" else ""
    out["messages"] = messages
    return out, skip


class Rescue:
    """Finds and opens the continuation of one request's broken stream."""

    def __init__(
        self, outcome: Outcome, build: Callable[[Deployment], dict[str, Any]], make: RelayFor
    ) -> None:
        self.outcome = outcome
        self.build = build
        self.make = make
        self.continuations = 0
        self.opened: dict[int, list[float]] = {}

    def opened_at(self, row: int) -> None:
        self.opened.setdefault(row, []).append(time.monotonic())

    def _hammered(self, row: int) -> bool:
        return hammered(self.opened.get(row, ()), time.monotonic())

    def _candidates(self, broken: Deployment, fresh: bool) -> list[Deployment]:
        plan = self.outcome.plan
        assert plan is not None
        usable = [d for d in plan.deployments if fresh or d.prefill != "none"]
        others = [d for d in usable if d.row != broken.row] if plan.allow_fallbacks else []
        return others + [d for d in usable if d.row == broken.row]

    async def resume(
        self, sent: list[bytes], kept_all: bool, broken: Leg, ids: tuple[str, int]
    ) -> Leg | str:
        """The continuation's leg, whose chunks will carry ``ids`` (the stream's chunk id
        and ``created``), or why there is none."""
        outcome = self.outcome
        plan = outcome.plan
        assert plan is not None
        if not kept_all:
            return f"the answer is longer than the {KEPT_BYTES >> 20} MiB kept to continue it"
        chat = outcome.chat
        if chat is not None and (chat.n or 1) > 1:
            return "answers with several choices are not continued"
        text, obstacle = core.delivered_answer(b"".join(sent))
        if obstacle is not None:
            return obstacle
        candidates = self._candidates(broken.deployment, fresh=not text)
        if not candidates:
            return "no candidate accepts a prefill"
        budget = max(1, plan.max_fallback_attempts)
        rejected: list[str] = []
        ctx = outcome.ctx
        for deployment in candidates:
            if self.continuations >= budget:
                break
            row = deployment.row
            client = ctx.dispatcher.client_for(plan, deployment)
            if client is None or self._hammered(row) or not ctx.health.claim(row):
                continue
            self.continuations += 1
            self.opened_at(row)
            payload, skip = with_prefill(self.build(deployment), deployment.prefill, text)
            try:
                leg = await open_leg(client, deployment, payload, self.make)
            except AttemptFailure as failure:
                reason = self._failed(deployment, failure)
                if reason == "prefill_rejected":
                    rejected.append(deployment.provider.id)
                continue
            except BaseException:
                ctx.health.release(row)
                raise
            ctx.health.success(row)
            outcome.chain.append(_attempt(deployment, "success", None))
            leg.stitch = core.StreamStitch(
                chunk_id=ids[0], created=ids[1], skip=skip, drop_reasoning=bool(text)
            )
            leg.prefill_chars = len(text)
            return leg
        if rejected:
            return f"{', '.join(rejected)} rejected the prefill it declares it accepts"
        return "every candidate that could continue it failed, is cooling down or was tried"

    def _failed(self, deployment: Deployment, failure: AttemptFailure) -> str:
        """Book a failed continuation attempt; its chain reason."""
        health = self.outcome.ctx.health
        if failure.kind == "bad_request":
            health.release(deployment.row)  # the prefill, not the deployment, was refused
            reason = "prefill_rejected"
        else:
            health.failure(deployment.row, failure.kind, failure.retry_after)
            reason = failure.kind
        self.outcome.chain.append(_attempt(deployment, "failed", reason))
        return reason


def _attempt(deployment: Deployment, status: Any, reason: str | None) -> Attempt:
    return Attempt(
        deployment.provider.id,
        deployment.model.id,
        status,
        reason,
        deployment.key_source,
        continuation=True,
    )
