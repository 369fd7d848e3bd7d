"""``routegate keys create|list|revoke``, ``routegate budgets create|list|delete`` and
``routegate usage [--days N] [--by day|model|provider|key]`` (SPEC §9).

Each works on the configured store directly (``--config``/``--data-dir`` and the environment,
as ``serve`` reads them) or, with ``--url``, on a running gateway with an admin key
(``--admin-key``, default ``$ROUTEGATE_ADMIN_KEY``). ``--workspace`` takes an id or a slug
(default: the ``default`` workspace, or the admin key's only one). Output is a plain table;
``--json`` prints the management API's JSON instead. Errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gateway.admin_client import AdminClient, AdminError, Json, RemoteAdmin, StoreAdmin
from gateway.api.bodies import MAX_DAYS
from gateway.api.usage_reports import GROUP_BYS, GroupBy

COMMANDS = ("keys", "budgets", "usage")


def _days(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"use a whole number from 1 to {MAX_DAYS}")
    return int(text)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    target = common.add_argument_group("where")
    target.add_argument("--config", help="YAML config (default: $ROUTEGATE_CONFIG)")
    target.add_argument("--data-dir", help="state directory (default: $ROUTEGATE_DATA_DIR)")
    target.add_argument("--url", help="a running gateway's base URL instead of the store")
    target.add_argument("--admin-key", help="admin key for --url (default: $ROUTEGATE_ADMIN_KEY)")
    target.add_argument("--workspace", help="workspace id or slug (default: 'default')")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return common


def register(commands: Any) -> None:
    """Add the management subcommands to the ``routegate`` parser's subparsers."""
    common = _common()
    keys = commands.add_parser("keys", help="create, list and revoke gateway keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    create = key_commands.add_parser("create", parents=[common], help="create a key")
    create.add_argument("name")
    create.add_argument("--mode", choices=("live", "test"), default="live")
    create.add_argument("--scope", action="append", choices=("inference", "read", "admin"))
    create.add_argument("--allowed-model", action="append", metavar="MODEL")
    create.add_argument("--ip", action="append", metavar="ADDRESS_OR_CIDR")
    create.add_argument("--default-policy")
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--max-cost", type=float, metavar="USD")
    create.add_argument("--expires-at", metavar="ISO8601")
    key_commands.add_parser("list", parents=[common], help="list keys")
    revoke = key_commands.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id")

    budgets = commands.add_parser("budgets", help="create, list and delete budgets")
    budget_commands = budgets.add_subparsers(dest="action", required=True)
    add = budget_commands.add_parser("create", parents=[common], help="create a budget")
    add.add_argument("--period", choices=("daily", "weekly", "monthly"), required=True)
    add.add_argument("--limit-usd", type=float, required=True)
    add.add_argument(
        "--scope", choices=("workspace", "api_key", "byok_provider"), default="workspace"
    )
    add.add_argument("--key", dest="scope_id", metavar="KEY_ID", help="for --scope api_key")
    add.add_argument("--provider", help="for --scope byok_provider")
    add.add_argument("--no-enforce", action="store_true", help="alert only, never refuse")
    add.add_argument("--include-byok", action="store_true")
    add.add_argument("--webhook", metavar="URL", help="alert webhook")
    budget_commands.add_parser("list", parents=[common], help="list budgets with spend")
    delete = budget_commands.add_parser("delete", parents=[common], help="delete a budget")
    delete.add_argument("budget_id")

    usage = commands.add_parser("usage", parents=[common], help="spend, requests and tokens")
    usage.add_argument("--days", type=_days, default=30)
    usage.add_argument("--by", choices=GROUP_BYS, default="day")


def _client(args: argparse.Namespace) -> AdminClient:
    if args.url:
        return RemoteAdmin(args.url, args.admin_key or os.environ.get("ROUTEGATE_ADMIN_KEY"))
    return StoreAdmin.from_args(args.config, args.data_dir)


def _drop_none(body: dict[str, Any]) -> Json:
    return {name: value for name, value in body.items() if value is not None}


def run(args: argparse.Namespace) -> int:
    """Run one management subcommand; print its result; 0, or 1 with the error on stderr."""
    try:
        client = _client(args)
        try:
            result, render = _dispatch(client, args)
        finally:
            client.close()
    except AdminError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render(result))
    return 0


