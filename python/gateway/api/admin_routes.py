"""The governance side of the management API's path table (SPEC §8), merged into ``edge/app.py``'s.

Kept here so that ``edge/app.py`` names one import for all of them: workspace writes, key rotation
and per-key usage, budgets, billing, and usage reports. Every one needs an admin key of the
workspace in the path (or the gateway-wide one) and answers 404 for any other workspace.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from gateway.api import billing, budgets, key_rotation, usage_admin, workspaces_admin
from gateway.context import Context
from gateway.edge.http import Request, Response

AdminHandler = Callable[[Context, Request], Awaitable[Response]]

_WS = r"^/v1/workspaces/(?P<workspace_id>[^/]+)"
_KEY = _WS + r"/keys/(?P<key_id>[^/]+)"
_BUDGET = _WS + r"/budgets/(?P<budget_id>[^/]+)$"


def _path(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


ROUTES: dict[tuple[str, str], AdminHandler] = {
    ("POST", "/v1/workspaces"): workspaces_admin.create_workspace,
}
PATTERNS: list[tuple[str, re.Pattern[str], AdminHandler]] = [
    ("PATCH", _path(_WS + "$"), workspaces_admin.patch_workspace),
    ("POST", _path(_KEY + "/rotate$"), key_rotation.rotate_key),
    ("GET", _path(_KEY + "/usage$"), key_rotation.get_key_usage),
    ("POST", _path(_WS + "/budgets$"), budgets.create_budget),
    ("GET", _path(_WS + "/budgets$"), budgets.list_budgets),
    ("GET", _path(_BUDGET), budgets.get_budget),
    ("PATCH", _path(_BUDGET), budgets.patch_budget),
    ("DELETE", _path(_BUDGET), budgets.delete_budget),
    ("GET", _path(_WS + "/billing$"), billing.get_billing),
    ("POST", _path(_WS + "/billing/credits$"), billing.add_credits),
    ("GET", _path(_WS + "/usage$"), usage_admin.get_usage_report),
    ("GET", _path(_WS + "/usage/(?P<request_id>[^/]+)$"), usage_admin.get_usage_record),
    ("GET", _path(_WS + "/latency$"), usage_admin.get_latency),
    ("GET", _path(_WS + "/audit$"), usage_admin.get_audit),
]
