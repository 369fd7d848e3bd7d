"""What one routed request came to: ``routing_metadata``, SPEC §4 headers and the usage record.

Built the same way for streaming and non-streaming answers, and for failures, so the three
never disagree about what happened.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.context import Context
from gateway.edge.auth import utc_now
from gateway.edge.schemas import ChatRequest, GatewayMetadata
from gateway.errors import GatewayError, ServiceUnavailable
from gateway.governance.admission import Admission, plain_settlement
from gateway.governance.metering import Usage, cost_usd, saved_pct
from gateway.providers.dispatch import Attempt, chain_text
from gateway.routing.catalog import Deployment
from gateway.routing.planner import RoutePlan
from gateway.store.ledger import to_micro
from gateway.store.read_through import MISSING
from gateway.store.records import ApiKey, UsageRecord

_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Outcome:
    """Accumulates a request's facts as it goes through the pipeline."""

    ctx: Context
    key: ApiKey
    request_id: str
    model_requested: str
    started: float = field(default_factory=time.perf_counter)
    chat: ChatRequest | None = None
    plan: RoutePlan | None = None
    deployment: Deployment | None = None
    chain: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    usage_estimated: bool = False
    ttft_ms: float | None = None
    recorded: bool = False
    warnings: list[str] = field(default_factory=list)
    """Options ignored for the served deployment (added to the plan's routing warnings)."""
    gateway_metadata: GatewayMetadata | None = None
    """For requests without a ``ChatRequest`` (embeddings)."""
    admission: Admission | None = None
    """What was reserved before dispatch; the record settles it."""
    legs: list[tuple[Deployment, Usage]] = field(default_factory=list)
    """A continued stream's attempts and what each used (``usage`` is then their sum): each
    is priced at its own deployment's rates."""
    _costs: tuple[Usage, Deployment, tuple[float, float]] | None = field(default=None, repr=False)

    @property
    def model_served(self) -> str:
        return self.deployment.model.id if self.deployment else self.model_requested

    @property
    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000.0, 3)

    def costs(self) -> tuple[float, float]:
        """(billable cost, baseline cost) in USD; test keys are never billed. Computed once
        for a given usage and deployment (the metadata, the headers and the record ask)."""
        usage, deployment = self.usage, self.deployment
        if usage is None or deployment is None:
            return 0.0, 0.0
        known = self._costs
        if known is not None and known[0] is usage and known[1] is deployment:
            return known[2]
        if self.legs:
            actual = sum(cost_usd(d.price, leg) for d, leg in self.legs)
        else:
            actual = cost_usd(deployment.price, usage)
        price = self.ctx.baseline_price
        baseline = cost_usd(price, usage) if price is not None else 0.0
        self._costs = (usage, deployment, (actual, baseline))
        return actual, baseline

    def routing_metadata(self) -> dict[str, Any]:
        plan, deployment = self.plan, self.deployment
        assert plan is not None and deployment is not None
        actual, baseline = self.costs()
        billable = 0.0 if self.key.mode == "test" else actual
        meta: dict[str, Any] = {
            "provider": deployment.provider.id,
            "provider_model_id": deployment.provider_model_id,
            "model_canonical": deployment.model.id,
            "region": deployment.region,
            "key_source": deployment.key_source,
            "routing_strategy": plan.strategy,
            "candidates_total": plan.candidates_total,
            "candidates_viable": plan.candidates_viable,
            "routing_decision_ms": round(plan.decision_ms, 3),
            "total_latency_ms": self.elapsed_ms,
            "baseline": self.ctx.baseline_model,
            "saved_pct": saved_pct(baseline, actual),
        }
        if plan.policy is not None:
            meta["policy"] = plan.policy
        if self.ttft_ms is not None:
            meta["ttft_ms"] = round(self.ttft_ms, 3)
        if self.usage is not None:
            meta["cost"] = {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cached_tokens": self.usage.cached_tokens,
                "provider_cost_usd": round(actual, 10),
                "billable_cost_usd": round(billable, 10),
            }
        if self.usage_estimated:
            meta["usage_estimated"] = True
        if len(self.chain) > 1:
            meta["fallback_chain"] = [dataclasses.asdict(a) for a in self.chain]
        warnings = [*plan.warnings, *self.warnings]
        if warnings:
            meta["warnings"] = warnings
        return meta

    def left_behind(self) -> list[str]:
        """The providers of failed attempts the request moved on from (an attempt retried in
        place is counted once, by its retry)."""
        chain = self.chain
        if len(chain) == 1 and chain[0].status == "success":
            return []
        return [
            a.provider
            for i, a in enumerate(chain)
            if a.status == "failed" and not (i + 1 < len(chain) and chain[i + 1].retry)
        ]

    def headers(self, *, streaming: bool) -> dict[str, str]:
        headers = {"x-request-id": self.request_id, "x-model-requested": self.model_requested}
        plan, deployment = self.plan, self.deployment
        if plan is None or deployment is None:
            if self.admission is not None:
                headers.update(self.admission.headers)
            return headers
        failed = self.left_behind()
        headers.update(
            {
                "x-provider-used": deployment.provider.id,
                "x-model-canonical": deployment.model.id,
                "x-model-used": deployment.provider_model_id,
                "x-routing-strategy": plan.strategy,
                "x-routing-time-ms": f"{plan.decision_ms:.3f}",
                "x-api-key-source": deployment.key_source,
                "x-fallback-used": "true" if failed else "false",
                "x-fallback-depth": str(len(failed)),
            }
        )
        if failed:
            headers["x-fallback-attempted-providers"] = ",".join(failed)
        if not streaming and self.usage is not None:
            actual, _ = self.costs()
            headers["x-cost"] = f"{0.0 if self.key.mode == 'test' else actual:.8f}"
        if self.admission is not None:
            headers.update(self.admission.headers)
        return headers

    def record(self, *, status: int, error: GatewayError | None = None) -> None:
        """Spool this request's usage record (never any prompt or completion text) with what
        it cost, settling its reservation; once. Spooled means it survives a crash."""
        if self.recorded:
            return
        self.recorded = True
        usage = self.usage or Usage()
        actual, baseline = self.costs()
        deployment, plan, chat = self.deployment, self.plan, self.chat
        metadata = chat.gateway_metadata if chat is not None else self.gateway_metadata
        test_key = self.key.mode == "test"  # free traffic: neither spend nor savings
        cost = 0.0 if test_key else actual
        record = UsageRecord(
            request_id=self.request_id,
            created_at=utc_now(),
            workspace_id=self.key.workspace_id,
            key_id=self.key.id,
            model_requested=self.model_requested,
            model_served=deployment.model.id if deployment else None,
            provider=deployment.provider.id if deployment else None,
            region=deployment.region if deployment else None,
            key_source=deployment.key_source if deployment else None,
            strategy=plan.strategy if plan else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost,
            cost_microdollars=to_micro(cost),
            baseline_cost_usd=0.0 if test_key else baseline,
            latency_ms=self.elapsed_ms,
            ttft_ms=self.ttft_ms,
            status=status,
            error_code=error.code if error else None,
            stream=bool(chat and chat.stream),
            usage_estimated=self.usage_estimated,
            fallback_chain=chain_text(self.chain),
            gateway_metadata=_encoder.encode(metadata).decode() if metadata else None,
        )
        admission = self.admission
        self.ctx.usage.submit(
            admission.settlement(record, deployment)
            if admission is not None
            else plain_settlement(record)
        )


