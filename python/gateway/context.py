"""Everything a worker process builds once at start and every handler reads: config, catalog,
router, store, key cache, provider clients, usage writer. Passed explicitly, never global.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.auth import KeyResolver, derive_hash_key, extract_secret, require_scope
from gateway.catalog import Catalog
from gateway.config import Config, Price
from gateway.dispatch import Dispatcher
from gateway.errors import InvalidRequest
from gateway.metering import UsageWriter
from gateway.providers import ProviderPool
from gateway.routing import Router
from gateway.routing_options import RoutingOptions
from gateway.settings import Settings, load_master_key
from gateway.store import Store, open_store
from gateway.store.records import ApiKey, Scope

SUPPORTED_FORMATS = frozenset({"openai", "mock"})


@dataclass
class Context:
    settings: Settings
    config: Config
    catalog: Catalog
    router: Router
    store: Store
    keys: KeyResolver
    pool: ProviderPool
    dispatcher: Dispatcher
    usage: UsageWriter
    hash_key: bytes
    baseline_model: str
    baseline_price: Price | None

    @classmethod
    def build(cls, settings: Settings) -> Context:
        config = settings.load_config()
        catalog = Catalog(config)
        for index, provider in enumerate(catalog.providers):
            if provider.format not in SUPPORTED_FORMATS:
                catalog.usable_providers[index] = False
        store = open_store(settings.store_url(config), settings.data_dir)
        hash_key = derive_hash_key(load_master_key(settings.data_dir))
        pool = ProviderPool(catalog)
        baseline = catalog.models[catalog.model_index[config.defaults.baseline_model.lower()]]
        first_party = next(
            (
                d.price
                for d in catalog.deployments
                if d.model.id == baseline.id and d.provider.id != "mock"
            ),
            None,
        )
        return cls(
            settings=settings,
            config=config,
            catalog=catalog,
            router=Router(catalog),
            store=store,
            keys=KeyResolver(hash_key, store.get_key_by_hash),
            pool=pool,
            dispatcher=Dispatcher(pool),
            usage=UsageWriter(store.insert_usage),
            hash_key=hash_key,
            baseline_model=baseline.id,
            baseline_price=first_party,
        )

    def authenticate(self, headers: Mapping[str, str], scope: Scope) -> ApiKey:
        key = self.keys.resolve(extract_secret(headers))
        require_scope(key, scope)
        return key

    def routing_layers(
        self, key: ApiKey, policy_header: str | None
    ) -> list[tuple[str | None, RoutingOptions]]:
        """SPEC §2 precedence below the model expression, lowest first."""
        layers: list[tuple[str | None, RoutingOptions]] = [(None, self.config.defaults.routing)]
        if key.default_policy:
            layers.append((key.default_policy, self._policy(key.default_policy, None)))
        if policy_header is not None:
            layers.append((policy_header, self._policy(policy_header, "X-Routing-Policy")))
        return layers

    def _policy(self, name: str, param: str | None) -> RoutingOptions:
        policy = self.config.policies.get(name)
        if policy is None:
            raise InvalidRequest(f"Unknown routing policy '{name}'.", param=param)
        return policy

    async def aclose(self) -> None:
        await self.pool.aclose()
        self.usage.close()
        self.store.close()
