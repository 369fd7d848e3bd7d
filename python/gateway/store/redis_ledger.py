"""The Redis ledger: reserve and commit as Lua scripts, plus the reads around them.

``reserve`` is one EVALSHA on the asyncio client (the hot path awaits it); ``commit`` runs
one script call per workspace per batch (a workspace's keys share one cluster slot, so this
works alike on one server and on a Redis Cluster). Each settlement in it is exactly-once on
its own, so a batch cut short by a lost connection is safe to replay whole (the usage writer's
spool does). Before ``commit`` returns, a replica must have the writes (``redis_replication``):
acknowledged usage survives a failover. Semantics: ``ledger.py``; the scripts: ``redis_lua.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from gateway.store import redis_keys as keys
from gateway.store.ledger import (
    Alert,
    Denial,
    Reservation,
    ReserveOutcome,
    Settlement,
    WindowState,
)
from gateway.store.records import Billing, BillingTier, UsageRecord
from gateway.store.redis_base import as_bytes, text
from gateway.store.redis_lua import ADD_CREDITS, COMMIT, RESERVE
from gateway.store.redis_replication import RedisReplication

_encoder = msgspec.json.Encoder()
_usage_decoder = msgspec.json.Decoder(UsageRecord)
CHUNK = 500
"""Records per HMGET and settlements per COMMIT call: bounded replies, bounded server work."""
_SEQ_WIDTH = 16


def _int(value: object) -> int:
    """A reply's integer (an integer reply, or a bulk string of digits); 0 for nil."""
    if value is None:
        return 0
    if isinstance(value, (bytes, str, int)):
        return int(value)
    raise TypeError(f"unexpected redis reply {value!r}")


def reserve_args(reservation: Reservation) -> list[str]:
    """The script's ARGV. The holds JSON is kept verbatim to release them later; its
    amounts are strings so that Lua never rounds or reformats them."""
    held: dict[str, object] = {"b": [[h.counter, str(h.amount)] for h in reservation.budgets]}
    if reservation.wallet is not None:
        held["w"] = str(reservation.wallet.amount)
    args = [
        keys.prefix(reservation.workspace_id),
        reservation.id,
        str(reservation.ttl_ms),
        _encoder.encode(held).decode(),
        reservation.workspace_id,
        str(len(reservation.budgets)),
    ]
    for b in reservation.budgets:
        args += [b.budget_id, b.counter, str(b.threshold), str(b.amount), "1" if b.enforce else "0"]
    args.append("" if reservation.wallet is None else str(reservation.wallet.amount))
    args.append(str(len(reservation.limits)))
    for hold in reservation.limits:
        rpm = "" if hold.rpm is None else str(hold.rpm)
        tpm = "" if hold.tpm is None else str(hold.tpm)
        args += [hold.limiter, rpm, tpm, str(hold.tokens)]
    return args


def reserve_outcome(reservation: Reservation, raw: Sequence[object]) -> ReserveOutcome:
    """``[granted, kind, ref, retry, spend…, (requests, tokens, reset)…]`` → the outcome."""
    nb = len(reservation.budgets)
    spend = tuple(_int(v) for v in raw[4 : 4 + nb])
    flat = [_int(v) for v in raw[4 + nb :]]
    windows = tuple(
        WindowState(
            limiter=hold.limiter,
            requests=flat[3 * n],
            tokens=flat[3 * n + 1],
            reset_ms=flat[3 * n + 2],
        )
        for n, hold in enumerate(reservation.limits)
    )
    if raw[0] == 1:
        return ReserveOutcome(granted=True, spend=spend, windows=windows)
    denial = Denial(
        kind=text(raw[1]),
        ref=text(raw[2]),
        retry_after_ms=_int(raw[3]),
    )
    return ReserveOutcome(granted=False, denial=denial, spend=spend, windows=windows)


def commit_args(workspace_id: str, settlements: Sequence[Settlement]) -> list[str]:
    """The COMMIT script's ARGV: the workspace's prefix, the count, each settlement's args."""
    args = [keys.prefix(workspace_id), str(len(settlements))]
    for settlement in settlements:
        args += settlement_args(settlement)
    return args


def settlement_args(settlement: Settlement) -> list[str]:
    record = settlement.record
    args = [
        record.request_id,
        _encoder.encode(record).decode(),
        record.created_at,
        settlement.reservation_id or "",
        str(settlement.wallet),
        str(len(settlement.budgets)),
    ]
    for debit in settlement.budgets:
        args += [debit.budget_id, debit.counter, str(debit.amount), str(debit.limit)]
    args.append(str(len(settlement.tokens)))
    for actual in settlement.tokens:
        args += [actual.limiter, str(actual.tokens)]
    return args


