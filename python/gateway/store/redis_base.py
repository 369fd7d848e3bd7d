"""The Redis store's connections: one sync client, and one asyncio client per event loop.

Timeouts are short (connect 1 s, read 2 s) so that a gateway whose Redis is gone answers with
its configured fail mode quickly instead of hanging its requests. Commands are never retried
by the client: a retry after a lost reply would apply a non-idempotent write twice (a credit
top-up, a create). A restarted server is reconnected to anyway: the pool replaces a connection
the server closed when it is next checked out, and one idle for longer than the health-check
interval is PINGed first. Every Redis error reaches callers as ``StoreUnavailable`` whose text
names the server by host and port only, never by the URL's credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript, Script
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from gateway.store.ledger import StoreUnavailable

CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 2.0
HEALTH_CHECK_S = 2


def text(value: object) -> str:
    """A reply as text: the clients return bytes (``decode_responses`` is off)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass
class _LoopClient:
    client: redis.asyncio.Redis
    scripts: dict[str, AsyncScript] = field(default_factory=dict)


def describe(url: str) -> tuple[str, tuple[str, ...]]:
    """``host:port/db`` for messages, and the URL's secrets to scrub from any error text."""
    parts = urlsplit(url)
    secrets = tuple(
        s for s in (parts.password, unquote(parts.password or ""), parts.username, url) if s
    )
    where = f"{parts.hostname or '?'}:{parts.port or 6379}{parts.path or '/0'}"
    return where, secrets


class RedisBase:
    """Clients, scripts and error mapping shared by the store's mixins."""

    def __init__(self, url: str) -> None:
        self._where, self._secrets = describe(url)
        self._url = url
        options: dict[str, Any] = {
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": READ_TIMEOUT_S,
            "health_check_interval": HEALTH_CHECK_S,
            # Off: with it on ("auto", the default) the pool skips its check for a socket
            # the server closed, so the first command after a restart would fail.
            "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        }
        self._options = options
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url, retry=Retry(NoBackoff(), 0), **options
            )
        except (ValueError, RedisError) as error:
            raise ValueError(f"invalid redis store URL: {self._scrub(str(error))}") from None
        self._scripts: dict[str, Script] = {}
        self._aclients: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._alock = threading.Lock()

    # --- errors -----------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def unavailable(self, error: RedisError) -> StoreUnavailable:
        detail = self._scrub(str(error)) or "no detail"
        return StoreUnavailable(
            f"redis store {self._where} unavailable: {type(error).__name__}: {detail}"
        )

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn any Redis error into ``StoreUnavailable`` (its cause dropped: no URL leaks)."""
        try:
            yield
        except RedisError as error:
            raise self.unavailable(error) from None

    def _script(self, name: str, source: str) -> Script:
        """Registered once: later calls are EVALSHA, loading the source again on NOSCRIPT."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._client.register_script(source)
        return script

    # --- the asyncio clients ------------------------------------------------------------

    def _async_script(self, name: str, source: str) -> AsyncScript:
        """The running loop's script: asyncio connections belong to the loop that made them,
        so each event loop (one per granian worker, usually) gets its own client."""
        loop = asyncio.get_running_loop()
        entry = self._aclients.get(loop)
        if entry is None:
            with self._alock:
                for gone in [other for other in self._aclients if other.is_closed()]:
                    del self._aclients[gone]
                client = redis.asyncio.Redis.from_url(
                    self._url, retry=AsyncRetry(NoBackoff(), 0), **self._options
                )
                entry = self._aclients[loop] = _LoopClient(client=client)
        script = entry.scripts.get(name)
        if script is None:
            script = entry.scripts[name] = entry.client.register_script(source)
        return script

    # --- lifecycle ----------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except RedisError:
            return False

    def close(self) -> None:
        with self._alock:
            clients, self._aclients = self._aclients, {}
        for loop, entry in clients.items():
            _close_on(loop, entry.client)
        self._client.close()


def _close_on(loop: asyncio.AbstractEventLoop, client: redis.asyncio.Redis) -> None:
    """Close an asyncio client in the way its loop allows from here."""
    if loop.is_closed():
        return
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is None and not loop.is_running():
        loop.run_until_complete(client.aclose())
    elif running is not loop and loop.is_running():
        asyncio.run_coroutine_threadsafe(client.aclose(), loop)  # the loop's own thread
    else:
        # Inside the client's loop (a lifespan shutdown calls the sync ``close()``): the close
        # cannot be awaited here, so shut the sockets without waiting.
        pool = client.connection_pool
        connections: list[Any] = [*pool._available_connections, *pool._in_use_connections]
        for conn in connections:
            conn._close()
