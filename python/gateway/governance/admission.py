"""Admission: before dispatch, reserve a request's estimated cost and tokens in one atomic
store call; after it, turn what it actually cost into a ``Settlement`` for the usage writer.

The estimate (SPEC §7) is the prompt tokens from the native counter, at each deployment's
token ratio, plus the requested ``max_tokens`` (the offer's ``max_output`` when none was
asked for), priced at the most expensive deployment the plan may try: fallbacks can then never
cost more than was reserved. A request with nothing to govern makes no store call at all.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from gateway import _router_core as core
from gateway.errors import (
    BillingError,
    BudgetExceeded,
    GatewayError,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)
from gateway.governance.metering import tokens_cost_usd
from gateway.governance.outage import OutageLedger
from gateway.governance.periods import HEADER_NAMES, counter_name
from gateway.governance.rules import Rules
from gateway.routing.catalog import Deployment
from gateway.store import Store
from gateway.store.ledger import (
    MICRO,
    BudgetDebit,
    BudgetHold,
    RateHold,
    Reservation,
    ReserveOutcome,
    Settlement,
    StoreUnavailable,
    TokenActual,
    WalletHold,
    WindowState,
    enforcement_threshold,
    to_micro,
)
from gateway.store.records import ApiKey, Budget, UsageRecord

log = logging.getLogger("routegate.governance")

RESERVATION_TTL_MS = 15 * 60 * 1000
"""An unsettled reservation (its gateway died mid-request) gives its holds back after this."""


def counts_toward(budget: Budget, key: ApiKey, deployment: Deployment) -> bool:
    """Whether spend on ``deployment`` by ``key`` is charged to ``budget`` (SPEC §7)."""
    if key.mode != "live":
        return False
    byok = deployment.key_source == "byok"
    if budget.scope_type == "byok_provider":
        return byok and deployment.provider.id == budget.scope_provider
    if byok and not budget.include_byok:
        return False
    if budget.scope_type == "workspace":
        return True
    return budget.scope_id is not None and budget.scope_id in (key.id, key.successor_id)


def estimate_micro(deployment: Deployment, prompt_tokens: int, max_output: int | None) -> int:
    """Upper-bound cost of one attempt, in micro-dollars (rounded up)."""
    ratio = core.token_ratio(deployment.model.family)
    input_tokens = math.ceil(prompt_tokens * ratio)
    output_tokens = max_output if max_output else deployment.offer.max_output
    return math.ceil(tokens_cost_usd(deployment.price, input_tokens, output_tokens) * MICRO - 1e-6)


@dataclass
class Admission:
    """What was reserved for one request, and what its settlement must charge."""

    key: ApiKey
    rules: Rules
    counters: list[tuple[Budget, str]] = field(default_factory=list)
    tpm_limiters: list[str] = field(default_factory=list)
    reservation_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def settlement(self, record: UsageRecord, deployment: Deployment | None) -> Settlement:
        if not (self.counters or self.tpm_limiters or self.rules.tier == "prepaid"):
            return Settlement(record=record, reservation_id=self.reservation_id)
        amount = record.cost_microdollars
        debits: tuple[BudgetDebit, ...] = ()
        wallet = 0
        if deployment is not None and amount > 0:
            debits = tuple(
                BudgetDebit(
                    budget_id=budget.id,
                    counter=counter,
                    amount=amount,
                    limit=to_micro(budget.limit_usd),
                )
                for budget, counter in self.counters
                if counts_toward(budget, self.key, deployment)
            )
            if self.rules.tier == "prepaid" and deployment.key_source == "platform":
                wallet = amount
        tokens = record.input_tokens + record.output_tokens
        return Settlement(
            record=record,
            reservation_id=self.reservation_id,
            budgets=debits,
            wallet=wallet,
            tokens=tuple(TokenActual(limiter=name, tokens=tokens) for name in self.tpm_limiters),
        )


def plain_settlement(record: UsageRecord) -> Settlement:
    """A request refused before admission: its record, and no charge."""
    return Settlement(record=record)


class Admitter:
    """Builds each request's reservation from its key, its workspace's rules and its plan."""

    def __init__(self, store: Store, *, fail_open: bool) -> None:
        self._store = store
        self._fail_open = fail_open
        self._outage = OutageLedger()
        self._last_warning = 0.0

    def prepare(
        self,
        *,
        key: ApiKey,
        rules: Rules,
        request_id: str,
        deployments: list[Deployment],
        prompt_tokens: int,
        max_output: int | None,
    ) -> tuple[Admission, Reservation | None]:
        """The request's admission and the reservation it must hold (None: nothing to hold,
        the admission is final; no coroutine on that path), which ``hold`` then takes.
        Refuses a request over its per-request cost ceiling."""
        admission = Admission(key=key, rules=rules)
        live = key.mode == "live"
        costed = live and bool(
            rules.budgets
            or rules.tier == "prepaid"
            or key.max_cost_per_request
            or rules.max_cost_per_request
        )
        if not (costed or key.rpm_limit or key.tpm_limit or rules.rpm_limit or rules.tpm_limit):
            return admission, None  # nothing to price, hold or count: most keys
        # Priced only when something needs the estimate: most requests need none of it.
        priced = (
            [(d, estimate_micro(d, prompt_tokens, max_output)) for d in deployments]
            if costed
            else []
        )
        if priced:
            _check_ceiling(key, rules, max(e for _, e in priced))
        budgets: list[BudgetHold] = []
        now = datetime.now(timezone.utc)
        for budget in rules.budgets if priced else ():
            counting = [e for d, e in priced if counts_toward(budget, key, d)]
            if not counting:
                continue
            counter = counter_name(budget.id, budget.period, now)
            admission.counters.append((budget, counter))
            budgets.append(
                BudgetHold(
                    budget_id=budget.id,
                    counter=counter,
                    threshold=enforcement_threshold(to_micro(budget.limit_usd)),
                    amount=max(counting),
                    enforce=budget.enforce,
                )
            )
        wallet = None
        if live and rules.tier == "prepaid":
            platform = [e for d, e in priced if d.key_source == "platform"]
            if platform:
                wallet = WalletHold(amount=max(platform))
        limits = _rate_holds(key, rules, prompt_tokens + (max_output or 0))
        admission.tpm_limiters = [hold.limiter for hold in limits if hold.tpm is not None]
        if not (budgets or wallet or limits):
            return admission, None
        reservation = Reservation(
            id=request_id,
            workspace_id=key.workspace_id,
            ttl_ms=RESERVATION_TTL_MS,
            budgets=tuple(budgets),
            wallet=wallet,
            limits=limits,
        )
        return admission, reservation

    async def hold(self, admission: Admission, reservation: Reservation) -> Admission:
        """Reserve in the store (or, failing open, locally); raises the refusal."""
        held_by_store = True
        try:
            outcome = await self._store.reserve(reservation)
        except StoreUnavailable as error:
            outcome = self._unavailable(reservation, admission.rules, error)
            held_by_store = False  # granted locally: the store has nothing to release
        else:
            if self._outage.active:
                self._outage.reset()
        admission.headers = _headers(admission.counters, reservation, outcome)
        if not outcome.granted:
            raise _denial_error(admission, outcome)
        if held_by_store:
            admission.reservation_id = reservation.id
        return admission

    def _unavailable(
        self, reservation: Reservation, rules: Rules, error: StoreUnavailable
    ) -> ReserveOutcome:
        """SPEC §6: fail closed (503), or open with this process's bounded allowance
        (``governance.outage``); logged either way, at most once per 5 s."""
        now = time.monotonic()
        if now - self._last_warning > 5.0:
            self._last_warning = now
            mode = "open: governing locally" if self._fail_open else "closed: refusing"
            log.warning("store unavailable for reservations (%s); failing %s", error, mode)
        if self._fail_open:
            return self._outage.reserve(reservation, rules)
        raise ServiceUnavailable(
            "The gateway's store is unavailable; the request was not admitted.",
            headers={"retry-after": "1"},  # as every store-outage 503 (docs/governance.md)
        )


def _check_ceiling(key: ApiKey, rules: Rules, estimate: int) -> None:
    ceilings = [c for c in (key.max_cost_per_request, rules.max_cost_per_request) if c]
    if ceilings and estimate > to_micro(min(ceilings)):
        raise PermissionDenied(
            f"The estimated cost of this request (${estimate / MICRO:.6f}: prompt plus "
            f"max_tokens at the deployment's prices) exceeds the per-request ceiling of "
            f"${min(ceilings):.6f}. Lower max_tokens or the prompt.",
            code="cost_limit_exceeded",
        )


def _rate_holds(key: ApiKey, rules: Rules, tokens: int) -> tuple[RateHold, ...]:
    holds: list[RateHold] = []
    if key.rpm_limit or key.tpm_limit:
        holds.append(
            RateHold(limiter=f"key:{key.id}", rpm=key.rpm_limit, tpm=key.tpm_limit, tokens=tokens)
        )
    if rules.rpm_limit or rules.tpm_limit:
        holds.append(
            RateHold(
                limiter=f"workspace:{key.workspace_id}",
                rpm=rules.rpm_limit,
                tpm=rules.tpm_limit,
                tokens=tokens,
            )
        )
    return tuple(holds)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}s"


def _headers(
    counters: list[tuple[Budget, str]], reservation: Reservation, outcome: ReserveOutcome
) -> dict[str, str]:
    """SPEC §4 rate-limit and budget headers: for each, the tightest applicable limit."""
    headers: dict[str, str] = {}
    requests: tuple[int, RateHold, WindowState] | None = None
    tokens: tuple[int, RateHold, WindowState] | None = None
    for hold, window in zip(reservation.limits, outcome.windows, strict=True):
        if hold.rpm is not None:
            left = max(0, hold.rpm - window.requests)
            if requests is None or left < requests[0]:
                requests = (left, hold, window)
        if hold.tpm is not None:
            left = max(0, hold.tpm - window.tokens)
            if tokens is None or left < tokens[0]:
                tokens = (left, hold, window)
    if requests is not None:
        left, hold, window = requests
        headers["x-ratelimit-limit-requests"] = str(hold.rpm)
        headers["x-ratelimit-remaining-requests"] = str(left)
        headers["x-ratelimit-reset-requests"] = _seconds(window.reset_ms)
    if tokens is not None:
        left, hold, window = tokens
        headers["x-ratelimit-limit-tokens"] = str(hold.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(left)
        headers["x-ratelimit-reset-tokens"] = _seconds(window.reset_ms)
    tightest: dict[str, tuple[float, int, Budget]] = {}
    for (budget, _), spend in zip(counters, outcome.spend, strict=True):
        ratio = spend / max(1, to_micro(budget.limit_usd))
        current = tightest.get(budget.period)
        if current is None or ratio > current[0]:
            tightest[budget.period] = (ratio, spend, budget)
    for _, spend, budget in tightest.values():
        name = HEADER_NAMES[budget.period].lower()
        headers[f"x-budget-{name}-spend"] = f"{spend / MICRO:.6f}"
        headers[f"x-budget-{name}-limit"] = f"{budget.limit_usd:.6f}"
    return headers


def _denial_error(admission: Admission, outcome: ReserveOutcome) -> GatewayError:
    denial = outcome.denial
    assert denial is not None
    if denial.kind in ("rpm", "tpm"):
        what = "requests" if denial.kind == "rpm" else "tokens"
        scope = "API key" if denial.ref.startswith("key:") else "workspace"
        retry = max(1, math.ceil(denial.retry_after_ms / 1000))
        error: GatewayError = RateLimited(
            f"Rate limit exceeded: this {scope}'s {what} per minute are used up. "
            f"Retry after {retry} s."
        )
        error.headers["retry-after"] = str(retry)
    elif denial.kind == "budget":
        budget = next(b for b, _ in admission.counters if b.id == denial.ref)
        error = BudgetExceeded(
            f"The {budget.period} {budget.scope_type.replace('_', ' ')} budget "
            f"(${budget.limit_usd:.2f}) has reached its enforcement threshold."
        )
        error.headers["x-budget-exceeded"] = "true"
        error.headers["x-budget-exceeded-period"] = budget.period
        error.headers["x-budget-exceeded-scope"] = budget.scope_type
    else:
        error = BillingError(
            "The workspace's credit balance is too low for this request; add credits."
        )
    error.headers.update(admission.headers)
    return error
