"""The two ways ``routegate keys|budgets|usage`` reach a gateway's state (SPEC §9).

- ``LocalAdmin`` opens the configured store directly (same ``--config``/``--data-dir`` and
  environment as ``serve``) and runs the management API's own operations on it, as the
  operator: whoever can read the data directory is gateway-wide admin already.
- ``RemoteAdmin`` calls a running gateway's management API with an admin key (``--url``,
  ``--admin-key`` or ``ROUTEGATE_ADMIN_KEY``), so it works from another machine.

Both answer the API's JSON views, and both raise ``AdminError`` with the API's message, so the
command line prints the same thing either way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import msgspec

from gateway.api import management, usage_admin
from gateway.api.admin_deps import LocalAdmin
from gateway.api.budget_views import budget_view, budget_views
from gateway.api.budgets import add_budget, remove_budget
from gateway.api.usage_reports import GroupBy
from gateway.config import ConfigError
from gateway.edge.auth import derive_hash_key
from gateway.errors import GatewayError
from gateway.settings import MASTER_KEY_FILE, Settings, load_master_key
from gateway.store import open_store

Json = dict[str, Any]


class AdminError(Exception):
    """A refused or failed management call, with the message to show the user."""


class AdminClient(Protocol):
    def workspace_id(self, ref: str | None) -> str: ...
    def create_key(self, workspace_id: str, body: Json) -> Json: ...
    def list_keys(self, workspace_id: str) -> list[Json]: ...
    def revoke_key(self, workspace_id: str, key_id: str) -> Json: ...
    def create_budget(self, workspace_id: str, body: Json) -> Json: ...
    def list_budgets(self, workspace_id: str) -> list[Json]: ...
    def delete_budget(self, workspace_id: str, budget_id: str) -> Json: ...
    def usage(self, workspace_id: str, days: int, group_by: GroupBy) -> Json: ...
    def close(self) -> None: ...


def _json(value: object) -> Any:
    """A view as plain JSON values (tuples become lists), exactly as the API would send it."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _error_text(error: GatewayError) -> str:
    return f"{error.message} (param: {error.param})" if error.param else error.message


class StoreAdmin:
    """Management operations straight on the configured store."""

    def __init__(self, settings: Settings) -> None:
        if (
            not os.environ.get("ROUTEGATE_MASTER_KEY")
            and not (settings.data_dir / MASTER_KEY_FILE).exists()
        ):
            raise AdminError(
                f"no gateway state in {settings.data_dir}: start `routegate serve` once, or "
                "point --data-dir (ROUTEGATE_DATA_DIR) at the gateway's data directory"
            )
        try:
            config = settings.load_config()
        except ConfigError as error:
            raise AdminError(str(error)) from None
        store = open_store(
            settings.store_url(config), settings.data_dir, config.defaults.store_pool
        )
        hash_key = derive_hash_key(load_master_key(settings.data_dir))
        self.deps = LocalAdmin(store=store, hash_key=hash_key, config=config)

    @classmethod
    def from_args(cls, config: str | None, data_dir: str | None) -> StoreAdmin:
        settings = Settings.from_env()
        if config:
            settings = replace(settings, config_path=str(Path(config).resolve()))
        if data_dir:
            settings = replace(settings, data_dir=Path(data_dir).resolve())
        return cls(settings)

    def _call(self, operation: Any, *args: Any) -> Any:
        try:
            return _json(operation(*args))
        except GatewayError as error:
            raise AdminError(_error_text(error)) from None

    def workspace_id(self, ref: str | None) -> str:
        store = self.deps.store
        if ref is None:
            found = store.get_workspace_by_slug("default")
        else:
            found = store.get_workspace(ref) or store.get_workspace_by_slug(ref)
        if found is None:
            raise AdminError(f"no workspace {ref or 'default'!r} in this gateway's store")
        return found.id

    def create_key(self, workspace_id: str, body: Json) -> Json:
        def create() -> Json:
            secret, record = management.issue_key(self.deps, workspace_id, body)
            return {**management.key_view(record), "key": secret}

        result: Json = self._call(create)
        return result

    def list_keys(self, workspace_id: str) -> list[Json]:
        keys = self.deps.store.list_keys(workspace_id)
        return [_json(management.key_view(k)) for k in keys]

    def revoke_key(self, workspace_id: str, key_id: str) -> Json:
        def revoke() -> Json:
            key = management.key_in(self.deps, workspace_id, key_id)
            return management.key_view(management.revoke(self.deps, key, by_gateway_admin=True))

        result: Json = self._call(revoke)
        return result

    def create_budget(self, workspace_id: str, body: Json) -> Json:
        def create() -> Json:
            budget = add_budget(self.deps, workspace_id, body)
            return budget_view(budget, 0, datetime.now(timezone.utc))

        result: Json = self._call(create)
        return result

    def list_budgets(self, workspace_id: str) -> list[Json]:
        budgets = self.deps.store.list_budgets(workspace_id)
        views = budget_views(self.deps.store, workspace_id, budgets, datetime.now(timezone.utc))
        return [_json(v) for v in views]

    def delete_budget(self, workspace_id: str, budget_id: str) -> Json:
        result: Json = self._call(remove_budget, self.deps, workspace_id, budget_id)
        return result

    def usage(self, workspace_id: str, days: int, group_by: GroupBy) -> Json:
        result: Json = self._call(usage_admin.usage_report, self.deps, workspace_id, days, group_by)
        return result

    def close(self) -> None:
        self.deps.store.close()


