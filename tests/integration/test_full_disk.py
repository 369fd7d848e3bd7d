"""A full disk is an outage, not free traffic: real gateway processes on a real full filesystem.

Each test mounts a small tmpfs (``mount -t tmpfs``: root only; skipped, never passed, where
this machine cannot mount), puts part of a gateway's data on it, fills it with ``fallocate``,
and checks what clients and a real upstream that counts its calls see:

- data dir (SQLite store and usage spool) on the full filesystem, in both
  ``store_unavailable`` modes: 503 ``service_unavailable`` in the error shape, zero upstream
  calls; once space is freed the gateway serves and meters again;
- only the SQLite store on it (the spool elsewhere), with a governed key: ``reserve`` failing
  with "database or disk is full" is ``StoreUnavailable``, so ``closed`` answers 503 without
  calling the upstream and ``open`` serves within the limits it last read (docs/governance.md,
  "When the store is unreachable"), metered through the spool.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.checks import assert_error_shape, chat_body
from support.gateway import GatewayProcess, gateway_config, offer, openai_provider
from support.small_fs import fill, mounted_tmpfs
from support.upstream import UpstreamServer

MODEL = "gpt-4o"
FS_SIZE = "48m"
REQUESTS_WHILE_FULL = 20


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``FS_SIZE``, unmounted at teardown (after the gateway using it stopped)."""
    with mounted_tmpfs(tmp_path / "small-fs", FS_SIZE) as mountpoint:
        yield mountpoint


def start_gateway(
    tmp_path: Path,
    upstream: UpstreamServer,
    admin_key: str,
    *,
    mode: str,
    env: dict[str, str],
    store: str | None = None,
) -> GatewayProcess:
    config: dict[str, Any] = gateway_config(
        [openai_provider("up", upstream.base_url, "UP_KEY")],
        [offer(MODEL, "up", "up-gpt-4o")],
        store_unavailable=mode,
    )
    if store is not None:
        config["store"] = store
    gw = GatewayProcess(
        tmp_path / "gw", config=config, env={"UP_KEY": "sk-up", **env}, admin_key=admin_key
    )
    return gw.start()


def chat(gw: GatewayProcess, key: str) -> httpx.Response:
    with gw.http(key, timeout=20.0) as http:
        return http.post("/v1/chat/completions", json=chat_body(model=MODEL))


def assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, f"{resp.status_code} {resp.text[:300]}"
    error = assert_error_shape(resp.json())
    assert error["code"] == "service_unavailable", error
    assert resp.headers.get("retry-after") == "1"


def served_records(gw: GatewayProcess, key: str) -> int:
    with gw.http(key) as http:
        resp = http.get("/v1/usage", params={"period": "day"})
    assert resp.status_code == 200, resp.text
    return int(resp.json()["by_provider"].get("up", {}).get("requests", 0))


def wait_served_records(gw: GatewayProcess, key: str, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := served_records(gw, key)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seen == count, f"{seen} served requests metered, expected {count}"


def wait_serving(gw: GatewayProcess, key: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    resp = chat(gw, key)
    while resp.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        resp = chat(gw, key)
    assert resp.status_code == 200, f"not serving after space was freed: {resp.text[:300]}"
    return resp


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_full_data_dir_refuses_without_calling_the_provider_then_recovers(
    tmp_path: Path, small_fs: Path, upstream_a: UpstreamServer, admin_key: str, mode: str
) -> None:
    upstream_a.reset()
    gw = start_gateway(
        tmp_path, upstream_a, admin_key, mode=mode, env={"ROUTEGATE_DATA_DIR": str(small_fs)}
    )
    try:
        key = gw.create_key("full-disk")["key"]  # live, ungoverned: no store call to admit
        assert chat(gw, key).status_code == 200
        wait_served_records(gw, key, 1)
        calls = len(upstream_a.chat_requests())
        filler = fill(small_fs)
        time.sleep(0.3)  # past the spool's free-space look (0.1 s)
        for _ in range(REQUESTS_WHILE_FULL):
            assert_unavailable(chat(gw, key))
        assert len(upstream_a.chat_requests()) == calls, "a provider was called on a full disk"

        filler.unlink()
        wait_serving(gw, key)
        assert len(upstream_a.chat_requests()) == calls + 1
        wait_served_records(gw, key, 2)
        assert "Traceback" not in gw.log_text(), gw.log_tail(60)
    finally:
        gw.stop()
    shutil.rmtree(tmp_path / "gw", ignore_errors=True)


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_full_sqlite_store_applies_the_store_unavailable_mode(
    tmp_path: Path, small_fs: Path, upstream_a: UpstreamServer, admin_key: str, mode: str
) -> None:
    upstream_a.reset()
    gw = start_gateway(
        tmp_path,
        upstream_a,
        admin_key,
        mode=mode,
        env={"ROUTEGATE_DATA_DIR": str(tmp_path / "data")},
        store=f"sqlite:///{small_fs / 'routegate.db'}",
    )
    try:
        key = gw.create_key("governed", rpm_limit=100_000)["key"]  # reserves on every request
        assert chat(gw, key).status_code == 200
        wait_served_records(gw, key, 1)
        calls = len(upstream_a.chat_requests())
        filler = fill(small_fs)
        answers = [chat(gw, key) for _ in range(REQUESTS_WHILE_FULL)]
        if mode == "closed":
            for resp in answers:
                assert_unavailable(resp)
            assert len(upstream_a.chat_requests()) == calls, "admitted with no reservation"
        else:
            assert [r.status_code for r in answers] == [200] * REQUESTS_WHILE_FULL
            assert len(upstream_a.chat_requests()) == calls + REQUESTS_WHILE_FULL
        filler.unlink()
        wait_serving(gw, key)
        served = 2 + (REQUESTS_WHILE_FULL if mode == "open" else 0)
        wait_served_records(gw, key, served)  # the spooled ones are committed once there's room
        assert "Traceback" not in gw.log_text(), gw.log_tail(60)
    finally:
        gw.stop()
