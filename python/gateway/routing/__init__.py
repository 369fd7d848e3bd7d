"""Routing: the public scorer API and the gateway's per-request planner.

Use it without a server::

    >>> from gateway.routing import RouteQuery, RoutingTable
    >>> table = RoutingTable.from_config(assume_credentials=True)   # the built-in catalog
    >>> decision = table.route(RouteQuery(model="cheapest", prompt_tokens=800), explain=True)
    >>> best = decision.candidates[0]
    >>> best.rank, decision.strategy
    (1, 'cheapest')

Each ``Candidate`` says why it was kept (its rank and score); with ``explain=True`` each
``Rejection`` names the first constraint a dropped deployment failed.
"""

from gateway.routing.decision import (
    CONSTRAINT_MEANINGS,
    Candidate,
    Capability,
    Decision,
    KeyMode,
    Rejection,
    RouteQuery,
)
from gateway.routing.expressions import ModelExpression, resolve_model
from gateway.routing.planner import RoutePlan, Router
from gateway.routing.presets import POLICY_WORDS, PRESETS, SUFFIXES, Weights, strategy_of
from gateway.routing.table import RoutingTable
from gateway.routing_options import RoutingOptions
from gateway.routing_options import Weights as CustomWeights

__all__ = [
    "CONSTRAINT_MEANINGS",
    "POLICY_WORDS",
    "PRESETS",
    "SUFFIXES",
    "Candidate",
    "Capability",
    "CustomWeights",
    "Decision",
    "KeyMode",
    "ModelExpression",
    "Rejection",
    "RoutePlan",
    "RouteQuery",
    "Router",
    "RoutingOptions",
    "RoutingTable",
    "Weights",
    "resolve_model",
    "strategy_of",
]