def _ws(workspace_id: str) -> str:
    """A workspace's API path, with any id quoted so that it stays one path segment."""
    return "/v1/workspaces/" + quote(workspace_id, safe="")


class RemoteAdmin:
    """Management operations through a running gateway's HTTP API."""

    def __init__(self, url: str, admin_key: str | None, timeout_s: float = 30.0) -> None:
        if not admin_key:
            raise AdminError("--url needs an admin key: --admin-key or ROUTEGATE_ADMIN_KEY")
        try:
            import httpx  # noqa: PLC0415 - only the remote mode needs an HTTP client
        except ImportError:
            raise AdminError("--url needs the httpx package: pip install httpx") from None
        self._httpx = httpx
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=timeout_s,
        )

    def _send(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        query: Mapping[str, str | int] | None = None,
    ) -> Any:
        try:
            resp = self._http.request(method, path, json=body, params=query)
        except self._httpx.HTTPError as error:
            raise AdminError(f"cannot reach {self._http.base_url}: {error}") from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.is_success and data is not None:
            return data
        detail = data.get("error") if isinstance(data, dict) else None
        if isinstance(detail, dict) and detail.get("message"):
            param = detail.get("param")
            text = f"{detail['message']} (param: {param})" if param else str(detail["message"])
            raise AdminError(f"{resp.status_code}: {text}")
        raise AdminError(f"{method} {path} -> {resp.status_code} {resp.text[:200]}")

    def workspace_id(self, ref: str | None) -> str:
        listed = self._send("GET", "/v1/workspaces")["data"]
        if ref is None:
            if len(listed) == 1:
                return str(listed[0]["id"])
            ref = "default"
        for workspace in listed:
            if ref in (workspace["id"], workspace["slug"]):
                return str(workspace["id"])
        raise AdminError(f"no workspace {ref!r} is visible to this admin key")

    def create_key(self, workspace_id: str, body: Json) -> Json:
        result: Json = self._send("POST", f"{_ws(workspace_id)}/keys", body)
        return result

    def list_keys(self, workspace_id: str) -> list[Json]:
        data: list[Json] = self._send("GET", f"{_ws(workspace_id)}/keys")["data"]
        return data

    def revoke_key(self, workspace_id: str, key_id: str) -> Json:
        result: Json = self._send("DELETE", f"{_ws(workspace_id)}/keys/{quote(key_id, safe='')}")
        return result

    def create_budget(self, workspace_id: str, body: Json) -> Json:
        result: Json = self._send("POST", f"{_ws(workspace_id)}/budgets", body)
        return result

    def list_budgets(self, workspace_id: str) -> list[Json]:
        data: list[Json] = self._send("GET", f"{_ws(workspace_id)}/budgets")["data"]
        return data

    def delete_budget(self, workspace_id: str, budget_id: str) -> Json:
        path = f"{_ws(workspace_id)}/budgets/{quote(budget_id, safe='')}"
        result: Json = self._send("DELETE", path)
        return result

    def usage(self, workspace_id: str, days: int, group_by: GroupBy) -> Json:
        query = {"days": days, "group_by": group_by}
        result: Json = self._send("GET", f"{_ws(workspace_id)}/usage", query=query)
        return result

    def close(self) -> None:
        self._http.close()
