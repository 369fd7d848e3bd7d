"""Model expressions of SPEC §2: policy words, ids, aliases, one routing suffix, pins."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import ModelNotFound
from gateway.routing.catalog import Catalog
from gateway.routing.presets import POLICY_WORDS, SUFFIXES


@dataclass(frozen=True, slots=True)
class ModelExpression:
    """What one ``model`` value asked for, before any routing."""

    models: frozenset[int] | None  # None: the whole chat catalog
    pinned_provider: int | None = None
    optimize: str | None = None
    word: str | None = None  # the policy word, when one was used


def resolve_model(catalog: Catalog, expression: str) -> ModelExpression:
    """Parse a policy word, ``id``, ``id:suffix`` or ``provider/id``; unknown → 404.

    A suffix is recognised only when the expression has exactly one colon, so fine-tuned ids
    such as ``ft:gpt-4o:org:x`` are looked up whole.
    """
    word = expression.strip()
    lowered = word.lower()
    if lowered in POLICY_WORDS:
        # ``auto`` defers to the configured strategy (balanced when none is set); the other
        # words choose one, like a suffix does
        optimize = None if lowered == "auto" else POLICY_WORDS[lowered]
        return ModelExpression(None, optimize=optimize, word=lowered)
    optimize = None
    if word.count(":") == 1:
        base, suffix = word.split(":")
        if suffix.lower() in SUFFIXES and (catalog.model(base) is not None or "/" in base):
            word, optimize = base, SUFFIXES[suffix.lower()]
    pinned = None
    index = catalog.model(word)
    if index is None and "/" in word:
        provider_name, model_name = word.split("/", 1)
        pinned = catalog.provider(provider_name)
        index = catalog.model(model_name) if pinned is not None else None
    if index is None:
        raise ModelNotFound(f"The model '{expression}' does not exist.", param="model")
    return ModelExpression(frozenset({index}), pinned_provider=pinned, optimize=optimize)
