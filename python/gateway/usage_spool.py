"""A per-process, append-only spool of settlements, so no metered request is ever lost.

The request path appends each settlement (usage record + what it cost) to the current
segment file with one ``os.write`` before the response completes: that survives the process
being killed, with no wait on the store. The usage writer seals segments, commits them to
the store in batches and deletes them once the store acknowledged them.

Each process owns one directory under ``<data dir>/spool`` and holds an exclusive ``flock`` on
its ``lock`` file for as long as it lives. A directory whose lock can be taken belongs to a
dead process: any gateway sharing the data directory commits its segments (commits are
idempotent per request id, so a segment committed twice is harmless) and removes it.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec

from gateway.private_files import private_dir
from gateway.store.ledger import Settlement

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

    def _open_segment(self) -> int:
        self._sequence += 1
        path = self.directory / f"seg-{self._sequence:012d}"
        return os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def append(self, settlement: Settlement) -> None:
        payload = _encoder.encode(settlement)
        frame = len(payload).to_bytes(_HEADER, "little") + payload
        with self._mutex:
            os.write(self._fd, frame)
            self._size += len(frame)

    def seal(self) -> list[Path]:
        """Close the current segment if it holds anything; return every sealed segment."""
        with self._mutex:
            if self._size:
                os.close(self._fd)
                self._fd = self._open_segment()
                self._size = 0
            current = self._sequence
        return [p for p in segments_of(self.directory) if int(p.name[4:]) < current]

    def close(self) -> None:
        """Release the directory: remove it when empty, else leave it for recovery."""
        with self._mutex:
            os.close(self._fd)
            self._fd = -1
        leftovers = [p for p in segments_of(self.directory) if p.stat().st_size > 0]
        if not leftovers:
            shutil.rmtree(self.directory, ignore_errors=True)
        os.close(self._lock_fd)


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
