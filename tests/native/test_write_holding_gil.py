"""``write_holding_gil``: the spool's append, one write(2) that keeps the GIL."""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._router_core import write_holding_gil


@settings(max_examples=50, deadline=None)
@given(frames=st.lists(st.binary(max_size=5000), max_size=20))
def test_appended_frames_read_back_whole_and_in_order(frames: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _append_and_compare(Path(folder) / "segment", frames)


def _append_and_compare(path: Path, frames: list[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        written = [write_holding_gil(fd, frame) for frame in frames]
    finally:
        os.close(fd)
    assert written == [len(frame) for frame in frames]
    assert path.read_bytes() == b"".join(frames)


def test_a_short_write_returns_what_went_in() -> None:
    """A non-blocking pipe with less room than the data takes part of it, as os.write does."""
    read, write = os.pipe()
    try:
        fcntl.fcntl(write, fcntl.F_SETFL, os.O_NONBLOCK)
        capacity = fcntl.fcntl(write, fcntl.F_GETPIPE_SZ)
        written = write_holding_gil(write, b"x" * (capacity + 4096))
        assert written == capacity
        with pytest.raises(BlockingIOError):  # full: EAGAIN maps to its OSError subclass
            write_holding_gil(write, b"y")
    finally:
        os.close(read)
        os.close(write)


@pytest.mark.parametrize("fd", [-1, 1_000_000])
def test_a_descriptor_that_is_not_open_raises_ebadf(fd: int) -> None:
    with pytest.raises(OSError) as raised:
        write_holding_gil(fd, b"frame")
    assert raised.value.errno == errno.EBADF


def test_a_read_only_descriptor_raises_with_its_errno(tmp_path: Path) -> None:
    path = tmp_path / "read-only"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as raised:
            write_holding_gil(fd, b"frame")
        assert raised.value.errno == errno.EBADF
    finally:
        os.close(fd)
