"""Files only the gateway's own user may read (docs/behaviour.md, "Files on disk").

The data directory holds the master key, the SQLite store (keys' hashes, BYOK ciphertexts,
usage) and the usage spool, so it is kept at mode 0700 and each of those files is created at
0600: never at the umask's default (often 0644), not even for the moment before a chmod.
SQLite gives its ``-wal`` and ``-shm`` files the database file's mode, so creating the
database file at 0600 covers them too.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) at 0700; tighten it to 0700 if it exists."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty at 0600 if missing; tighten it (and SQLite's ``-wal`` and
    ``-shm`` beside it, when present) to 0600."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if each.exists():
            os.chmod(each, PRIVATE_FILE)
    return path
