"""Per-workspace routing settings (SPEC §2, §8) as the hot path reads them: cached per process.

A workspace's routing defaults and named policies live in the store; every chat request needs
them to build its precedence chain, so each process keeps them for ``CACHE_TTL_S`` (like the
key cache in ``auth``). A write through this process's management API drops the entry at once;
other processes see it within the TTL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.routing_options import RoutingOptions
from gateway.store import Store
from gateway.store.read_through import CACHE_TTL_S, Offload, ReadThroughCache


@dataclass(frozen=True, slots=True)
class WorkspaceRouting:
    """One workspace's routing settings at one moment."""

    defaults: RoutingOptions
    policies: Mapping[str, RoutingOptions]  # the workspace's own; config policies are separate


_NOTHING = WorkspaceRouting(defaults=RoutingOptions(), policies={})


class WorkspaceRoutingCache(ReadThroughCache[str, WorkspaceRouting]):
    """workspace id → ``WorkspaceRouting``, read through from the store with a short TTL."""

    def __init__(
        self,
        store: Store,
        ttl_s: float = CACHE_TTL_S,
        *,
        stale_ok: bool = False,
        offload: Offload[WorkspaceRouting] | None = None,
    ) -> None:
        def load(workspace_id: str) -> WorkspaceRouting:
            return WorkspaceRouting(
                defaults=store.get_routing_defaults(workspace_id),
                policies=store.list_policies(workspace_id),
            )

        super().__init__(load, fallback=_NOTHING, stale_ok=stale_ok, ttl_s=ttl_s, offload=offload)
