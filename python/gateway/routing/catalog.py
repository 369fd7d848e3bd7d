"""The validated config compiled into the native core's candidate table.

One row per deployment (model × provider × region × key source), sorted by id so that the
core's "lower row index" tie-break is the SPEC's "lower id". The built-in ``mock`` provider is
given one deployment of every model here, copying the model's first offer, so test keys route
through exactly the same machinery as live ones.

Every offer of a provider that needs an API key also gets a BYOK twin: the same deployment
served with a workspace's own key (``key_source`` byok). In the core's provider column a twin
carries the virtual provider index ``provider_index + byok_offset``, so one provider mask can
allow a provider's platform rows (the platform key is in the environment) and its BYOK rows
(this workspace holds a key for it) independently, with no change to the core.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway import _router_core as core
from gateway.config import (
    TASKS,
    Config,
    ModelConfig,
    OfferConfig,
    PrefillStyle,
    Price,
    ProviderConfig,
)

CAPABILITY_BITS: dict[str, int] = {
    "tools": core.CAP_TOOLS,
    "vision": core.CAP_VISION,
    "json_object": core.CAP_JSON_OBJECT,
    "json_schema": core.CAP_JSON_SCHEMA,
    "audio": core.CAP_AUDIO,
    "reasoning": core.CAP_REASONING,
    "embeddings": core.CAP_EMBEDDINGS,
}
DATA_POLICY_LEVELS: dict[str, int] = {
    "none": core.DATA_POLICY_NONE,
    "no_training": core.DATA_POLICY_NO_TRAINING,
    "zdr": core.DATA_POLICY_ZDR,
}
MOCK_PROVIDER = "mock"
PLATFORM, BYOK = "platform", "byok"
KEY_SOURCE_CODES: dict[str, int] = {
    PLATFORM: core.KEY_SOURCE_PLATFORM,
    BYOK: core.KEY_SOURCE_BYOK,
}
if core.TASKS != TASKS:  # the quality columns must line up with the core's task labels
    raise ImportError(f"task order differs: core {core.TASKS} vs config {TASKS}")


@dataclass(frozen=True, slots=True)
class Deployment:
    """What dispatch and metering need to know about one row of the table."""

    row: int
    model: ModelConfig
    provider: ProviderConfig
    provider_model_id: str
    region: str
    key_source: str
    offer: OfferConfig

    @property
    def price(self) -> Price:
        return self.offer.price

    @property
    def prefill(self) -> PrefillStyle:
        """How this deployment continues a partial answer (``OfferConfig.prefill``). The mock
        borrows each model's first offer, never its prefill: it answers the same whatever it
        is sent."""
        if self.provider.format == "mock":
            return "none"
        declared = self.offer.prefill
        if declared is not None:
            return declared
        return "assistant" if self.provider.format == "anthropic" else "none"


class Catalog:
    """Name lookups plus the native ``CandidateTable`` built once at start."""

    def __init__(self, config: Config, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.config = config
        self.models = sorted(config.models, key=lambda m: m.id)
        self.providers = sorted(config.providers, key=lambda p: p.id)
        self.model_index: dict[str, int] = {}
        for index, model in enumerate(self.models):
            for name in (model.id, *model.aliases):
                self.model_index[name.lower()] = index
        self.provider_index: dict[str, int] = {}
        for index, provider in enumerate(self.providers):
            for name in (provider.id, *provider.aliases):
                self.provider_index[name.lower()] = index
        self.mock_index = self.provider_index.get(MOCK_PROVIDER)
        self.byok_offset = len(self.providers)
        """Added to a provider's index in the core's provider column of its BYOK rows."""
        self.byok_capable = np.array([_takes_byok(p) for p in self.providers], dtype=np.bool_)
        """Providers whose offers have BYOK twins: not the mock, and a key is needed."""
        self.deployments = self._deployments()
        self.is_byok = np.array([d.key_source == BYOK for d in self.deployments], dtype=np.bool_)
        self.twin_group = _twin_groups(self.deployments)
        """Row → one id shared by a deployment's platform row and its BYOK twin."""
        self.regions = sorted({d.region for d in self.deployments})
        self.region_index = {name: index for index, name in enumerate(self.regions)}
        self.usable_providers = np.array(
            [_has_credentials(p, env) for p in self.providers], dtype=np.bool_
        )
        self.table = self._table()

    def model(self, name: str) -> int | None:
        return self.model_index.get(name.lower())

    def provider(self, name: str) -> int | None:
        return self.provider_index.get(name.lower())

    def _deployments(self) -> list[Deployment]:
        pending: list[tuple[ModelConfig, ProviderConfig, OfferConfig, str]] = []
        first_offer: dict[str, OfferConfig] = {}  # model id → its first offer, for mock
        for offer in self.config.offers:
            model = self.models[self.model_index[offer.model.lower()]]
            provider = self.providers[self.provider_index[offer.provider.lower()]]
            first_offer.setdefault(model.id, offer)
            for region in offer.regions or provider.regions:
                pending.append((model, provider, offer, region))
        if self.mock_index is not None:
            mock = self.providers[self.mock_index]
            for model_id, offer in first_offer.items():
                model = self.models[self.model_index[model_id]]
                pending.extend((model, mock, offer, region) for region in mock.regions)
        pending.sort(key=lambda p: (p[0].id, p[1].id, p[3], p[2].provider_model_id or ""))
        rows: list[tuple[ModelConfig, ProviderConfig, OfferConfig, str, str]] = []
        for entry in pending:  # each BYOK twin right after its platform row
            rows.append((*entry, PLATFORM))
            if _takes_byok(entry[1]):
                rows.append((*entry, BYOK))
        return [
            Deployment(
                row=row,
                model=model,
                provider=provider,
                provider_model_id=(
                    model.id
                    if provider.id == MOCK_PROVIDER
                    else offer.provider_model_id or model.id
                ),
                region=region,
                key_source=key_source,
                offer=offer,
            )
            for row, (model, provider, offer, region, key_source) in enumerate(rows)
        ]

    def _table(self) -> core.CandidateTable:
        rows = self.deployments
        source = [d.offer for d in rows]
        caps = [sum(CAPABILITY_BITS[c] for c in set(o.capabilities)) for o in source]
        quality = np.array(
            [[d.model.quality.get(task, 0.5) for task in TASKS] for d in rows], dtype=np.float64
        ).reshape(len(rows), len(TASKS))
        return core.CandidateTable(
            model=np.array([self.model_index[d.model.id] for d in rows], dtype=np.int32),
            provider=np.array(
                [
                    self.provider_index[d.provider.id]
                    + (self.byok_offset if d.key_source == BYOK else 0)
                    for d in rows
                ],
                dtype=np.int32,
            ),
            region=np.array([self.region_index[d.region] for d in rows], dtype=np.int32),
            price_input=np.array([d.price.input for d in rows], dtype=np.float64),
            price_output=np.array([d.price.output for d in rows], dtype=np.float64),
            price_cached=np.array(
                [
                    d.price.cached_input if d.price.cached_input is not None else d.price.input
                    for d in rows
                ],
                dtype=np.float64,
            ),
            context_window=np.array([o.context_window for o in source], dtype=np.int64),
            max_output=np.array([o.max_output for o in source], dtype=np.int64),
            capabilities=np.array(caps, dtype=np.uint32),
            data_policy=np.array(
                [DATA_POLICY_LEVELS[d.provider.data_policy] for d in rows], dtype=np.uint8
            ),
            key_source=np.array([KEY_SOURCE_CODES[d.key_source] for d in rows], dtype=np.uint8),
            ttft_ms=np.array([o.ttft_ms for o in source], dtype=np.float64),
            throughput_tps=np.array([o.throughput_tps for o in source], dtype=np.float64),
            success_rate=np.ones(len(rows), dtype=np.float64),
            circuit_open=np.zeros(len(rows), dtype=np.bool_),
            quality=quality,
            # Tokens of each row's model family per counted (o200k) prompt token: routing
            # checks the context window and prices the prompt at this scale.
            token_ratio=np.array(
                [core.token_ratio(d.model.family) for d in rows], dtype=np.float64
            ),
        )


def _has_credentials(provider: ProviderConfig, env: Mapping[str, str]) -> bool:
    """A provider is a candidate only with a usable key (or none needed: mock, keyless)."""
    if provider.api_key_env is None:
        return True
    return bool(env.get(provider.api_key_env, "").strip())


def _takes_byok(provider: ProviderConfig) -> bool:
    """A provider a workspace can bring its own key for: it needs one, and it is not the mock."""
    return provider.api_key_env is not None and provider.id != MOCK_PROVIDER


def _twin_groups(rows: list[Deployment]) -> npt.NDArray[np.intp]:
    """Each row's pair id: the row index of the platform row that a BYOK twin copies."""
    groups = np.arange(len(rows), dtype=np.intp)
    platform: dict[tuple[str, str, str, str], int] = {}
    for d in rows:
        identity = (d.model.id, d.provider.id, d.region, d.provider_model_id)
        if d.key_source == PLATFORM:
            platform[identity] = d.row
        else:
            groups[d.row] = platform[identity]
    return groups