def commit_alerts(workspace_id: str, raw: Sequence[object]) -> list[Alert]:
    """Groups of ``budget id, counter, percent, spend, limit`` → alerts, in firing order."""
    return [
        Alert(
            workspace_id=workspace_id,
            budget_id=text(raw[n]),
            counter=text(raw[n + 1]),
            percent=_int(raw[n + 2]),
            spend=_int(raw[n + 3]),
            limit=_int(raw[n + 4]),
        )
        for n in range(0, len(raw), 5)
    ]


def _billing(workspace_id: str, balance: object, reserved: object, tier: object) -> Billing:
    kind: BillingTier = "prepaid" if tier in (b"prepaid", "prepaid") else "postpaid"
    return Billing(
        workspace_id=workspace_id,
        balance_microdollars=_int(balance),
        reserved_microdollars=_int(reserved),
        tier=kind,
    )


def by_workspace(settlements: Sequence[Settlement]) -> dict[str, list[Settlement]]:
    """Settlements grouped by workspace (one cluster slot each), in order within each."""
    groups: dict[str, list[Settlement]] = {}
    for settlement in settlements:
        groups.setdefault(settlement.record.workspace_id, []).append(settlement)
    return groups


class RedisLedger(RedisReplication):
    """Ledger operations and usage records on the workspace's hash-tagged keys."""

    async def reserve(self, reservation: Reservation) -> ReserveOutcome:
        args = reserve_args(reservation)
        raw = await self._run_script("reserve", RESERVE, [args[0] + "resv"], args)
        return reserve_outcome(reservation, raw)

    def commit(self, settlements: Sequence[Settlement]) -> list[Alert]:
        """One COMMIT call per workspace and ``CHUNK``, each followed by the replica check;
        raises ``StoreUnavailable`` if any fails (replaying the whole batch is safe)."""
        alerts: list[Alert] = []
        for workspace_id, group in by_workspace(settlements).items():
            key = keys.prefix(workspace_id) + "usage"
            for start in range(0, len(group), CHUNK):
                args = commit_args(workspace_id, group[start : start + CHUNK])
                with self._guard(), self._replicated(key):
                    raw = self._script("commit", COMMIT)(keys=[key], args=args)
                alerts += commit_alerts(workspace_id, raw)
        return alerts

    def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        self.commit([Settlement(record=record) for record in records])

    def list_usage(self, workspace_id: str, since: str) -> list[UsageRecord]:
        """Members sort as ``created_at`` strings, exactly like the SQLite backend's
        ``created_at >= since ORDER BY created_at`` (ties in insertion order)."""
        base = keys.prefix(workspace_id)
        with self._guard():
            members = self._client.zrangebylex(base + "usage:time", "[" + since, "+")
            ids = [key[key.index(b"\0") + 1 + _SEQ_WIDTH :] for key in map(as_bytes, members)]
            pipe = self._client.pipeline(transaction=False)
            for start in range(0, len(ids), CHUNK):
                pipe.hmget(base + "usage", ids[start : start + CHUNK])
            chunks = pipe.execute() if ids else []
        return [_usage_decoder.decode(raw) for chunk in chunks for raw in chunk if raw is not None]

    def get_usage(self, workspace_id: str, request_id: str) -> UsageRecord | None:
        with self._guard():
            raw = self._client.hget(keys.prefix(workspace_id) + "usage", request_id)
        return None if raw is None else _usage_decoder.decode(raw)

    def budget_spend(self, workspace_id: str, counters: Sequence[str]) -> list[int]:
        base = keys.prefix(workspace_id)
        with self._guard():
            pipe = self._client.pipeline(transaction=False)
            for counter in counters:
                pipe.hget(base + "budget:" + counter, "spend")
            values = pipe.execute() if counters else []
        return [0 if v is None else int(v) for v in values]

    def get_billing(self, workspace_id: str) -> Billing:
        with self._guard():
            balance, reserved, tier = self._client.hmget(
                keys.prefix(workspace_id) + "wallet", ["balance", "reserved", "tier"]
            )
        return _billing(workspace_id, balance, reserved, tier)

    def add_credits(self, workspace_id: str, microdollars: int) -> Billing:
        script = self._script("add_credits", ADD_CREDITS)
        with self._guard():
            balance, reserved = script(
                keys=[keys.prefix(workspace_id) + "wallet"], args=[str(microdollars)]
            )
        return _billing(workspace_id, balance, reserved, b"prepaid")
