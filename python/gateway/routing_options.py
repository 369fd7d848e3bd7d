"""The routing options of SPEC §2, shared by config policies, workspace defaults and requests.

One struct so that a policy in YAML, a workspace default and a request's ``routing`` object
are validated by the same rules and merged field by field (``None`` means "not set here").
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Optimize = Literal["cost", "cheapest", "speed", "ttft", "throughput", "balanced", "best"]
DataPolicy = Literal["none", "no_training", "zdr"]
RoutingMode = Literal["pool", "fallback"]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
AttemptCount = Annotated[int, msgspec.Meta(ge=0, le=10)]


class Weights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Custom scoring weights; each ≥ 0, normalised to sum 1 by the core."""

    cost: NonNegative = 0.0
    ttft: NonNegative = 0.0
    throughput: NonNegative = 0.0
    reliability: NonNegative = 0.0
    quality: NonNegative = 0.0

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.cost, self.ttft, self.throughput, self.reliability, self.quality)


class RoutingOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every field optional: a layer of the precedence chain sets only what it means to."""

    optimize: Optimize | None = None
    weights: Weights | None = None
    max_ttft_ms: Positive | None = None
    min_throughput_tps: Positive | None = None
    min_success_rate: Fraction | None = None
    max_cost_per_1m: Positive | None = None
    providers: list[str] | None = None
    exclude_providers: list[str] | None = None
    regions: list[str] | None = None
    data_policy: DataPolicy | None = None
    only_byok: bool | None = None
    only_platform: bool | None = None
    allow_fallbacks: bool | None = None
    max_fallback_attempts: AttemptCount | None = None
    mode: RoutingMode | None = None
    quality_floor: Fraction | None = None


ROUTING_FIELDS: tuple[str, ...] = RoutingOptions.__struct_fields__
NOTHING_SET = RoutingOptions()


def merge(lower: RoutingOptions, higher: RoutingOptions) -> RoutingOptions:
    """Overlay ``higher`` on ``lower``: each field set in ``higher`` wins.

    The strategy is one choice, not two fields: a layer that names ``optimize`` without
    ``weights`` also drops the custom weights of the layers below it.
    """
    if higher == NOTHING_SET:  # the common layers: nothing to overlay, or nothing below
        return lower
    if lower == NOTHING_SET:
        return higher
    changes: dict[str, object] = {
        name: getattr(higher, name) for name in ROUTING_FIELDS if getattr(higher, name) is not None
    }
    if higher.optimize is not None and higher.weights is None and lower.weights is not None:
        changes["weights"] = None
    return msgspec.structs.replace(lower, **changes) if changes else lower
