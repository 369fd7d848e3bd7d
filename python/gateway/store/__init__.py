"""State backends behind one Protocol: embedded SQLite, or a shared Redis."""

from __future__ import annotations

from pathlib import Path

from gateway.config import StorePool
from gateway.store.base import Store
from gateway.store.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "open_store"]


def open_store(url: str, data_dir: Path, pool: StorePool | None = None) -> Store:
    """Open the store a ``store:`` URL names: ``sqlite:///path`` (relative to ``data_dir``),
    or ``redis://`` / ``rediss://`` (``[user:password@]host[:port][/db]``), or a Redis Cluster:
    ``redis+cluster://`` / ``rediss+cluster://`` (``[user:password@]host:port[,host:port…]``),
    with ``pool``'s connection bounds (``defaults.store_pool``)."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").removeprefix("/") or "routegate.db"
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        resolved = Path(path) if Path(path).is_absolute() else data_dir / path
        return SqliteStore(resolved)
    if url.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")):
        # Loaded only for a Redis URL: the client costs ~15 MiB that an embedded store never
        # uses (``gateway.store.redis``).
        from gateway.store.redis import RedisStore  # noqa: PLC0415

        pool = pool or StorePool()
        return RedisStore(
            url, max_connections=pool.max_connections, wait_timeout_s=pool.wait_timeout_s
        )
    raise ValueError(
        f"unsupported store URL scheme {url.split('://', maxsplit=1)[0]!r}: "
        "use sqlite://, redis://, rediss://, redis+cluster:// or rediss+cluster://"
    )
