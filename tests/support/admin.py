"""Helpers for the management API tests: paths, checked answers, workspaces with their own
admin keys, and polling for usage records (the usage writer stores them just after the
response, so a test waits until the count it expects shows up, then checks it holds still).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from .configs import single_upstream_config
from .gateway import GatewayProcess

POLL_TIMEOUT_S = 8.0
SETTLE_S = 0.3


@contextlib.contextmanager
def single_upstream_gateway(
    data_dir: Path, upstream_base_url: str, provider_key: str, admin_key: str, name: str
) -> Iterator[GatewayProcess]:
    """A gateway in front of one upstream (``upstream-a``), for a test module; it must end
    without a traceback in its logs."""
    gateway = GatewayProcess(
        data_dir,
        config=single_upstream_config(upstream_base_url),
        env={"UPSTREAM_A_KEY": provider_key},
        admin_key=admin_key,
        name=name,
    )
    with gateway:
        yield gateway
    assert "Traceback" not in gateway.log_text(), gateway.log_tail(80)


def ws_path(workspace_id: str, suffix: str = "") -> str:
    return f"/v1/workspaces/{workspace_id}{suffix}"


def ok(resp: httpx.Response, status: int = 200) -> Any:
    """The JSON body of a successful answer with the expected status."""
    request = f"{resp.request.method} {resp.request.url.path}"
    assert resp.status_code == status, f"{request}: {resp.status_code} {resp.text[:800]}"
    return resp.json()


def new_workspace(gw: GatewayProcess, admin_key: str, name: str) -> tuple[str, str]:
    """A new workspace (made with the gateway-wide key) and an admin key of its own."""
    with gw.http(admin_key) as http:
        workspace = ok(http.post("/v1/workspaces", json={"name": name}), 201)
        key = ok(
            http.post(
                ws_path(workspace["id"], "/keys"),
                json={"name": f"{name} admin", "scopes": ["admin", "inference", "read"]},
            ),
            201,
        )
    return str(workspace["id"]), str(key["key"])


def usage_report(
    gw: GatewayProcess, admin_key: str, workspace_id: str, **params: Any
) -> dict[str, Any]:
    with gw.http(admin_key) as http:
        report = ok(http.get(ws_path(workspace_id, "/usage"), params=params))
    assert isinstance(report, dict)
    return report


def wait_for_requests(
    gw: GatewayProcess, admin_key: str, workspace_id: str, count: int, **params: Any
) -> dict[str, Any]:
    """The usage report once it counts ``count`` requests and stays there."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    report = usage_report(gw, admin_key, workspace_id, **params)
    while report["requests"] < count and time.monotonic() < deadline:
        time.sleep(0.05)
        report = usage_report(gw, admin_key, workspace_id, **params)
    time.sleep(SETTLE_S)
    settled = usage_report(gw, admin_key, workspace_id, **params)
    assert settled == report, f"usage still changing: {report} -> {settled}"
    assert report["requests"] == count, report
    return report


def wait_until(check: Any, what: str, timeout: float = POLL_TIMEOUT_S) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
