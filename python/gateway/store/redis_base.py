"""The Redis store's connections: one sync client, and one asyncio client per event loop.

``redis://`` / ``rediss://`` name one server; ``redis+cluster://`` / ``rediss+cluster://`` name
one or more nodes of a Redis Cluster (``redis_url``), and the clients are redis-py's cluster
clients, which discover the other nodes and follow MOVED/ASK redirects. ``make_client`` and
``make_async_client`` are the one place either kind is built.

Timeouts are short (connect 1 s, read 2 s) so that a gateway whose Redis is gone answers with
its configured fail mode quickly instead of hanging its requests. Commands are never retried
by the client: a retry after a lost reply would apply a non-idempotent write twice (a credit
top-up, a create). A restarted server is reconnected to anyway: the pool replaces a connection
the server closed when it is next checked out, and one idle for longer than the health-check
interval is PINGed first.

Connections are bounded per process (``defaults.store_pool``). On the asyncio side a request
that finds all ``max_connections`` in use waits for one, up to ``wait_timeout_s``; only then is
it refused, as ``StoreBusy``: a saturated pool is back-pressure, never an outage. The sync
client is used from a bounded number of threads (``offloop``), which bounds its connections.

Errors reach callers by what they mean (``classify``): a refused or lost connection, a timeout
or a failover in progress is ``StoreUnavailable`` (the configured fail mode applies); anything
else the server said (a script error, a wrong type) is ``StoreFault``, a 500 that never turns
``open`` mode on. Their text names the server by host and port only, never the credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript, Script
from redis.exceptions import (
    ClusterError,
    InvalidResponse,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from gateway.store.ledger import StoreBusy, StoreFault, StoreUnavailable
from gateway.store.redis_url import RedisUrl, parse_redis_url

CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 2.0
HEALTH_CHECK_S = 2
MAX_CONNECTIONS = 64
WAIT_TIMEOUT_S = 5.0

OUTAGE: tuple[type[Exception], ...] = (
    RedisConnectionError,  # refused, reset, closed; also BusyLoadingError, AuthenticationError
    RedisTimeoutError,
    InvalidResponse,  # a connection cut mid-reply
    ClusterError,  # CLUSTERDOWN, MASTERDOWN: a failover in progress
    TryAgainError,
    ReadOnlyError,  # a demoted master during a failover
    OutOfMemoryError,  # the server refuses every write
    RedisClusterException,  # no node reachable for a slot
)
"""What makes the store *unavailable*: the only errors that apply ``store_unavailable``."""


def classify(error: Exception, where: str, scrub: Callable[[str], str]) -> Exception:
    """The store exception a Redis error stands for (see the module docstring)."""
    detail = f"{type(error).__name__}: {scrub(str(error)) or 'no detail'}"
    if isinstance(error, MaxConnectionsError):
        return StoreBusy(f"redis store {where} has no free connection: {detail}")
    if isinstance(error, OUTAGE):
        return StoreUnavailable(f"redis store {where} unavailable: {detail}")
    return StoreFault(f"redis store {where} refused a command: {detail}")


SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
ERRORS = (RedisError, RedisClusterException)
"""What redis-py raises: its cluster client's own exceptions do not derive from RedisError."""


def text(value: object) -> str:
    """A reply as text: the clients return bytes (``decode_responses`` is off)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass
class _LoopClient:
    client: AsyncClient
    slots: asyncio.Semaphore
    scripts: dict[str, AsyncScript] = field(default_factory=dict)
    ready: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def describe(url: str) -> tuple[str, tuple[str, ...]]:
    """``host:port/db`` for messages, and the URL's secrets to scrub from any error text."""
    if "+cluster://" in url:
        try:
            parsed = parse_redis_url(url)
        except ValueError:
            return "cluster ?", (url,)
        raw_user = url.partition("://")[2].rpartition("@")[0]  # as written (percent-encoded)
        raw = (*raw_user.partition(":")[::2], parsed.password, parsed.username, url)
        secrets = tuple(s for s in raw if s)
        nodes = ",".join(f"{host}:{port}" for host, port in parsed.nodes)
        return f"cluster {nodes}", secrets
    parts = urlsplit(url)
    secrets = tuple(
        s for s in (parts.password, unquote(parts.password or ""), parts.username, url) if s
    )
    where = f"{parts.hostname or '?'}:{parts.port or 6379}{parts.path or '/0'}"
    return where, secrets


def _cluster_options(parsed: RedisUrl) -> dict[str, Any]:
    return {
        "username": parsed.username,
        "password": parsed.password,
        "ssl": parsed.tls,
        # Every node down or unknown is an error at the first command, not a hang.
        "require_full_coverage": True,
    }


def make_client(url: str, options: dict[str, Any]) -> SyncClient:
    """The sync client a URL names. A cluster client reads the cluster's layout from the
    first node that answers, so it connects here: an unreachable cluster is ``RedisError``."""
    parsed = parse_redis_url(url)
    if not parsed.cluster:
        return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)
    nodes = [redis.cluster.ClusterNode(host, port) for host, port in parsed.nodes]  # type: ignore[no-untyped-call]
    return redis.cluster.RedisCluster(
        startup_nodes=nodes, retry=Retry(NoBackoff(), 0), **_cluster_options(parsed), **options
    )


