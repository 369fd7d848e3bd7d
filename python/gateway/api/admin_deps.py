"""What the management operations need, so the HTTP handlers and the CLI share them.

The handlers pass the worker's ``Context``; ``routegate keys|budgets|usage`` without ``--url``
passes a ``LocalAdmin`` opened on the configured store. Either way the same functions
validate, write and build the views, so the command line and the API cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.config import Config
from gateway.store import Store


class AdminDeps(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def hash_key(self) -> bytes: ...

    @property
    def config(self) -> Config: ...


@dataclass(frozen=True)
class LocalAdmin:
    """The store, key-hashing key and config of a gateway, opened outside any gateway process."""

    store: Store
    hash_key: bytes
    config: Config


def provider_id(config: Config, name: str) -> str | None:
    """A configured provider's id from its id or an alias (case-insensitive), as the router
    names it; None when no provider has that name."""
    wanted = name.lower()
    for provider in config.providers:
        if provider.id.lower() == wanted or wanted in (a.lower() for a in provider.aliases):
            return provider.id
    return None
