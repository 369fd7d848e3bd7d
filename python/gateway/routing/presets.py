"""Strategy presets, policy words and suffixes of SPEC §2-3: the shape is the contract,
the numbers are tunable."""

from __future__ import annotations

from gateway.routing_options import RoutingOptions

Weights = tuple[float, float, float, float, float]
"""(cost, ttft, throughput, reliability, quality)."""

PRESETS: dict[str, Weights] = {
    "cheapest": (1.0, 0.0, 0.0, 0.0, 0.0),
    "cost": (0.7, 0.1, 0.05, 0.15, 0.0),
    "speed": (0.1, 0.45, 0.3, 0.15, 0.0),
    "ttft": (0.05, 0.8, 0.0, 0.15, 0.0),
    "throughput": (0.05, 0.1, 0.7, 0.15, 0.0),
    "balanced": (0.35, 0.25, 0.1, 0.2, 0.1),
    "best": (0.0, 0.05, 0.0, 0.15, 0.8),
}
POLICY_WORDS: dict[str, str] = {
    "auto": "balanced",
    "cheapest": "cheapest",
    "fastest": "speed",
    "best": "best",
}
SUFFIXES: dict[str, str] = {
    "floor": "cheapest",
    "cost": "cost",
    "nitro": "speed",
    "fast": "ttft",
    "balanced": "balanced",
}


def strategy_of(options: RoutingOptions) -> tuple[str, Weights, bool]:
    """(reported strategy name, weights, hard-cheapest flag) for merged options."""
    if options.weights is not None and sum(options.weights.as_tuple()) > 0:
        return "custom", options.weights.as_tuple(), False
    name = options.optimize or "balanced"
    if name == "cheapest":
        return "cheapest", PRESETS["cheapest"], True
    return name, PRESETS[name], False


def auto_quality_floor(difficulty: float) -> float:
    """The soft floor ``auto`` adds: harder prompts need better models (SPEC §3 prompt fit)."""
    return round(min(0.9, 0.45 + 0.45 * max(0.0, min(1.0, difficulty))), 4)
