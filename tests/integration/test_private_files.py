"""After a real first start, what the gateway keeps on disk is its user's alone: the data dir
0700; the SQLite store with its -wal/-shm files, the master key and the usage spool 0600
(docs/behaviour.md, "Files on disk"); and an admin key set in ``ROUTEGATE_ADMIN_KEY`` is never
printed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.gateway import TEST_KEY_RE, GatewayProcess


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, admin_key: str) -> Iterator[GatewayProcess]:
    old = os.umask(0o022)  # the common default, which left the store at 0644
    try:
        gateway = GatewayProcess(
            tmp_path_factory.mktemp("private"), config=None, admin_key=admin_key, name="gw-files"
        )
        gateway.start()
    finally:
        os.umask(old)
    try:
        yield gateway
    finally:
        gateway.stop()


def test_first_start_keeps_its_files_private(gw: GatewayProcess) -> None:
    test_key = gw.wait_for_stdout(TEST_KEY_RE)
    assert test_key, gw.log_tail()
    with gw.openai(test_key) as client:  # writes the store, its WAL and a spool segment
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    data = gw.data_dir / "store"
    files = [data / "master.key", data / "routegate.db"]
    files += [data / "routegate.db-wal", data / "routegate.db-shm"]
    spool = data / "spool"
    dirs = [data, spool, *[p for p in spool.iterdir() if p.is_dir()]]
    assert len(dirs) >= 3, list(spool.iterdir())
    files += [p for d in dirs[2:] for p in d.iterdir()]
    assert any(p.name.startswith("seg-") for p in files), files
    wanted = {**{d.name: oct(0o700) for d in dirs}, **{p.name: oct(0o600) for p in files}}
    found = {p.name: oct(mode(p)) for p in dirs + files}
    assert found == wanted


def test_an_admin_key_from_the_environment_is_never_printed(
    gw: GatewayProcess, admin_key: str
) -> None:
    assert "admin key: from ROUTEGATE_ADMIN_KEY" in gw.stdout_text(), gw.log_tail()
    gw.assert_no_secrets(admin_key)
