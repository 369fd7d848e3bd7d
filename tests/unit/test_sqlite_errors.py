"""Which local-store failures are outages (``StoreUnavailable``) and which are bugs."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.store.ledger import StoreUnavailable
from gateway.store.sqlite_errors import UNAVAILABLE_CODES, StoreLock, is_unavailable


def _sqlite_error(code: int, message: str = "failure") -> sqlite3.Error:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_an_error_is_an_outage_exactly_when_its_primary_code_is_one(code: int) -> None:
    """Extended codes (``SQLITE_IOERR_WRITE`` = 10 | 3 << 8, …) count by their primary code."""
    assert is_unavailable(_sqlite_error(code)) == ((code & 0xFF) in UNAVAILABLE_CODES)


@given(st.sampled_from(sorted(errno.errorcode)))
def test_os_errors_are_outages_only_for_disk_trouble(number: int) -> None:
    expected = number in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)
    assert is_unavailable(OSError(number, "x")) == expected


@pytest.mark.parametrize(
    ("message", "outage"),
    [
        ("database or disk is full", True),
        ("disk I/O error", True),
        ("unable to open database file", True),
        ("database is locked", True),
        ("no such table: usage", False),
        ('near "SELEC": syntax error', False),
    ],
)
def test_without_an_error_code_the_message_decides(message: str, outage: bool) -> None:
    assert is_unavailable(sqlite3.OperationalError(message)) == outage


def test_the_store_lock_turns_outages_into_store_unavailable_and_leaves_bugs_alone() -> None:
    lock = StoreLock("SQLite store")
    db = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError), lock:
        db.execute("SELEC 1")  # a bug: stays a 500
    with pytest.raises(StoreUnavailable, match="disk is full"), lock:
        raise _sqlite_error(13, "database or disk is full")
    with lock:  # released both times
        pass
