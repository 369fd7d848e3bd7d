"""A small real filesystem to fill up: a tmpfs mounted for one test (root only).

``mounted_tmpfs`` skips the test (reported as a skip, never a pass) only when this machine
cannot mount; it always unmounts what it mounted. ``fill`` takes every free byte.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def free_bytes(directory: Path) -> int:
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def fill(directory: Path) -> Path:
    """Take every free byte of ``directory``'s filesystem with one preallocated file."""
    filler = directory / "filler"
    subprocess.run(["fallocate", "-l", str(free_bytes(directory)), str(filler)], check=True)
    assert free_bytes(directory) < 64 * 1024, "the filesystem is not full"
    return filler
