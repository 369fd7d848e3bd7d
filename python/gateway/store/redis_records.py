"""The Redis store's records: workspaces, keys, budgets, provider keys, routing settings.

Records are msgspec JSON, as in the SQLite store. A workspace's collections are an id → JSON
hash beside a zset of creation sequence numbers, so lists come back oldest first like SQLite's
``ORDER BY rowid``; listing, creating, replacing and deleting are small scripts, each atomic
on one workspace's slot (so each is one call on a Redis Cluster too). Key lookups by hash go
through a global pointer ``rg:keyhash:<hash>`` → ``[workspace id, key id]``: the record
itself lives only in its workspace, so revoking it there is seen by the very next lookup.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
import redis

from gateway.routing_options import RoutingOptions
from gateway.store import redis_keys as keys
from gateway.store.records import ApiKey, Budget, ProviderKey, Workspace
from gateway.store.redis_base import RedisBase, text
from gateway.store.redis_lua import DELETE, INSERT, LIST, REPLACE

R = TypeVar("R", bound=msgspec.Struct)
_encoder = msgspec.json.Encoder()
_options = msgspec.json.Decoder(RoutingOptions)
_pointer = msgspec.json.Decoder(tuple[str, str])


class DuplicateRecord(ValueError):
    """A create whose id (or slug, or key hash) is taken; nothing was written."""


class RedisRecords(RedisBase):
    """CRUD on JSON records; every method a single atomic step on one slot, or a read."""

    # --- ordered collections ------------------------------------------------------------

    def _insert(self, where: keys.Collection, record_id: str, record: msgspec.Struct) -> bool:
        return bool(
            self._script("insert", INSERT)(
                keys=[where.records, where.order, where.seq],
                args=[record_id, _encoder.encode(record)],
            )
        )

    def _create(self, where: keys.Collection, record_id: str, record: msgspec.Struct) -> None:
        with self._guard():
            if not self._insert(where, record_id, record):
                raise DuplicateRecord(f"a record with id {record_id!r} exists already")

    def _list(self, where: keys.Collection, kind: type[R]) -> list[R]:
        """One script (a consistent view on any topology: no MULTI across a cluster client)."""
        with self._guard():
            raws = self._script("list", LIST)(keys=[where.records, where.order])
        return [msgspec.json.decode(raw, type=kind) for raw in raws]

    def _get(self, where: keys.Collection, record_id: str, kind: type[R]) -> R | None:
        with self._guard():
            raw = self._client.hget(where.records, record_id)
        return None if raw is None else msgspec.json.decode(raw, type=kind)

    def _replace(self, where: keys.Collection, record_id: str, record: msgspec.Struct) -> bool:
        with self._guard():
            return bool(
                self._script("replace", REPLACE)(
                    keys=[where.records], args=[record_id, _encoder.encode(record)]
                )
            )

    def _delete(self, where: keys.Collection, record_id: str) -> bool:
        with self._guard():
            return bool(
                self._script("delete", DELETE)(keys=[where.records, where.order], args=[record_id])
            )

    # --- meta ---------------------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        with self._guard():
            raw = self._client.hget(keys.META, name)
        return None if raw is None else text(raw)

    def set_meta(self, name: str, value: str) -> None:
        with self._guard():
            self._client.hset(keys.META, name, value)

    # --- workspaces ---------------------------------------------------------------------

    def create_workspace(self, workspace: Workspace) -> None:
        """Claim the slug, then the id; the workspace is listed only once both are its."""
        record = keys.prefix(workspace.id) + "workspace"
        with self._guard():
            if not self._client.set(keys.slug(workspace.slug), workspace.id, nx=True):
                raise DuplicateRecord(f"the slug {workspace.slug!r} is taken")
            if not self._client.set(record, _encoder.encode(workspace), nx=True):
                self._client.delete(keys.slug(workspace.slug))
                raise DuplicateRecord(f"a workspace with id {workspace.id!r} exists already")
            self._client.zadd(
                keys.WORKSPACES, {workspace.id: self._client.incr(keys.WORKSPACES_SEQ)}
            )

    def get_workspace(self, workspace_id: str) -> Workspace | None:
        with self._guard():
            raw = self._client.get(keys.prefix(workspace_id) + "workspace")
        return None if raw is None else msgspec.json.decode(raw, type=Workspace)

    def get_workspace_by_slug(self, slug: str) -> Workspace | None:
        with self._guard():
            workspace_id = self._client.get(keys.slug(slug))
        return None if workspace_id is None else self.get_workspace(text(workspace_id))

    def list_workspaces(self) -> list[Workspace]:
        with self._guard():
            ids = self._client.zrange(keys.WORKSPACES, 0, -1)
            pipe = self._client.pipeline(transaction=False)
            for workspace_id in ids:
                pipe.get(keys.prefix(text(workspace_id)) + "workspace")
            raws = pipe.execute() if ids else []
        return [msgspec.json.decode(raw, type=Workspace) for raw in raws if raw is not None]

    def update_workspace(self, workspace: Workspace) -> None:
        """Replace the record if it exists; the slug index is never changed (as in SQLite)."""
        with self._guard():
            self._client.set(
                keys.prefix(workspace.id) + "workspace", _encoder.encode(workspace), xx=True
            )

    # --- gateway keys -------------------------------------------------------------------

    def create_key(self, key: ApiKey) -> None:
        index = keys.key_hash(key.key_hash)
        pointer = _encoder.encode((key.workspace_id, key.id))
        with self._guard():
            if not self._client.set(index, pointer, nx=True):
                raise DuplicateRecord("a key with this hash exists already")
            if not self._insert(keys.Collection(key.workspace_id, "keys"), key.id, key):
                self._client.delete(index)
                raise DuplicateRecord(f"a key with id {key.id!r} exists already")

    def get_key_by_hash(self, key_hash: str) -> ApiKey | None:
        with self._guard():
            raw = self._client.get(keys.key_hash(key_hash))
        if raw is None:
            return None
        workspace_id, key_id = _pointer.decode(raw)
        return self.get_key(workspace_id, key_id)

    def list_keys(self, workspace_id: str) -> list[ApiKey]:
        return self._list(keys.Collection(workspace_id, "keys"), ApiKey)

    def get_key(self, workspace_id: str, key_id: str) -> ApiKey | None:
        return self._get(keys.Collection(workspace_id, "keys"), key_id, ApiKey)

    def revoke_key(self, workspace_id: str, key_id: str) -> ApiKey | None:
        return self._rewrite_key(workspace_id, key_id, None)

    def update_key(self, key: ApiKey) -> None:
        """Replace the key; revocation is final (a concurrent revoke wins), as in SQLite.
        The hash index is left alone, as SQLite leaves its ``key_hash`` column."""
        self._rewrite_key(key.workspace_id, key.id, key)

    def _rewrite_key(self, workspace_id: str, key_id: str, new: ApiKey | None) -> ApiKey | None:
        """Optimistic read-modify-write (WATCH): retried if the key changes meanwhile."""
        where = keys.Collection(workspace_id, "keys")

        written: list[ApiKey | None] = [None]

        def rewrite(pipe: redis.client.Pipeline) -> None:
            raw = pipe.hget(where.records, key_id)
            written[0] = None
            if raw is None:
                return
            stored = msgspec.json.decode(raw, type=ApiKey)
            record = stored if new is None else new
            if new is None or stored.status == "revoked":
                record = msgspec.structs.replace(record, status="revoked")
            pipe.multi()
            pipe.hset(where.records, key_id, _encoder.encode(record))
            written[0] = record

        with self._guard():
            self._client.transaction(rewrite, where.records)
        return written[0]

    # --- budgets ------------------------------------------------------------------------

    def create_budget(self, budget: Budget) -> None:
        self._create(keys.Collection(budget.workspace_id, "budgets"), budget.id, budget)

    def list_budgets(self, workspace_id: str) -> list[Budget]:
        return self._list(keys.Collection(workspace_id, "budgets"), Budget)

    def get_budget(self, workspace_id: str, budget_id: str) -> Budget | None:
        return self._get(keys.Collection(workspace_id, "budgets"), budget_id, Budget)

    def update_budget(self, budget: Budget) -> None:
        self._replace(keys.Collection(budget.workspace_id, "budgets"), budget.id, budget)

    def delete_budget(self, workspace_id: str, budget_id: str) -> bool:
        return self._delete(keys.Collection(workspace_id, "budgets"), budget_id)

    # --- provider keys (BYOK) -----------------------------------------------------------

    def create_provider_key(self, key: ProviderKey) -> None:
        self._create(keys.Collection(key.workspace_id, "pkeys"), key.id, key)

    def list_provider_keys(self, workspace_id: str) -> list[ProviderKey]:
        return self._list(keys.Collection(workspace_id, "pkeys"), ProviderKey)

    def get_provider_key(self, workspace_id: str, key_id: str) -> ProviderKey | None:
        return self._get(keys.Collection(workspace_id, "pkeys"), key_id, ProviderKey)

    def update_provider_key(self, key: ProviderKey) -> None:
        self._replace(keys.Collection(key.workspace_id, "pkeys"), key.id, key)

    def delete_provider_key(self, workspace_id: str, key_id: str) -> bool:
        return self._delete(keys.Collection(workspace_id, "pkeys"), key_id)

    # --- routing defaults and policies --------------------------------------------------

    def get_routing_defaults(self, workspace_id: str) -> RoutingOptions:
        with self._guard():
            raw = self._client.get(keys.prefix(workspace_id) + "routing")
        return RoutingOptions() if raw is None else _options.decode(raw)

    def set_routing_defaults(self, workspace_id: str, options: RoutingOptions) -> None:
        with self._guard():
            self._client.set(keys.prefix(workspace_id) + "routing", _encoder.encode(options))

    def get_policy(self, workspace_id: str, name: str) -> RoutingOptions | None:
        with self._guard():
            raw = self._client.hget(keys.prefix(workspace_id) + "policies", name)
        return None if raw is None else _options.decode(raw)

    def list_policies(self, workspace_id: str) -> dict[str, RoutingOptions]:
        """In name order (SQLite's ``ORDER BY name`` compares the same code points)."""
        with self._guard():
            raws = self._client.hgetall(keys.prefix(workspace_id) + "policies")
        named = {text(name): _options.decode(raw) for name, raw in raws.items()}
        return dict(sorted(named.items()))

    def put_policy(self, workspace_id: str, name: str, options: RoutingOptions) -> None:
        with self._guard():
            self._client.hset(
                keys.prefix(workspace_id) + "policies", name, _encoder.encode(options)
            )

    def delete_policy(self, workspace_id: str, name: str) -> bool:
        with self._guard():
            return bool(self._client.hdel(keys.prefix(workspace_id) + "policies", name))
