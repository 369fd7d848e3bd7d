"""``routegate keys|budgets|usage`` (SPEC §9), run as real subprocesses: on the store of a
running gateway (local mode) and through its HTTP API (``--url``), with the effects checked
through the gateway itself."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.admin import new_workspace, ok, single_upstream_gateway, wait_for_requests, ws_path
from support.checks import chat_body
from support.gateway import GATEWAY_CMD, GatewayProcess, scrubbed_env
from support.upstream import UpstreamServer

CLI_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: UpstreamServer,
    provider_key_a: str,
    admin_key: str,
) -> Iterator[GatewayProcess]:
    with single_upstream_gateway(
        tmp_path_factory.mktemp("gw-cli"),
        upstream_a.base_url,
        provider_key_a,
        admin_key,
        "gw-cli",
    ) as gateway:
        yield gateway


def cli(
    gw: GatewayProcess, *args: str, remote: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gateway ARGS``: local mode on ``gw``'s store, or ``--url`` with the
    admin key ``remote``."""
    where = ["--url", gw.base_url, "--admin-key", remote] if remote else []
    if not remote:
        where = ["--config", str(gw.config_path)]
    extra = {"ROUTEGATE_DATA_DIR": str(gw.data_dir / "store"), **(env or {})}
    return subprocess.run(
        [*shlex.split(GATEWAY_CMD), *args, *where],
        env=scrubbed_env(extra),
        cwd=str(gw.data_dir),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def cli_json(gw: GatewayProcess, *args: str, remote: str | None = None) -> Any:
    done = cli(gw, *args, "--json", remote=remote)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def _status(gw: GatewayProcess, key: str) -> int:
    with gw.http(key) as http:
        return http.get("/v1/models").status_code


def _wait_status(gw: GatewayProcess, key: str, status: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while _status(gw, key) != status:
        assert time.monotonic() < deadline, f"key never answered {status}"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_keys_create_list_revoke(gw: GatewayProcess, admin_key: str, mode: str):
    remote = admin_key if mode == "remote" else None
    created = cli_json(
        gw,
        "keys",
        "create",
        f"cli-{mode}",
        "--scope",
        "inference",
        "--scope",
        "read",
        "--ip",
        "127.0.0.0/8",
        "--rpm",
        "500",
        remote=remote,
    )
    secret = created["key"]
    assert secret.startswith("rg_live_") and created["name"] == f"cli-{mode}"
    assert created["scopes"] == ["inference", "read"] and created["ip_allowlist"] == ["127.0.0.0/8"]
    assert _status(gw, secret) == 200, "a key made by the CLI works on the gateway"
    table = cli(gw, "keys", "list", remote=remote)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "PREFIX", "NAME"]
    row = next(line for line in table.stdout.splitlines() if created["id"] in line)
    assert created["prefix"] in row and f"cli-{mode}" in row and "active" in row
    assert secret not in table.stdout
    listed = cli_json(gw, "keys", "list", remote=remote)
    assert created["id"] in {k["id"] for k in listed}
    revoked = cli(gw, "keys", "revoke", created["id"], remote=remote)
    assert revoked.returncode == 0, revoked.stderr
    assert created["id"] in revoked.stdout
    _wait_status(gw, secret, 401)
    with gw.http(admin_key) as http:
        shown = ok(http.get(ws_path(gw.default_workspace_id(), f"/keys/{created['id']}")))
    assert shown["status"] == "revoked"


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_budgets_create_list_delete(gw: GatewayProcess, admin_key: str, mode: str):
    remote = admin_key if mode == "remote" else None
    ws = gw.default_workspace_id()
    key = gw.create_key(f"cli-budget-{mode}")
    created = cli_json(
        gw,
        "budgets",
        "create",
        "--period",
        "weekly",
        "--limit-usd",
        "25",
        "--scope",
        "api_key",
        "--key",
        key["id"],
        "--no-enforce",
        remote=remote,
    )
    assert (created["period"], created["limit_usd"], created["scope_id"]) == (
        "weekly",
        25,
        key["id"],
    )
    assert created["enforce"] is False and created["threshold_usd"] == 22.5
    with gw.http(admin_key) as http:
        via_api = ok(http.get(ws_path(ws, f"/budgets/{created['id']}")))
    assert via_api == created
    table = cli(gw, "budgets", "list", remote=remote)
    row = next(line for line in table.stdout.splitlines() if created["id"] in line)
    assert f"api_key:{key['id']}" in row and "weekly" in row and "no" in row.split()
    deleted = cli(gw, "budgets", "delete", created["id"], remote=remote)
    assert deleted.returncode == 0 and created["id"] in deleted.stdout
    with gw.http(admin_key) as http:
        assert http.get(ws_path(ws, f"/budgets/{created['id']}")).status_code == 404


def test_usage_matches_the_api_in_both_modes(gw: GatewayProcess, admin_key: str):
    ws, own_admin = new_workspace(gw, admin_key, "cli-usage")
    test_key = gw.create_key("cli-usage-test", mode="test", workspace_id=ws)
    with gw.http(test_key["key"]) as http:
        for model in ("gpt-4o", "gpt-4o", "gpt-4o-mini"):
            assert http.post("/v1/chat/completions", json=chat_body(model=model)).is_success
    api = wait_for_requests(gw, admin_key, ws, 3, group_by="model", days=7)
    local = cli_json(gw, "usage", "--days", "7", "--by", "model", "--workspace", "cli-usage")
    remote = cli_json(
        gw, "usage", "--days", "7", "--by", "model", "--workspace", ws, remote=own_admin
    )
    assert local == api == remote
    table = cli(gw, "usage", "--by", "key", "--workspace", ws, remote=own_admin)
    assert table.returncode == 0, table.stderr
    assert "3 requests" in table.stdout
    row = next(line for line in table.stdout.splitlines() if test_key["id"] in line)
    assert "cli-usage-test" in row and row.split()[2] == "3"


def test_remote_mode_finds_the_admin_keys_only_workspace(gw: GatewayProcess, admin_key: str):
    ws, own_admin = new_workspace(gw, admin_key, "cli-only-one")
    listed = cli_json(gw, "keys", "list", remote=own_admin)
    assert [k["name"] for k in listed] == ["cli-only-one admin"]
    done = cli(gw, "keys", "list", "--workspace", "default", remote=own_admin)
    assert done.returncode == 1 and "no workspace 'default'" in done.stderr
    assert ws


def test_admin_key_from_the_environment(gw: GatewayProcess, admin_key: str):
    done = cli(gw, "budgets", "list", "--url", gw.base_url, env={"ROUTEGATE_ADMIN_KEY": admin_key})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("ID")


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_errors_exit_1_with_the_apis_message(gw: GatewayProcess, admin_key: str, mode: str):
    remote = admin_key if mode == "remote" else None
    bad_ip = cli(gw, "keys", "create", "bad", "--ip", "10.0.0.300", remote=remote)
    assert bad_ip.returncode == 1 and "ip_allowlist" in bad_ip.stderr
    assert bad_ip.stderr.startswith("error: ") and "Traceback" not in bad_ip.stderr
    unknown = cli(gw, "keys", "revoke", "key_does_not_exist", remote=remote)
    assert unknown.returncode == 1 and "key_does_not_exist" in unknown.stderr
    budget = cli(gw, "budgets", "create", "--period", "daily", "--limit-usd", "-1", remote=remote)
    assert budget.returncode == 1 and "limit_usd" in budget.stderr
    usage = cli(gw, "usage", "--days", "0", remote=remote)
    assert usage.returncode == 2 and "--days" in usage.stderr


def test_a_wrong_admin_key_or_address_is_a_clean_error(gw: GatewayProcess):
    wrong = cli(gw, "keys", "list", remote="rg_live_not-a-key")
    assert wrong.returncode == 1 and "401" in wrong.stderr
    assert "rg_live_not-a-key" not in wrong.stderr + wrong.stdout
    down = subprocess.run(
        [
            *shlex.split(GATEWAY_CMD),
            "keys",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--admin-key",
            "x",
        ],
        env=scrubbed_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_local_mode_refuses_a_directory_without_gateway_state(tmp_path: Path):
    done = subprocess.run(
        [*shlex.split(GATEWAY_CMD), "keys", "list"],
        env=scrubbed_env({"ROUTEGATE_DATA_DIR": str(tmp_path / "empty")}),
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1 and "no gateway state" in done.stderr
    assert not (tmp_path / "empty").exists(), "nothing is created by a failed lookup"