async def admit(outcome: Outcome, *, prompt_tokens: int, max_output: int | None) -> None:
    """Reserve the planned request's estimated cost and tokens (SPEC §7), or raise the
    402/403/429/503 that refuses it; the reservation is settled by ``Outcome.record``.
    First of all, a request whose usage could not be spooled is never dispatched: 503 in
    either ``store_unavailable`` mode (docs/governance.md)."""
    ctx, plan = outcome.ctx, outcome.plan
    assert plan is not None
    if not ctx.usage.ready():
        raise ServiceUnavailable(
            "The gateway cannot record usage right now (its local disk is full or failing); "
            "the request was not sent to any provider.",
            headers={"retry-after": "1"},
        )
    rules = ctx.rules.fresh(outcome.key.workspace_id)
    if rules is MISSING:
        rules = await ctx.rules.aget(outcome.key.workspace_id)
    admission, reservation = ctx.admitter.prepare(
        key=outcome.key,
        rules=rules,
        request_id=outcome.request_id,
        deployments=plan.deployments,
        prompt_tokens=prompt_tokens,
        max_output=max_output,
    )
    if reservation is not None:
        admission = await ctx.admitter.hold(admission, reservation)
    outcome.admission = admission


def usage_from_openai(value: object) -> Usage | None:
    """Read an OpenAI ``usage`` object, including cached and reasoning token details."""
    if not isinstance(value, dict):
        return None
    prompt = value.get("prompt_tokens_details")
    completion = value.get("completion_tokens_details")
    return Usage(
        int(value.get("prompt_tokens") or 0),
        int(value.get("completion_tokens") or 0),
        int(prompt.get("cached_tokens") or 0) if isinstance(prompt, dict) else 0,
        int(completion.get("reasoning_tokens") or 0) if isinstance(completion, dict) else 0,
    )