Renderer = Callable[[Any], str]


def _dispatch(client: AdminClient, args: argparse.Namespace) -> tuple[object, Renderer]:
    ws = client.workspace_id(args.workspace)
    if args.command == "usage":
        by: GroupBy = args.by
        return client.usage(ws, args.days, by), _usage_text
    if args.command == "keys" and args.action == "create":
        body = {
            "name": args.name,
            "mode": args.mode,
            "scopes": args.scope,
            "allowed_models": args.allowed_model,
            "ip_allowlist": args.ip,
            "default_policy": args.default_policy,
            "rpm_limit": args.rpm,
            "tpm_limit": args.tpm,
            "max_cost_per_request": args.max_cost,
            "expires_at": args.expires_at,
        }
        return client.create_key(ws, _drop_none(body)), _created_key_text
    if args.command == "keys" and args.action == "list":
        return client.list_keys(ws), _keys_text
    if args.command == "keys":
        return client.revoke_key(ws, args.key_id), lambda k: f"Revoked key {k['id']} ({k['name']})"
    if args.action == "create":
        body = {
            "scope_type": args.scope,
            "scope_id": args.scope_id,
            "scope_provider": args.provider,
            "period": args.period,
            "limit_usd": args.limit_usd,
            "enforce": not args.no_enforce,
            "include_byok": args.include_byok,
            "alert_webhook": args.webhook,
        }
        return client.create_budget(ws, _drop_none(body)), lambda b: _budgets_text([b])
    if args.action == "list":
        return client.list_budgets(ws), _budgets_text
    return client.delete_budget(ws, args.budget_id), lambda b: f"Deleted budget {b['id']}"


# --- plain-text rendering -----------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart; ``-`` for an empty cell."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    lines = [header, *cells]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _cell(value: object) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def _created_key_text(key: Json) -> str:
    return (
        f"Created {key['mode']} key {key['id']} ({key['name']}), scopes "
        f"{','.join(key['scopes'])}\n"
        f"key: {key['key']}\n(shown once: store it now)"
    )


def _keys_text(keys: list[Json]) -> str:
    header = ("ID", "PREFIX", "NAME", "MODE", "SCOPES", "STATUS", "CREATED", "LAST USED")
    rows = [
        (
            k["id"],
            k["prefix"],
            k["name"],
            k["mode"],
            k["scopes"],
            k["status"],
            k["created_at"],
            k["last_used_at"],
        )
        for k in keys
    ]
    return table(header, rows)


def _budgets_text(budgets: list[Json]) -> str:
    header = ("ID", "SCOPE", "PERIOD", "LIMIT_USD", "SPEND_USD", "USED%", "ENFORCE", "RESETS")
    rows = [
        (
            b["id"],
            _scope_text(b),
            b["period"],
            b["limit_usd"],
            b["spend_usd"],
            b["percent_used"],
            "yes" if b["enforce"] else "no",
            b["resets_at"],
        )
        for b in budgets
    ]
    return table(header, rows)


def _scope_text(budget: Json) -> str:
    target = budget["scope_id"] or budget["scope_provider"]
    return f"{budget['scope_type']}:{target}" if target else str(budget["scope_type"])


def _usage_text(report: Json) -> str:
    tokens = report["tokens"]
    summary = (
        f"Workspace {report['workspace_id']}, {report['days']} day(s) since {report['since']}: "
        f"{report['requests']} requests, {_cell(report['spend_usd'])} USD, "
        f"{tokens['input']} input + {tokens['output']} output tokens"
    )
    header = [report["group_by"].upper(), "REQUESTS", "SPEND_USD", "INPUT", "OUTPUT"]
    rows = [
        [g["group"], g["requests"], g["spend_usd"], g["tokens"]["input"], g["tokens"]["output"]]
        for g in report["data"]
    ]
    if report["group_by"] == "key":
        header.insert(1, "NAME")
        for row, group in zip(rows, report["data"], strict=True):
            row.insert(1, group.get("name"))
    return summary + ("\n\n" + table(header, rows) if rows else "")
