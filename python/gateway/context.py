"""Everything a worker process builds once at start and every handler reads: config, catalog,
router, store, key cache, provider clients, usage writer. Passed explicitly, never global.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from gateway.config import Config, Price
from gateway.edge.auth import KeyResolver, check_ip, derive_hash_key, extract_secret, require_scope
from gateway.edge.http import Request
from gateway.errors import InvalidRequest
from gateway.governance.admission import Admitter
from gateway.governance.alerts import AlertSender
from gateway.governance.rules import RulesCache
from gateway.governance.usage_writer import UsageWriter
from gateway.providers import ProviderPool
from gateway.providers.byok_crypto import ByokCipher
from gateway.providers.byok_keys import ByokKeyring
from gateway.providers.dispatch import Dispatcher
from gateway.routing import Router, RoutingTable
from gateway.routing.catalog import Catalog
from gateway.routing.health import HealthTracker
from gateway.routing.health_sync import HealthSync
from gateway.routing.planner import PromptFacts, RoutePlan
from gateway.routing.workspace import WorkspaceRouting, WorkspaceRoutingCache
from gateway.routing_options import DataPolicy, RoutingOptions
from gateway.secrets_held import hold, hold_for_request
from gateway.settings import Settings, load_master_key
from gateway.store import Store, open_store
from gateway.store.offloop import OffLoop
from gateway.store.read_through import MISSING
from gateway.store.records import ApiKey, Scope

SUPPORTED_FORMATS = frozenset({"openai", "anthropic", "gemini", "mock"})
STORE_READ_THREADS = 16
ADMIN_THREADS = 4
_UNSET = RoutingOptions()


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
    health: HealthTracker
    usage: UsageWriter
    hash_key: bytes
    baseline_model: str
    baseline_price: Price | None
    workspace_routing: WorkspaceRoutingCache
    rules: RulesCache
    health_sync: HealthSync
    admitter: Admitter
    byok: ByokKeyring
    offload: OffLoop
    """Store reads of the hot path's cache misses, off the event loop."""
    admin_offload: OffLoop
    """Management API handlers (synchronous store calls throughout), off the event loop."""

    @classmethod
    def build(cls, settings: Settings) -> Context:
        config = settings.load_config()
        catalog = Catalog(config)
        for index, provider in enumerate(catalog.providers):
            if provider.format not in SUPPORTED_FORMATS:
                catalog.usable_providers[index] = False
        store = open_store(
            settings.store_url(config), settings.data_dir, config.defaults.store_pool
        )
        master_key = load_master_key(settings.data_dir)
        hold(
            *(os.environ.get(p.api_key_env or "", "").strip() for p in config.providers),
            settings.admin_key,
            os.environ.get("ROUTEGATE_MASTER_KEY"),
            master_key.hex(),
        )
        hash_key = derive_hash_key(master_key)
        fail_open = config.defaults.store_unavailable == "open"
        pool = ProviderPool(catalog)
        health = HealthTracker(catalog, config.defaults.health)
        offload = OffLoop(workers=STORE_READ_THREADS, name="routegate-store")
        byok = ByokKeyring(store, ByokCipher(master_key), stale_ok=fail_open, offload=offload)
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
            router=Router(RoutingTable(catalog), health, byok),
            store=store,
            keys=KeyResolver(hash_key, store.get_key_by_hash, stale_ok=fail_open, offload=offload),
            pool=pool,
            dispatcher=Dispatcher(pool, health, byok, config.defaults.failover),
            health=health,
            usage=UsageWriter(
                settings.data_dir / "spool",
                store.commit,
                AlertSender(
                    store,
                    master_key,
                    allow_private=config.defaults.webhooks.allow_private_targets,
                ).send,
            ),
            hash_key=hash_key,
            baseline_model=baseline.id,
            baseline_price=first_party,
            workspace_routing=WorkspaceRoutingCache(store, stale_ok=fail_open, offload=offload),
            rules=RulesCache(store, stale_ok=fail_open, offload=offload),
            health_sync=HealthSync(store, health, catalog),
            admitter=Admitter(store, fail_open=fail_open),
            byok=byok,
            offload=offload,
            admin_offload=OffLoop(workers=ADMIN_THREADS, name="routegate-admin"),
        )

    async def authenticate(self, request: Request, scope: Scope) -> ApiKey:
        """The caller's key, if it may be used from the request's address (SPEC §7 IP
        allow-list, 403 ``ip_not_allowed``) and carries ``scope``."""
        secret = extract_secret(request.headers)
        key = self.keys.resolve_cached(secret)
        if key is MISSING:
            key = await self.keys.aresolve(secret)
        return _usable_here(key, secret, request, scope)

    def authenticate_blocking(self, request: Request, scope: Scope) -> ApiKey:
        """``authenticate`` for the management handlers' helpers, which run off the event loop
        (``app.ON_LOOP``): a cache miss reads the store in this thread."""
        secret = extract_secret(request.headers)
        return _usable_here(self.keys.resolve(secret), secret, request, scope)

    async def routing_layers(
        self, key: ApiKey, policy_header: str | None
    ) -> list[tuple[str | None, RoutingOptions]]:
        """SPEC §2 precedence below the model expression, lowest first: config
        ``defaults.routing`` → the key's workspace routing defaults → the key's default policy
        → ``X-Routing-Policy``. Workspace settings come from a per-process cache (≤ 1 s old)."""
        workspace = await self.workspace_routing.aget(key.workspace_id)
        return self._layers(workspace, key, policy_header)

    def _layers(
        self, workspace: WorkspaceRouting, key: ApiKey, policy_header: str | None
    ) -> list[tuple[str | None, RoutingOptions]]:
        layers: list[tuple[str | None, RoutingOptions]] = [(None, self.config.defaults.routing)]
        if workspace.defaults != _UNSET:
            layers.append((None, workspace.defaults))
        if key.default_policy:
            named = self._named(workspace, key.default_policy)
            if named is None:
                raise InvalidRequest(
                    f"This key's default routing policy '{key.default_policy}' does not exist."
                )
            layers.append((key.default_policy, named))
        if policy_header is not None:
            named = self._named(workspace, policy_header)
            if named is None:
                raise InvalidRequest(
                    f"Unknown routing policy '{policy_header}'.", param="X-Routing-Policy"
                )
            layers.append((policy_header, named))
        return layers

    async def data_policy_floor(self, workspace_id: str) -> DataPolicy | None:
        """The workspace default's ``data_policy``: a floor the request may only tighten
        (SPEC §2, "the stricter of request and workspace wins"); None when unset."""
        return (await self.workspace_routing.aget(workspace_id)).defaults.data_policy

    async def byok_providers(self, key: ApiKey) -> frozenset[str]:
        """Providers the key's workspace holds a usable key of its own for, read fresh."""
        if key.mode == "live":
            await self.byok.refresh(key.workspace_id)
        return self.router.byok_providers(key)

    async def plan(
        self,
        request: Request,
        key: ApiKey,
        *,
        expressions: list[str],
        analysis: PromptFacts,
        request_options: RoutingOptions | None,
        started: float,
    ) -> RoutePlan:
        """The routing plan of one inference request: every per-workspace setting it needs is
        read (off the event loop on a cache miss), then the router decides in one call."""
        workspace = self.workspace_routing.fresh(key.workspace_id)
        if workspace is MISSING:
            workspace = await self.workspace_routing.aget(key.workspace_id)
        layers = self._layers(workspace, key, request.headers.get("x-routing-policy"))
        if key.mode == "live" and not self.byok.is_fresh(key.workspace_id):
            await self.byok.refresh(key.workspace_id)
        return self.router.plan(
            expressions=expressions,
            analysis=analysis,
            key=key,
            layers=layers,
            request_options=request_options,
            data_policy_floor=workspace.defaults.data_policy,
            started=started,
        )

    def _named(self, workspace: WorkspaceRouting, name: str) -> RoutingOptions | None:
        own = workspace.policies.get(name)
        return own if own is not None else self.config.policies.get(name)

    async def aclose(self) -> None:
        await self.pool.aclose()
        self.usage.close()
        self.offload.close()
        self.admin_offload.close()
        self.store.close()


def _usable_here(key: ApiKey, secret: str, request: Request, scope: Scope) -> ApiKey:
    """The key, if it may be used from the request's address and carries ``scope``; its
    secret is held for the request (masked in any upstream message, ``secrets_held``)."""
    hold_for_request(secret)
    check_ip(key, request.client_ip)
    require_scope(key, scope)
    return key
