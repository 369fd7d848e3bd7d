"""State backends behind one Protocol: embedded SQLite now, shared Redis later."""

from __future__ import annotations

from pathlib import Path

from gateway.store.base import Store
from gateway.store.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "open_store"]


def open_store(url: str, data_dir: Path) -> Store:
    """Open the store a ``store:`` URL names (``sqlite:///path``, relative to ``data_dir``)."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").removeprefix("/") or "routegate.db"
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        resolved = Path(path) if Path(path).is_absolute() else data_dir / path
        return SqliteStore(resolved)
    raise ValueError(
        f"unsupported store URL scheme in {url.split('://', maxsplit=1)[0]!r}: use sqlite://"
    )
