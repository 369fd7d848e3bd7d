"""The public shapes of the scorer API: a query in, a decision out.

``Decision`` keeps the core's arrays and builds ``Candidate``/``Rejection`` objects only when
they are read, so a routing decision costs microseconds even over thousands of deployments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from gateway import _router_core as core
from gateway.routing.presets import Weights
from gateway.routing_options import RoutingOptions

if TYPE_CHECKING:
    from gateway.routing.catalog import Catalog, Deployment

Capability = Literal[
    "tools", "vision", "json_object", "json_schema", "audio", "reasoning", "embeddings"
]
KeyMode = Literal["live", "test"]

CONSTRAINT_MEANINGS: dict[str, str] = {
    "model": "not one of the requested (or allowed) models",
    "provider": "provider not allowed, or no usable key for it",
    "key_source": "not the required key source (BYOK or platform)",
    "capabilities": "lacks a capability the request needs",
    "context_window": "context window smaller than the prompt (in the family's tokens) plus "
    "requested output",
    "max_output": "maximum output smaller than the requested output",
    "region": "region not allowed",
    "data_policy": "data policy weaker than required",
    "price": "blended price above routing.max_cost_per_1m",
    "quality_floor": "expected quality for the task below the floor",
    "ttft": "expected time to first token above routing.max_ttft_ms",
    "throughput": "throughput below routing.min_throughput_tps",
    "success_rate": "success rate below routing.min_success_rate",
    "circuit": "circuit breaker open",
}


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """A request description: what the caller asks for, without any HTTP.

    >>> RouteQuery(model="auto", capabilities=frozenset({"tools"}), prompt_tokens=1200)
    ... # doctest: +ELLIPSIS
    RouteQuery(model='auto', ...)
    """

    model: str | tuple[str, ...] = "auto"
    routing: RoutingOptions = field(default_factory=RoutingOptions)
    """The request's own options: they override everything else."""
    defaults: RoutingOptions = field(default_factory=RoutingOptions)
    """Lower layers (policies, workspace and built-in defaults): a model suffix overrides them."""
    prompt_tokens: int = 0
    max_output_tokens: int = 0
    expected_output_tokens: int | None = None
    capabilities: frozenset[Capability] = frozenset()
    task: str = "chat"
    difficulty: float = 0.0
    key_mode: KeyMode = "live"
    allowed_models: frozenset[str] | None = None
    data_policy_floor: Literal["none", "no_training", "zdr"] | None = None
    byok_providers: frozenset[str] = frozenset()
    """Providers (ids or aliases) the workspace holds a usable key of its own for: their
    BYOK deployments become candidates, ranked just ahead of their platform twins."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A viable deployment, with why it ranks where it does."""

    rank: int
    row: int
    model: str
    provider: str
    region: str
    provider_model_id: str
    key_source: str
    score: float
    price_input: float
    price_output: float
    reason: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A deployment that did not qualify, with the first constraint it failed."""

    row: int
    model: str
    provider: str
    region: str
    constraint: str
    reason: str


class Decision:
    """One routing decision over a table; arrays in, objects only on demand."""

    __slots__ = (
        "_catalog",
        "_rejected_by",
        "candidates_total",
        "candidates_viable",
        "emptied_by",
        "health_only",
        "ranked_rows",
        "scores",
        "strategy",
        "warnings",
        "weights",
    )

    def __init__(  # noqa: PLR0917 (positional-only: built once per request)
        self,
        catalog: Catalog,
        strategy: str,
        weights: Weights,
        warnings: list[str],
        ranked_rows: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
        candidates_total: int,
        candidates_viable: int,
        emptied_by: str | None,
        health_only: bool,
        rejected_by: npt.NDArray[np.int8] | None,
        /,
    ) -> None:
        """Positional-only: built once per request on the hot path."""
        self._catalog = catalog
        self.strategy = strategy
        self.weights = weights
        self.warnings = warnings
        self.ranked_rows = ranked_rows
        self.scores = scores
        self.candidates_total = candidates_total
        self.candidates_viable = candidates_viable
        self.emptied_by = emptied_by
        self.health_only = health_only
        self._rejected_by = rejected_by

    def __len__(self) -> int:
        return len(self.ranked_rows)

    def deployments(self) -> list[Deployment]:
        """The ranked deployments (the fallback order), best first."""
        rows = self._catalog.deployments
        return [rows[r] for r in self.ranked_rows.tolist()]

    @property
    def candidates(self) -> list[Candidate]:
        """Every viable deployment, best first, with its score and the reason it is kept."""
        viable = len(self.ranked_rows)
        out = []
        for rank, (row, score) in enumerate(
            zip(self.ranked_rows.tolist(), self.scores.tolist(), strict=True), start=1
        ):
            d = self._catalog.deployments[row]
            out.append(
                Candidate(
                    rank=rank,
                    row=row,
                    model=d.model.id,
                    provider=d.provider.id,
                    region=d.region,
                    provider_model_id=d.provider_model_id,
                    key_source=d.key_source,
                    score=score,
                    price_input=d.price.input,
                    price_output=d.price.output,
                    reason=f"passes every constraint; rank {rank} of {viable} "
                    f"with score {score:.4f} under '{self.strategy}'",
                )
            )
        return out

    @property
    def rejections(self) -> list[Rejection]:
        """Every deployment that did not qualify (only when routed with ``explain=True``)."""
        if self._rejected_by is None:
            raise ValueError("route the query with explain=True to see rejections")
        out = []
        for row, index in enumerate(self._rejected_by.tolist()):
            if index < 0:
                continue
            d = self._catalog.deployments[row]
            name = core.CONSTRAINT_NAMES[index]
            out.append(
                Rejection(
                    row=row,
                    model=d.model.id,
                    provider=d.provider.id,
                    region=d.region,
                    constraint=name,
                    reason=CONSTRAINT_MEANINGS[name],
                )
            )
        return out