def make_async_client(url: str, options: dict[str, Any], max_connections: int) -> AsyncClient:
    """The asyncio client a URL names (it connects at its first command), with at most
    ``max_connections`` (per node, on a cluster; callers wait for a free one before a call)."""
    parsed = parse_redis_url(url)
    if not parsed.cluster:
        return redis.asyncio.Redis.from_url(
            url, retry=AsyncRetry(NoBackoff(), 0), max_connections=max_connections, **options
        )
    nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in parsed.nodes]
    return redis.asyncio.cluster.RedisCluster(
        startup_nodes=nodes,
        retry=AsyncRetry(NoBackoff(), 0),
        max_connections=max_connections,
        **_cluster_options(parsed),
        **options,
    )


class RedisBase:
    """Clients, scripts and error mapping shared by the store's mixins."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = MAX_CONNECTIONS,
        wait_timeout_s: float = WAIT_TIMEOUT_S,
    ) -> None:
        self._where, self._secrets = describe(url)
        self._url = url
        self._max_connections = max_connections
        self._wait_timeout_s = wait_timeout_s
        self.cluster = url.startswith(("redis+cluster://", "rediss+cluster://"))
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
            parse_redis_url(url)
            self._sync: SyncClient | None = None if self.cluster else make_client(url, options)
        except (ValueError, RedisError) as error:
            raise ValueError(f"invalid redis store URL: {self._scrub(str(error))}") from None
        self._scripts: dict[str, Script] = {}
        self._aclients: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._alock = threading.Lock()

    @property
    def _client(self) -> SyncClient:
        """Built at first use for a cluster (building it connects), so a gateway whose
        cluster is down starts and applies its fail mode like one whose server is down."""
        client = self._sync
        if client is None:
            with self._alock:
                if self._sync is None:
                    try:
                        self._sync = make_client(self._url, self._options)
                    except ERRORS as error:
                        raise classify(error, self._where, self._scrub) from None
                client = self._sync
        return client

    # --- errors -----------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn any Redis error into the store's own (its cause dropped: no URL leaks)."""
        try:
            yield
        except ERRORS as error:
            raise classify(error, self._where, self._scrub) from None

    def _script(self, name: str, source: str) -> Script:
        """Registered once: later calls are EVALSHA, loading the source again on NOSCRIPT."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._client.register_script(source)
        return script

    # --- the asyncio clients ------------------------------------------------------------

    def _loop_client(self) -> _LoopClient:
        """The running loop's client: asyncio connections belong to the loop that made them,
        so each event loop (one per granian worker, usually) gets its own."""
        loop = asyncio.get_running_loop()
        entry = self._aclients.get(loop)
        if entry is None:
            with self._alock:
                for gone in [other for other in self._aclients if other.is_closed()]:
                    del self._aclients[gone]
                client = make_async_client(self._url, self._options, self._max_connections)
                entry = _LoopClient(client=client, slots=asyncio.Semaphore(self._max_connections))
                self._aclients[loop] = entry
        return entry

    async def _run_script(self, name: str, source: str, keys: list[str], args: list[str]) -> Any:
        """One script call on the loop's client, after waiting (bounded) for a connection."""
        entry = self._loop_client()
        try:
            await asyncio.wait_for(entry.slots.acquire(), self._wait_timeout_s)
        except asyncio.TimeoutError:
            raise StoreBusy(
                f"redis store {self._where}: all {self._max_connections} connections of this "
                f"process stayed busy for {self._wait_timeout_s:g} s "
                "(defaults.store_pool.max_connections)"
            ) from None
        try:
            with self._guard():
                await self._async_ready()
                script = entry.scripts.get(name)
                if script is None:
                    script = entry.scripts[name] = entry.client.register_script(source)
                return await script(keys=keys, args=args)
        finally:
            entry.slots.release()

    async def _async_ready(self) -> None:
        """A cluster client reads the cluster's layout once, before its first commands: left
        to a burst of first commands, redis-py re-initialises it concurrently and they close
        each other's connections (``Connection closed by server``)."""
        entry = self._loop_client()
        if entry.ready:
            return
        async with entry.lock:
            if not entry.ready:
                if isinstance(entry.client, redis.asyncio.cluster.RedisCluster):
                    await entry.client.initialize()
                entry.ready = True

    # --- lifecycle ----------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except (StoreUnavailable, StoreFault, StoreBusy, *ERRORS):
            return False

    def close(self) -> None:
        with self._alock:
            clients, self._aclients = self._aclients, {}
        for loop, entry in clients.items():
            _close_on(loop, entry.client)
        if self._sync is not None:
            self._sync.close()


def _close_on(loop: asyncio.AbstractEventLoop, client: AsyncClient) -> None:
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
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            loop.create_task(client.aclose())
            return
        pool = client.connection_pool
        connections: list[Any] = [*pool._available_connections, *pool._in_use_connections]
        for conn in connections:
            conn._close()
