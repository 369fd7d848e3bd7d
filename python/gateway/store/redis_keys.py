"""Where the Redis store keeps what: one place, so the layout is documented and testable.

Everything a workspace owns lives under ``rg:{ws:<workspace id>}:``. The braces are a Redis
Cluster hash tag: all of a workspace's keys hash to one slot, so a Lua script may touch any of
them (the ledger scripts derive counter and window keys from that prefix). What is looked up
across workspaces is kept in separate global keys, each read or written by a single-key
command: the key-hash index, the slug index, the workspace list and the meta hash.

Per workspace (``P`` = the prefix)::

    P workspace               string   the Workspace record (msgspec JSON)
    P keys / P keys:order     hash id → ApiKey JSON, zset id → creation sequence
    P budgets / …:order       the same for Budget records
    P pkeys / P pkeys:order   the same for ProviderKey records
    P seq                     string   counter behind every creation sequence
    P routing                 string   RoutingOptions JSON (the workspace's defaults)
    P policies                hash     name → RoutingOptions JSON
    P usage                   hash     request id → UsageRecord JSON
    P usage:time              zset     score 0, member ``created_at NUL seq(16) request id``
    P resv / P resv:exp       hash id → holds (JSON), zset id → expiry (ms)
    P wallet                  hash     balance, reserved, tier
    P budget:<counter>        hash     spend, reserved, alerts (bitmask of ALERT_LEVELS)
    P win:<limiter>           zset     reservation id → time (ms)
    P wtok:<limiter>          hash     reservation id → tokens
    P wsum:<limiter>          string   the window's token sum

Global: ``rg:meta`` (hash), ``rg:slug:<slug>`` (workspace id), ``rg:workspaces`` (zset id →
sequence) with ``rg:workspaces:seq``, ``rg:keyhash:<hash>`` (JSON ``[workspace id, key id]``).
"""

from __future__ import annotations

ROOT = "rg:"
META = ROOT + "meta"
WORKSPACES = ROOT + "workspaces"
WORKSPACES_SEQ = ROOT + "workspaces:seq"


def prefix(workspace_id: str) -> str:
    """``rg:{ws:<id>}:``: the hash tag that keeps one workspace's keys in one cluster slot."""
    return f"{ROOT}{{ws:{workspace_id}}}:"


def slug(name: str) -> str:
    return f"{ROOT}slug:{name}"


def key_hash(digest: str) -> str:
    return f"{ROOT}keyhash:{digest}"


class Collection:
    """An ordered set of records in one workspace: a hash by id and a zset by creation."""

    __slots__ = ("order", "records", "seq")

    def __init__(self, workspace_id: str, name: str) -> None:
        base = prefix(workspace_id)
        self.records = base + name
        self.order = base + name + ":order"
        self.seq = base + "seq"
