"""Live deployment health: EWMA latency and throughput, success rate, circuit breakers.

Every attempt feeds it; it writes each change straight into the native candidate table
(``CandidateTable.update_health``), so the next routing decision sees it with no rebuild.

Circuit states per deployment::

    closed ──(N consecutive failures, or failure rate over the window)──▶ open
    open ──(cool-down elapsed)──▶ half-open: routable, and the first request to claim it is
        the single probe; others skip it until the probe ends
    half-open ──probe succeeds──▶ closed        half-open ──probe fails──▶ open

The first opening lasts ``cooldown_s``; each failed probe doubles it, up to ``max_cooldown_s``,
so a provider in a long outage sees one probe every ``max_cooldown_s`` at most, and one that
heals is back in traffic within about ``max_cooldown_s`` (docs/behaviour.md, "Failover").
A success resets the back-off.

A 429 with ``Retry-After`` (or without, for one second) opens the provider's circuits for
that long without counting as a failure: a provider that said wait is never hammered. Only
the rows of the same key source cool: a rate-limited platform key says nothing about the
workspaces' own keys (a BYOK 429 cools that one workspace's key instead, in ``byok_keys``).
Open circuits are shared between processes through the store (``health_sync``): a provider
that one gateway saw failing or saying wait is avoided by all of them. EWMAs stay per process.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gateway.config import HealthSettings
from gateway.routing.catalog import Catalog

State = Literal["closed", "open", "half_open"]
COUNTED_FAILURES = frozenset(
    {"server_error", "timeout", "connect_error", "stream_error", "malformed_chunk"}
)


@dataclass(slots=True)
class DeploymentHealth:
    prior_ttft_ms: float
    prior_tps: float
    ttft_ms: float
    tps: float
    ttft_samples: int = 0
    tps_samples: int = 0
    outcomes: collections.deque[bool] = field(default_factory=collections.deque)
    consecutive_failures: int = 0
    state: State = "closed"
    reopen_at: float = 0.0
    probing: bool = False
    opened_at: float = 0.0
    last_success: float = float("-inf")
    reopenings: int = 0
    """Failed probes since the circuit last closed: the back-off's exponent."""
    failures_in_window: int = 0
    """``outcomes.count(False)``, kept as outcomes come and go (no count per request)."""
    published: tuple[float, float, float, bool] | None = None
    """What the routing table last got: an unchanged row is not sent again."""

    def record(self, ok: bool) -> None:
        outcomes = self.outcomes
        if outcomes.maxlen is not None and len(outcomes) == outcomes.maxlen and not outcomes[0]:
            self.failures_in_window -= 1  # the oldest outcome, a failure, falls out
        outcomes.append(ok)
        if not ok:
            self.failures_in_window += 1

    @property
    def success_rate(self) -> float:
        n = len(self.outcomes)
        return (n - self.failures_in_window) / n if n else 1.0


