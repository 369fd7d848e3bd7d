"""A per-process, append-only spool of settlements, so no metered request is ever lost.

The request path appends each settlement (usage record + what it cost) to the current
segment file with one ``write(2)`` before the response completes: that survives the process
being killed, with no wait on the store. The write keeps the GIL (``write_holding_gil``): a
page-cache append takes microseconds, and releasing the GIL for it woke a waiting thread on
every request (docs/decisions.md). The usage writer seals segments, commits them to
the store in batches and deletes them once the store acknowledged them.

Each process owns one directory under ``<data dir>/spool`` and holds an exclusive ``flock`` on
its ``lock`` file for as long as it lives. A directory whose lock can be taken belongs to a
dead process: any gateway sharing the data directory commits its segments (commits are
idempotent per request id, so a segment committed twice is harmless) and removes it.

A request is dispatched only when the spool can take its record (``ready``): the spool's
filesystem has at least ``MIN_FREE_BYTES`` free (``os.statvfs``, looked at most every
``FREE_CHECK_S``) and no frame is waiting in memory. Why a free-space margin rather than a
preallocated segment: docs/decisions.md. Should a write still fail (the margin raced away),
``append`` never raises: the frame's torn bytes are cut off, the frame waits in memory
(``PENDING_MAX`` at most) and ``seal`` writes it once there is room, while ``ready`` stays
False so that nothing more is dispatched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import msgspec

from gateway._router_core import write_holding_gil
from gateway.store.ledger import Settlement
from gateway.store.private_files import private_dir

log = logging.getLogger("routegate.usage")

MIN_FREE_BYTES = 8 * 1024 * 1024
"""Below this much free space on the spool's filesystem, no request is dispatched."""
FREE_CHECK_S = 0.1
PENDING_MAX = 10_000
"""Frames kept in memory while the disk refuses them (records of refused requests, mostly)."""

_HEADER = 4
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Settlement)


def read_segment(path: Path) -> list[Settlement]:
    """Every complete frame of a segment; a torn last frame (a kill mid-write) is dropped."""
    data = path.read_bytes()
    out: list[Settlement] = []
    offset = 0
    while offset + _HEADER <= len(data):
        size = int.from_bytes(data[offset : offset + _HEADER], "little")
        end = offset + _HEADER + size
        if end > len(data):
            break
        out.append(_decoder.decode(data[offset + _HEADER : end]))
        offset = end
    return out


def segments_of(directory: Path) -> list[Path]:
    """A spool directory's segments, oldest first."""
    return sorted(directory.glob("seg-*"))


class Spool:
    """This process's spool directory: ``append`` from the event loop, ``seal`` from the
    writer thread (a short lock keeps a frame from straddling two segments)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Locked under a hidden name first, so no scan can mistake it for an orphan.
        staging = private_dir(private_dir(root) / f".{name}")
        self._lock_fd = os.open(staging / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.directory = root / name
        staging.rename(self.directory)
        self._mutex = threading.Lock()
        self._sequence = 0
        self._size = 0
        self._fd = self._open_segment()
        self._pending: deque[bytes] = deque()
        self._torn = False
        self._dropped = 0
        self._free_checked = float("-inf")
        self._free_ok = True

    def _open_segment(self) -> int:
        path = self.directory / f"seg-{self._sequence + 1:012d}"
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        self._sequence += 1
        return fd

    def ready(self) -> bool:
        """Whether a request may be dispatched: its record will find room (module doc)."""
        if self._pending:
            return False
        now = time.monotonic()
        if now - self._free_checked >= FREE_CHECK_S:
            self._free_checked = now
            was, self._free_ok = self._free_ok, has_room(self.directory)
            if was != self._free_ok:  # logged on each change only: an outage must not flood
                if self._free_ok:
                    log.warning("usage spool has room again; dispatching resumes")
                else:
                    log.error(
                        "usage spool: under %d MiB free on its filesystem; refusing requests "
                        "(503) until there is room",
                        MIN_FREE_BYTES >> 20,
                    )
        return self._free_ok

    def append(self, settlement: Settlement) -> None:
        """Write the settlement's frame; never raises (module doc: a failed write waits)."""
        payload = _encoder.encode(settlement)
        frame = len(payload).to_bytes(_HEADER, "little") + payload
        with self._mutex:
            if self._pending or not self._write(frame):
                self._hold(frame)

    def _write(self, frame: bytes) -> bool:
        """One frame, whole or not at all (a short write is cut off); under the mutex."""
        if self._torn and not self._cut():
            return False
        try:
            written = write_holding_gil(self._fd, frame)
        except OSError as error:
            written = -1
            failure: str = os.strerror(error.errno or 0)
        else:
            if written == len(frame):
                self._size += written
                return True
            failure = f"short write ({written} of {len(frame)} bytes)"
        if written > 0:
            self._torn = True
            self._cut()
        if not self._pending:
            log.error("usage spool write failed (%s); dispatch paused until it has room", failure)
        self._free_ok = False
        return False

    def _cut(self) -> bool:
        """Remove a torn frame's bytes; if that fails, start a new segment (a torn frame at
        a segment's end is dropped by ``read_segment``, one in the middle would not be)."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            try:
                fd = self._open_segment()
            except OSError:
                return False
            os.close(self._fd)
            self._fd, self._size = fd, 0
        self._torn = False
        return True

    def _hold(self, frame: bytes) -> None:
        if len(self._pending) >= PENDING_MAX:
            self._pending.popleft()
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.error("usage spool full: %d records dropped so far", self._dropped)
        self._pending.append(frame)

    def _drain(self) -> None:
        """Write the frames that waited in memory, oldest first; under the mutex."""
        while self._pending and self._write(self._pending[0]):
            self._pending.popleft()
        if not self._pending and self._dropped:
            log.warning("usage spool writable again (%d records were dropped)", self._dropped)
            self._dropped = 0

    def seal(self) -> list[Path]:
        """Write what waited in memory, close the current segment if it holds anything;
        return every sealed segment. The new segment is opened before the old one is closed,
        so a failure to open it (a full disk) leaves the spool writable as it was."""
        with self._mutex:
            self._drain()
            if self._size:
                fd = self._open_segment()
                os.close(self._fd)
                self._fd = fd
                self._size = 0
            current = self._sequence
        return [p for p in segments_of(self.directory) if int(p.name[4:]) < current]

    def close(self) -> None:
        """Release the directory: remove it when empty, else leave it for recovery."""
        with self._mutex:
            self._drain()
            if self._pending:
                log.error("usage spool: %d records lost at exit (no room)", len(self._pending))
            os.close(self._fd)
            self._fd = -1
        leftovers = [p for p in segments_of(self.directory) if p.stat().st_size > 0]
        if not leftovers:
            shutil.rmtree(self.directory, ignore_errors=True)
        os.close(self._lock_fd)


def has_room(directory: Path) -> bool:
    """``MIN_FREE_BYTES`` free for unprivileged writers, and inodes left for new segments."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return False
    inodes_ok = stat.f_files == 0 or stat.f_favail > 0  # 0 files: no inode limit
    return stat.f_bavail * stat.f_frsize >= MIN_FREE_BYTES and inodes_ok


def orphans(root: Path, own: Path) -> Iterator[tuple[Path, int]]:
    """Spool directories of dead processes, each yielded with its lock held (the caller
    must ``os.close`` the fd when done, after removing the directory)."""
    if not root.exists():
        return
    for directory in sorted(root.iterdir()):
        if directory == own or directory.name.startswith(".") or not directory.is_dir():
            continue
        try:
            fd = os.open(directory / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # its owner is alive
            continue
        yield directory, fd
