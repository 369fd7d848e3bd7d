"""Management API (SPEC §7, §8): a workspace's wallet.

- ``GET /v1/workspaces/{id}/billing`` → ``{balance_microdollars, balance_usd,
  reserved_microdollars, tier}``. ``reserved`` is what requests in flight hold.
- ``POST …/billing/credits`` with exactly one of ``amount_usd`` or ``amount_microdollars``
  (above 0) adds to the balance atomically and answers the new wallet. The first top-up makes
  the wallet ``prepaid``: from then on live traffic debits it and gets 402 at zero.

Any admin of the workspace may top up (an admin key is trusted with everything inside its
workspace, as for keys and budgets); every top-up is logged with the caller's key id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated

import msgspec

from gateway.api.bodies import convert_body
from gateway.api.management import managed_workspace
from gateway.context import Context
from gateway.edge.http import Request, Response, json_response
from gateway.edge.schemas import decode_object
from gateway.errors import InvalidRequest
from gateway.store.ledger import MICRO, to_micro
from gateway.store.records import Billing

log = logging.getLogger("routegate.billing")

MAX_TOP_UP_USD = 1e9


class Credits(msgspec.Struct, kw_only=True):
    amount_usd: Annotated[float, msgspec.Meta(gt=0, le=MAX_TOP_UP_USD)] | None = None
    amount_microdollars: (
        Annotated[int, msgspec.Meta(gt=0, le=int(MAX_TOP_UP_USD) * MICRO)] | None
    ) = None


def billing_view(billing: Billing) -> dict[str, object]:
    return {
        "object": "billing",
        "workspace_id": billing.workspace_id,
        "tier": billing.tier,
        "balance_microdollars": billing.balance_microdollars,
        "balance_usd": billing.balance_microdollars / MICRO,
        "reserved_microdollars": billing.reserved_microdollars,
    }


def credit_amount(data: Mapping[str, object]) -> int:
    """The top-up in micro-dollars; 400 naming the field unless exactly one amount is given."""
    body = convert_body(data, Credits)
    if body.amount_usd is not None and body.amount_microdollars is None:
        amount = to_micro(body.amount_usd)
        if amount <= 0:
            raise InvalidRequest("'amount_usd' is below one micro-dollar.", param="amount_usd")
        return amount
    if body.amount_microdollars is not None and body.amount_usd is None:
        return body.amount_microdollars
    raise InvalidRequest(
        "Give exactly one of 'amount_usd' or 'amount_microdollars'.", param="amount_usd"
    )


async def get_billing(ctx: Context, request: Request) -> Response:
    caller = await ctx.authenticate(request, "admin")
    workspace = managed_workspace(ctx, caller, request.path_params["workspace_id"])
    return json_response(billing_view(ctx.store.get_billing(workspace.id)))


async def add_credits(ctx: Context, request: Request) -> Response:
    caller = await ctx.authenticate(request, "admin")
    workspace = managed_workspace(ctx, caller, request.path_params["workspace_id"])
    amount = credit_amount(decode_object(request.body))
    billing = ctx.store.add_credits(workspace.id, amount)
    ctx.rules.invalidate(workspace.id)  # the tier may have just become prepaid
    log.info(
        "credits added: workspace=%s amount_microdollars=%d by_key=%s balance_microdollars=%d",
        workspace.id,
        amount,
        caller.id,
        billing.balance_microdollars,
    )
    return json_response(billing_view(billing))