class HealthTracker:
    """Per-row health for one process; ``clock`` is injectable for tests."""

    def __init__(
        self,
        catalog: Catalog,
        settings: HealthSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._settings = settings
        self._clock = clock
        self._rows = [
            DeploymentHealth(
                prior_ttft_ms=d.offer.ttft_ms,
                prior_tps=d.offer.throughput_tps,
                ttft_ms=d.offer.ttft_ms,
                tps=d.offer.throughput_tps,
                outcomes=collections.deque(maxlen=settings.window),
            )
            for d in catalog.deployments
        ]
        self._open: set[int] = set()
        self._rows_of_provider: dict[tuple[str, str], list[int]] = {}
        for d in catalog.deployments:
            self._rows_of_provider.setdefault((d.provider.id, d.key_source), []).append(d.row)

    def state(self, row: int) -> DeploymentHealth:
        return self._rows[row]

    def refresh(self) -> None:
        """Move open circuits whose cool-down has passed to half-open (cheap when none)."""
        if not self._open:
            return
        now = self._clock()
        for row in [r for r in self._open if self._rows[r].reopen_at <= now]:
            health = self._rows[row]
            health.state, health.probing = "half_open", False
            self._open.discard(row)
            self._publish(row)

    def claim(self, row: int) -> bool:
        """May a request be sent to this row now? Half-open rows admit one probe."""
        health = self._rows[row]
        if health.state == "closed":
            return True
        if health.state == "open" or health.probing:
            return False
        health.probing = True
        self._publish(row)
        return True

    def release(self, row: int) -> None:
        """An attempt ended without a verdict (cancelled): free a claimed probe."""
        health = self._rows[row]
        if health.probing:
            health.probing = False
            self._publish(row)

    def success(self, row: int) -> None:
        health = self._rows[row]
        health.last_success = self._clock()
        health.record(True)
        health.consecutive_failures = 0
        health.reopenings = 0
        if health.state != "closed":
            health.state, health.probing = "closed", False
            self._open.discard(row)
        self._publish(row)

    def failure(self, row: int, kind: str, retry_after: float | None = None) -> None:
        if kind == "rate_limited":
            self._cool_provider(row, retry_after if retry_after is not None else 1.0)
            return
        if kind not in COUNTED_FAILURES:
            # The request's fault (400) or the key's (401): the deployment is fine, and a
            # probe that met it proved nothing either way.
            self.release(row)
            return
        health = self._rows[row]
        health.record(False)
        health.consecutive_failures += 1
        if health.state == "half_open":
            health.reopenings += 1
            self._open_circuit(row, self.cooldown(health.reopenings))
        elif self._tripped(health):
            self._open_circuit(row, self.cooldown(0))
        else:
            self._publish(row)

    def cooldown(self, reopenings: int) -> float:
        """How long a circuit stays open after ``reopenings`` failed probes in a row."""
        settings = self._settings
        cap = max(settings.max_cooldown_s, settings.cooldown_s)
        return min(cap, settings.cooldown_s * 2.0 ** min(reopenings, 32))

    def observe(self, row: int, *, ttft_ms: float | None = None, tps: float | None = None) -> None:
        """Fold one measured TTFT and/or throughput into the EWMAs."""
        if not self._settings.learn_latency:
            return
        health, alpha = self._rows[row], self._settings.ewma_alpha
        if ttft_ms is not None and ttft_ms >= 0:
            health.ttft_samples += 1
            base = ttft_ms if health.ttft_samples == 1 else health.ttft_ms
            health.ttft_ms = base + alpha * (ttft_ms - base)
        if tps is not None and tps > 0:
            health.tps_samples += 1
            base = tps if health.tps_samples == 1 else health.tps
            health.tps = base + alpha * (tps - base)
        self._publish(row)

    def shared_state(self) -> dict[int, tuple[float, float]]:
        """Open circuits, for other processes: row → (seconds until half-open, seconds since
        it opened)."""
        now = self._clock()
        return {
            row: (health.reopen_at - now, now - health.opened_at)
            for row in self._open
            if (health := self._rows[row]).state == "open" and health.reopen_at > now
        }

    def adopt(self, row: int, seconds: float, age_s: float) -> None:
        """Another process opened this row's circuit ``age_s`` ago, for ``seconds`` more:
        open it here too (no failure counted), unless it has succeeded here since."""
        health = self._rows[row]
        now = self._clock()
        if health.state != "closed" or seconds <= 0 or health.last_success >= now - age_s:
            return
        self._open_circuit(row, seconds)
        health.opened_at = now - age_s

    def _tripped(self, health: DeploymentHealth) -> bool:
        settings = self._settings
        if health.consecutive_failures >= settings.failure_threshold:
            return True
        outcomes = health.outcomes
        if len(outcomes) < settings.window // 2:
            return False
        return health.failures_in_window / len(outcomes) > settings.failure_rate

    def _open_circuit(self, row: int, seconds: float) -> None:
        health = self._rows[row]
        if health.state != "open":
            health.opened_at = self._clock()
        health.state, health.probing = "open", False
        health.reopen_at = max(health.reopen_at, self._clock() + seconds)
        self._open.add(row)
        self._publish(row)

    def _cool_provider(self, row: int, seconds: float) -> None:
        d = self._catalog.deployments[row]
        for other in self._rows_of_provider[(d.provider.id, d.key_source)]:
            if self._rows[other].state == "closed":
                self._rows[other].consecutive_failures = 0
            self._open_circuit(other, seconds)

    def _publish(self, row: int) -> None:
        health, min_samples = self._rows[row], self._settings.min_samples
        now = (
            health.ttft_ms if health.ttft_samples >= min_samples else health.prior_ttft_ms,
            health.tps if health.tps_samples >= min_samples else health.prior_tps,
            health.success_rate,
            health.state == "open" or health.probing,
        )
        if now == health.published:
            return
        health.published = now
        self._catalog.table.update_health(
            row, ttft_ms=now[0], throughput_tps=now[1], success_rate=now[2], circuit_open=now[3]
        )
