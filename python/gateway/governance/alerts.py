"""Budget alerts (SPEC §7): a log event, and a signed webhook when the budget names one.

The store reports each alert level once per budget period (``commit`` sets a bit per level
atomically), so every gateway process together sends each alert exactly once. Webhooks go
out from a short-lived thread so a slow receiver never holds up usage commits. The body is
signed with HMAC-SHA256 under a per-workspace key derived from the master key
(``X-Routegate-Signature: sha256=<hex>``). Targets outside the public internet are refused
unless the config allows them (``webhook_target``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from urllib.parse import urlsplit

import msgspec

from gateway.governance.webhook_target import post
from gateway.secrets_held import scrub
from gateway.store import Store
from gateway.store.ledger import MICRO, Alert

log = logging.getLogger("routegate.budgets")
WEBHOOK_TIMEOUT_S = 5.0


def webhook_key(master_key: bytes, workspace_id: str) -> bytes:
    return hmac.new(master_key, f"routegate/webhook/v1/{workspace_id}".encode(), "sha256").digest()


def sign(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class AlertSender:
    def __init__(self, store: Store, master_key: bytes, *, allow_private: bool = False) -> None:
        self._store = store
        self._master_key = master_key
        self._allow_private = allow_private

    def send(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            log.warning(
                "budget alert: workspace %s budget %s reached %d%% (%.6f of %.6f USD, %s)",
                alert.workspace_id,
                alert.budget_id,
                alert.percent,
                alert.spend / MICRO,
                alert.limit / MICRO,
                alert.counter,
            )
            try:
                budget = self._store.get_budget(alert.workspace_id, alert.budget_id)
            except Exception:  # the log line above is the alert of record
                continue
            if budget is not None and budget.alert_webhook:
                body = msgspec.json.encode(
                    {
                        "type": "budget.alert",
                        "workspace_id": alert.workspace_id,
                        "budget_id": alert.budget_id,
                        "period": budget.period,
                        "percent": alert.percent,
                        "spend_usd": alert.spend / MICRO,
                        "limit_usd": alert.limit / MICRO,
                    }
                )
                signature = sign(webhook_key(self._master_key, alert.workspace_id), body)
                threading.Thread(
                    target=_post,
                    args=(budget.alert_webhook, body, signature, self._allow_private),
                    daemon=True,
                ).start()


def _post(url: str, body: bytes, signature: str, allow_private: bool) -> None:
    headers = {"content-type": "application/json", "x-routegate-signature": signature}
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.hostname}"  # the path may carry a token: never logged
    try:
        post(url, body, headers, allow_private, WEBHOOK_TIMEOUT_S)
    except Exception as error:
        detail = scrub(f"{type(error).__name__}: {error}")
        log.warning("budget alert webhook to %s failed: %s", where, detail)
