"""Prompt recovery of a healed provider (``defaults.health``: ``cooldown_s`` 5 for the first
opening, doubled by each failed half-open probe up to ``max_cooldown_s`` 15).

A long cool-down protects a provider in an outage but keeps a healed one out of traffic for
as long; a short fixed one probes a dead provider too often. With the back-off, a provider
down for a minute sees a few probes, and is back in traffic within ``max_cooldown_s`` (well
within 30 s) of healing. One scenario, in real time (~80 s), with the *default* health
settings except ``learn_latency: false`` (latency learning would reorder the pair and blur
what is measured): the primary answers 500 to everything for 60 s, then serves; a request
every 4 s, twenty in all. Every request is served (by the secondary during the outage), the
primary sees only occasional probes while down, and serves again soon after it heals.
"""

from __future__ import annotations

import time

import httpx
import pytest

from support.failover_rig import GatewayFactory, make_rig, reply_a, reply_b, served
from support.faults import PRIMARY, SECONDARY
from support.upstream import Status, UpstreamServer

OUTAGE_S = 60.0
EVERY_S = 4.0
REQUESTS = 20
BACK_WITHIN_S = 30.0
MAX_OUTAGE_CALLS = 12  # 2 + 2 + 1 until the circuit opens, then a probe at 5, 10, 15, 15 s …


@pytest.mark.timeout(240)
def test_a_healed_primary_is_back_in_traffic_promptly(
    make_gateway: GatewayFactory,
    upstream_a: UpstreamServer,
    upstream_b: UpstreamServer,
    provider_key_a: str,
    provider_key_b: str,
):
    env = {"UPSTREAM_A_KEY": provider_key_a, "UPSTREAM_B_KEY": provider_key_b}
    rig = make_rig(
        make_gateway, upstream_a, upstream_b, env, health={"learn_latency": False}, name="gw-heal"
    )
    upstream_b.set_default(reply_b())
    upstream_a.set_default(Status(500, message="The server had an error processing your request."))

    answers: list[tuple[float, httpx.Response]] = []
    start = time.monotonic()
    healed_at: float | None = None
    for i in range(REQUESTS):
        moment = start + i * EVERY_S
        time.sleep(max(0.0, moment - time.monotonic()))
        if healed_at is None and moment - start >= OUTAGE_S:
            upstream_a.set_default(reply_a())
            healed_at = time.monotonic()
        resp, _ = rig.chat()
        answers.append((moment - start, resp))
    assert healed_at is not None

    for at, resp in answers:  # every request is served, by the secondary while A is down
        assert resp.status_code == 200, f"request at {at:.0f} s: {resp.status_code} {resp.text}"
    during = [(at, r) for at, r in answers if at < OUTAGE_S]
    for at, resp in during:
        assert resp.headers["x-provider-used"] == SECONDARY, f"request at {at:.0f} s"
        served(resp, SECONDARY)

    outage_calls = [r for r in upstream_a.chat_requests() if r.received_at < healed_at]
    offsets = [round(r.received_at - start, 1) for r in outage_calls]
    assert len(outage_calls) <= MAX_OUTAGE_CALLS, f"the dead primary was called at {offsets}"

    by_primary = [at for at, r in answers if r.headers["x-provider-used"] == PRIMARY]
    assert by_primary, f"the primary never served again; it was called at {offsets}"
    back = start + by_primary[0] - healed_at
    assert back <= BACK_WITHIN_S, f"the primary served again {back:.1f} s after it healed"
    later = [at for at, _ in answers if at >= by_primary[0]]
    assert later == by_primary, f"served by the primary again at {by_primary}, not at {later}"
    for at, resp in answers:
        if at >= by_primary[0]:  # its probe succeeded: the circuit is closed
            served(resp, PRIMARY)
