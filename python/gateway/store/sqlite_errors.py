"""Local SQLite failures that mean "the store is unavailable", not "the gateway has a bug".

A full disk, an I/O error, a file that cannot be opened or a database locked past the busy
timeout is an outage of the embedded store, exactly like Redis going away: it must become
``StoreUnavailable`` so that ``defaults.store_unavailable`` (closed → 503, open → ungoverned)
applies (docs/governance.md), instead of a 500. SQL errors (a missing table, bad syntax)
stay what they are: those are bugs.

Every SQLite call runs under the store's ``StoreLock``, so the translation happens in one
place: the lock's ``__exit__``.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TypeVar

from gateway.store.ledger import StoreUnavailable

T = TypeVar("T")

# SQLite primary result codes (https://www.sqlite.org/rescode.html).
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_NOMEM = 7
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_PROTOCOL = 15
UNAVAILABLE_CODES = frozenset(
    {
        SQLITE_BUSY,
        SQLITE_LOCKED,
        SQLITE_NOMEM,
        SQLITE_READONLY,
        SQLITE_IOERR,
        SQLITE_FULL,
        SQLITE_CANTOPEN,
        SQLITE_PROTOCOL,
    }
)
# Python < 3.11 has no sqlite_errorcode: the messages SQLite gives those codes.
_UNAVAILABLE_MESSAGES = (
    "disk is full",
    "disk i/o error",
    "unable to open",
    "database is locked",
    "database table is locked",
    "readonly database",
    "out of memory",
)
UNAVAILABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` is the local store failing (disk, I/O, locks), not a bug."""
    if isinstance(error, OSError):
        return error.errno in UNAVAILABLE_ERRNOS
    if not isinstance(error, sqlite3.Error):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in UNAVAILABLE_CODES
    text = str(error).lower()
    return any(message in text for message in _UNAVAILABLE_MESSAGES)


BUSY_TIMEOUT_MS = 10_000
"""How long a store call waits for another process's write transaction before giving up."""


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is another connection holding the write lock right now."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == SQLITE_BUSY
    return "database is locked" in str(error).lower()


class StoreLock:
    """The store's mutex; an I/O failure of the local store leaves it as ``StoreUnavailable``."""

    def __init__(self, what: str) -> None:
        self._lock = threading.Lock()
        self._what = what

    def __enter__(self) -> None:
        self._lock.acquire()

    @contextlib.contextmanager
    def attempt(self) -> Iterator[bool]:
        """Hold the lock if it is free right now (yields True), else yield False at once."""
        if not self._lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)  # releases, translates
            raise
        self.__exit__(None, None, None)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()
        if error is not None and is_unavailable(error):
            raise StoreUnavailable(f"{self._what}: {error}") from error


def immediate(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in one ``BEGIN IMMEDIATE`` transaction (other processes' writers wait), rolled
    back if it raises. The caller holds the connection's lock."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    return result


def rollback(db: sqlite3.Connection) -> None:
    """Roll back what is left of a failed transaction. SQLite has already rolled back by
    itself after some errors (a full disk among them): a second ROLLBACK would then raise
    "no transaction is active" and hide the error that matters."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the original error is the one to report
            db.execute("ROLLBACK")
