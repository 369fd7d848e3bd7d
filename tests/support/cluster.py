"""Several real gateway processes on one store, a concurrent request driver, and direct readers
of the store, for the governance suites (tests/governance/).

- ``Cluster``: N ``GatewayProcess``es started one after another on one store: a real
  ``redis-server`` (``ROUTEGATE_STORE=redis://…``) or one SQLite data directory shared by all
  of them (a gateway with ``workers > 1`` is several processes on that file too). They share
  the master key (key hashes and BYOK ciphertext derive from it) and the bootstrap admin key.
  ``kill(i)`` is a crash: SIGKILL to the gateway's own process group, by its PID.
- ``fire`` sends ``count`` requests with ``concurrency`` threads, all released at once, and
  returns one ``Result`` (status, headers, body, timings) per request; ``Load`` keeps a steady
  stream of requests going in the background until stopped (for fault injection).
- ``Admin``: the management API through one gateway, every response kept for secret scans.
- ``StoreReader``: the store's raw contents, read without the gateway: the SQLite file with
  ``sqlite3`` (read-only), or every Redis key with redis-py (one server or a Redis Cluster).
- ``AclRedisServer``: a ``RedisServer`` whose gateway user has a password, so the store URL
  holds a secret; ``frozen_store`` stops the store from answering for a while (SIGSTOP of
  ``redis-server``, or a write lock held on the SQLite file).
- ``meter_config``: one provider, ``meter``, whose ``gpt-4o-mini`` costs $0.01 per output token
  and nothing per input token: a request with ``max_tokens: 1`` answered with one completion
  token costs exactly $0.01 (10,000 micro-dollars), as estimate and as actual.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import pytest
import redis
import redis.cluster

from .gateway import GatewayProcess, gateway_config, offer, openai_provider
from .redis_server import MISSING, RedisServer

Backend = Literal["sqlite", "redis"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "redis")

METER = "meter"
METER_MODEL = "gpt-4o-mini"
METER_MODEL_ID = "meter-mini"
METER_KEY_ENV = "METER_API_KEY"
REQUEST_COST_MICRO = 10_000
"""What one metered request costs: 1 output token at $10,000 per 1M tokens."""
MICRO = 1_000_000
CHAT_PATH = "/v1/chat/completions"
SQLITE_FILE = "routegate.db"

T = TypeVar("T")


# Circuit breakers that never open: a test's deliberate upstream errors must not take the
# one provider out of routing for the tests after it.
NO_BREAKER: dict[str, Any] = {"failure_threshold": 1_000_000, "failure_rate": 1.0}


def meter_config(upstream_url: str, **defaults: Any) -> dict[str, Any]:
    """The single-provider config that makes every request cost exactly $0.01."""
    defaults.setdefault("health", NO_BREAKER)
    return gateway_config(
        [openai_provider(METER, upstream_url, METER_KEY_ENV, first_byte_s=20.0, total_s=30.0)],
        [offer(METER_MODEL, METER, METER_MODEL_ID, price_in=0.0, price_out=10_000.0)],
        **defaults,
    )


def meter_body(content: str = "Count to one.", **extra: Any) -> dict[str, Any]:
    return {
        "model": METER_MODEL,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


# --- waiting ---------------------------------------------------------------------------------


def wait_until(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call ``probe`` until ``done(value)``; the last value, or AssertionError at ``timeout``."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value):
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached after {timeout}s; last value: {value!r}")
        time.sleep(interval)
        value = probe()
    return value


# --- requests --------------------------------------------------------------------------------


@dataclass
class Result:
    """One request as the client saw it; ``status`` 0 when no complete response arrived."""

    index: int
    target: str
    status: int
    headers: dict[str, str]
    text: str
    started: float
    ended: float
    error: str | None = None

    @property
    def body(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def code(self) -> str | None:
        body = self.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
            return code if isinstance(code, str) else None
        return None

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")

    def describe(self) -> str:
        return f"#{self.index} {self.target} -> {self.status} {self.error or self.text[:300]}"


def _send(
    client: httpx.Client, index: int, target: str, *, path: str, body: Any, key: str
) -> Result:
    started = time.monotonic()
    try:
        resp = client.post(target + path, json=body, headers={"Authorization": f"Bearer {key}"})
        text = resp.text  # the whole body, or an exception when it is cut
    except httpx.HTTPError as exc:
        return Result(index, target, 0, {}, "", started, time.monotonic(), type(exc).__name__)
    headers = {k.lower(): v for k, v in resp.headers.items()}
    return Result(index, target, resp.status_code, headers, text, started, time.monotonic())


class _Clients:
    """One httpx client per driver thread (no pool contention between threads)."""

    def __init__(self, timeout: float) -> None:
        self._local = threading.local()
        self._all: list[httpx.Client] = []
        self._lock = threading.Lock()
        self._timeout = timeout

    def get(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=self._timeout, trust_env=False)
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            for client in self._all:
                client.close()
            self._all.clear()


def fire(
    targets: Sequence[str],
    key: str | Sequence[str],
    body: Any | list[Any],
    count: int,
    *,
    concurrency: int = 64,
    path: str = CHAT_PATH,
    timeout: float = 60.0,
) -> list[Result]:
    """``count`` POSTs spread round-robin over ``targets`` (and over the keys and the bodies,
    when several are given as lists), ``concurrency`` at a time, all released together;
    results in request order."""
    keys = [key] if isinstance(key, str) else list(key)
    bodies = body if isinstance(body, list) else [body]
    clients = _Clients(timeout)
    go = threading.Event()
    ready = threading.Semaphore(0)

    def one(index: int) -> Result:
        client = clients.get()
        ready.release()
        go.wait()
        target = targets[index % len(targets)]
        return _send(
            client,
            index,
            target,
            path=path,
            body=bodies[index % len(bodies)],
            key=keys[index % len(keys)],
        )

    workers = min(concurrency, count)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fire") as pool:
            futures = [pool.submit(one, i) for i in range(count)]
            for _ in range(workers):  # every thread holds its first request, then all go
                ready.acquire(timeout=30)
            go.set()
            return [f.result() for f in futures]
    finally:
        clients.close()


class Load:
    """A steady stream of requests from ``threads`` threads until ``stop()``."""

    def __init__(
        self,
        targets: Sequence[str],
        key: str,
        body: Any,
        *,
        threads: int = 4,
        pause_s: float = 0.0,
        path: str = CHAT_PATH,
        timeout: float = 30.0,
    ) -> None:
        self.targets = list(targets)
        self.key = key
        self.body = body
        self.pause_s = pause_s
        self.path = path
        self._clients = _Clients(timeout)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._results: list[Result] = []
        self._counter = itertools.count()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(threads)
        ]

    def _run(self) -> None:
        client = self._clients.get()
        while not self._stop.is_set():
            index = next(self._counter)
            with self._lock:
                target = self.targets[index % len(self.targets)]
            result = _send(client, index, target, path=self.path, body=self.body, key=self.key)
            with self._lock:
                self._results.append(result)
            if self.pause_s:
                self._stop.wait(self.pause_s)

    def retarget(self, index: int, target: str) -> None:
        """Send what went to ``targets[index]`` to ``target`` from now on (a gateway restarted
        on another port)."""
        with self._lock:
            self.targets[index] = target

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    @property
    def results(self) -> list[Result]:
        with self._lock:
            return list(self._results)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Until at least ``count`` requests have finished (whatever their outcome)."""
        wait_until(
            lambda: len(self.results),
            lambda n: n >= count,
            timeout=timeout,
            what=f"{count} load requests",
        )

    def stop(self) -> list[Result]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self._clients.close()
        return sorted(self.results, key=lambda r: r.index)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def statuses(results: Iterable[Result]) -> dict[int, int]:
    """status → how many; for assertion messages and exact counts."""
    counts: dict[int, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return dict(sorted(counts.items()))


# --- the management API ----------------------------------------------------------------------


class Admin:
    """Management calls through one gateway with an admin key. Every response is kept
    (``responses``) and every key secret it creates is remembered (``secrets``)."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.admin_key = admin_key
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=30.0,
            trust_env=False,
        )
        self.responses: list[httpx.Response] = []
        self.secrets: list[str] = []

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, expect: int | tuple[int, ...], **kw: Any) -> Any:
        resp = self.http.request(method, path, **kw)
        self.responses.append(resp)
        wanted = (expect,) if isinstance(expect, int) else expect
        assert resp.status_code in wanted, (
            f"{method} {path} -> {resp.status_code} (expected {wanted}): {resp.text[:800]}"
        )
        return resp.json() if resp.content else None

    def raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        resp = self.http.request(method, path, **kw)
        self.responses.append(resp)
        return resp

    # workspaces
    def create_workspace(self, name: str) -> str:
        created = self.call("POST", "/v1/workspaces", json={"name": name}, expect=201)
        return str(created["id"])

    def patch_workspace(self, workspace_id: str, **fields: Any) -> dict[str, Any]:
        return dict(self.call("PATCH", f"/v1/workspaces/{workspace_id}", json=fields, expect=200))

    # keys
    def create_key(self, workspace_id: str, name: str, **options: Any) -> dict[str, Any]:
        created = self.call(
            "POST",
            f"/v1/workspaces/{workspace_id}/keys",
            json={"name": name, **options},
            expect=201,
        )
        self.secrets.append(created["key"])
        return dict(created)

    def revoke_key(self, workspace_id: str, key_id: str) -> dict[str, Any]:
        return dict(self.call("DELETE", f"/v1/workspaces/{workspace_id}/keys/{key_id}", expect=200))

    # budgets
    def create_budget(self, workspace_id: str, **fields: Any) -> dict[str, Any]:
        return dict(
            self.call("POST", f"/v1/workspaces/{workspace_id}/budgets", json=fields, expect=201)
        )

    def budgets(self, workspace_id: str) -> list[dict[str, Any]]:
        listed = self.call("GET", f"/v1/workspaces/{workspace_id}/budgets", expect=200)
        return list(listed["data"])

    def budget(self, workspace_id: str, budget_id: str) -> dict[str, Any]:
        return dict(
            self.call("GET", f"/v1/workspaces/{workspace_id}/budgets/{budget_id}", expect=200)
        )

    # billing
    def add_credits(self, workspace_id: str, amount_usd: float) -> dict[str, Any]:
        return dict(
            self.call(
                "POST",
                f"/v1/workspaces/{workspace_id}/billing/credits",
                json={"amount_usd": amount_usd},
                expect=(200, 201),
            )
        )

    def billing(self, workspace_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/workspaces/{workspace_id}/billing", expect=200))


# --- reading the store directly --------------------------------------------------------------


class StoreReader:
    """The store's raw contents, read around the gateway: what an attacker with the database
    file or the Redis server would see, and the usage records exactly as stored."""

    def __init__(self, backend: Backend, *, sqlite_path: Path | None, redis_url: str | None):
        self.backend = backend
        self.sqlite_path = sqlite_path
        self.redis_url = redis_url

    # sqlite
    def _sql(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        assert self.sqlite_path is not None
        assert self.sqlite_path.exists(), f"no SQLite store at {self.sqlite_path}"
        db = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
        try:
            return list(db.execute(query, args).fetchall())
        finally:
            db.close()

    # redis
    def _redis(self) -> redis.Redis | redis.cluster.RedisCluster:
        """One server's client, or a Redis Cluster's (``redis+cluster://host:port``): its
        ``scan_iter`` walks every master, and each key is read from the master serving it."""
        assert self.redis_url is not None
        if self.redis_url.startswith("redis+cluster://"):
            seeds = [
                redis.cluster.ClusterNode(host, int(port))  # type: ignore[no-untyped-call]
                for host, port in (
                    node.split(":")
                    for node in self.redis_url.removeprefix("redis+cluster://").split(",")
                )
            ]
            return redis.cluster.RedisCluster(startup_nodes=seeds, socket_timeout=5)
        return redis.Redis.from_url(self.redis_url, socket_timeout=5)

    def usage_records(self, workspace_id: str) -> list[dict[str, Any]]:
        """Every usage record the store holds for the workspace."""
        if self.backend == "sqlite":
            rows = self._sql("SELECT data FROM usage WHERE workspace_id = ?", (workspace_id,))
            return [json.loads(row[0]) for row in rows]
        client = self._redis()
        try:
            values = client.hvals(f"rg:{{ws:{workspace_id}}}:usage")
        finally:
            client.close()
        return [json.loads(value) for value in values]

    def wait_records(
        self, workspace_id: str, count: int, *, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Poll until the workspace has ``count`` records, then check that no more arrive."""
        wait_until(
            lambda: self.usage_records(workspace_id),
            lambda rs: len(rs) >= count,
            timeout=timeout,
            what=f"{count} usage records in {workspace_id}",
        )
        time.sleep(0.3)
        settled = self.usage_records(workspace_id)
        assert len(settled) == count, f"expected {count} usage records, found {len(settled)}"
        return settled

    def api_key_rows(self) -> list[dict[str, Any]]:
        """Every stored gateway key record (JSON decoded)."""
        if self.backend == "sqlite":
            rows = self._sql("SELECT key_hash, data FROM api_keys")
            return [{**json.loads(data), "_column_hash": key_hash} for key_hash, data in rows]
        client = self._redis()
        try:
            out: list[dict[str, Any]] = []
            for name in client.scan_iter(match="rg:{ws:*}:keys", count=1000):
                out += [json.loads(v) for v in client.hvals(name)]
            return out
        finally:
            client.close()

    def provider_key_rows(self) -> list[dict[str, Any]]:
        """Every stored BYOK provider key record (JSON decoded)."""
        if self.backend == "sqlite":
            return [json.loads(row[0]) for row in self._sql("SELECT data FROM provider_keys")]
        client = self._redis()
        try:
            out: list[dict[str, Any]] = []
            for name in client.scan_iter(match="rg:{ws:*}:pkeys", count=1000):
                out += [json.loads(v) for v in client.hvals(name)]
            return out
        finally:
            client.close()

    def dump(self) -> str:
        """Everything stored, as text: every table cell, or every Redis key name and value."""
        parts: list[str] = []
        if self.backend == "sqlite":
            tables = [r[0] for r in self._sql("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for row in self._sql(f'SELECT * FROM "{table}"'):
                    parts += [_text(cell) for cell in row]
            return "\n".join(parts)
        client = self._redis()
        try:
            for raw_name in client.scan_iter(count=1000):
                name = raw_name.decode(errors="replace")
                parts.append(name)
                kind = client.type(raw_name).decode()
                if kind == "string":
                    parts.append(_text(client.get(raw_name)))
                elif kind == "hash":
                    for k, v in client.hgetall(raw_name).items():
                        parts += [_text(k), _text(v)]
                elif kind == "zset":
                    parts += [_text(m) for m in client.zrange(raw_name, 0, -1)]
                elif kind == "set":
                    parts += [_text(m) for m in client.smembers(raw_name)]
                elif kind == "list":
                    parts += [_text(m) for m in client.lrange(raw_name, 0, -1)]
                elif kind == "stream":
                    for _, fields in client.xrange(raw_name):
                        for k, v in fields.items():
                            parts += [_text(k), _text(v)]
                else:
                    parts.append(f"<{kind}>")
        finally:
            client.close()
        return "\n".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)


# --- the cluster -----------------------------------------------------------------------------


@dataclass
class Cluster:
    """``count`` gateway processes (each with ``workers`` workers) on one store.

    redis: ``store_url`` is the server's URL and every gateway has its own data directory
    (its own spool), unless ``shared_data``. sqlite: every gateway uses the one data directory
    ``root/data`` (the store file and the spools side by side), as several workers of one
    gateway do.
    """

    root: Path
    backend: Backend
    config: dict[str, Any]
    admin_key: str
    master_key: str
    env: dict[str, str] = field(default_factory=dict)
    count: int = 1
    workers: int = 1
    store_url: str | None = None
    name: str = "gw"
    shared_data: bool = False
    gateways: list[GatewayProcess] = field(default_factory=list)
    _admin: Admin | None = None

    def __post_init__(self) -> None:
        if self.backend == "redis":
            assert self.store_url, "a redis cluster needs a store URL"
            assert self.store_url.startswith(("redis://", "redis+cluster://")), self.store_url
        for i in range(self.count):
            env = {
                **self.env,
                "ROUTEGATE_MASTER_KEY": self.master_key,
                "ROUTEGATE_DATA_DIR": str(self.data_dir(i)),
            }
            if self.backend == "redis":
                assert self.store_url is not None
                env["ROUTEGATE_STORE"] = self.store_url
            self.gateways.append(
                GatewayProcess(
                    self.root / f"{self.name}-{i}",
                    config=self.config,
                    env=env,
                    admin_key=self.admin_key,
                    workers=self.workers,
                    name=f"{self.name}-{i}",
                )
            )

    def data_dir(self, index: int) -> Path:
        if self.backend == "sqlite" or self.shared_data:
            return self.root / "data"
        return self.root / f"{self.name}-{index}" / "data"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir(0) / SQLITE_FILE

    def start(self) -> Cluster:
        """One after another: the first bootstraps the store, the others find it made."""
        for gw in self.gateways:
            gw.start()
        return self

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        for gw in self.gateways:
            gw.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def targets(self) -> list[str]:
        return [gw.base_url for gw in self.gateways]

    def kill(self, index: int) -> None:
        """A crash: SIGKILL to the gateway's process group (its main process and workers)."""
        gw = self.gateways[index]
        proc, gw.proc = gw.proc, None
        assert proc is not None, f"{gw.name} is not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self, index: int) -> GatewayProcess:
        """Start the (stopped or killed) gateway again on the same data directory."""
        gw = self.gateways[index]
        if self._admin is not None and index == 0:
            self._admin.close()
            self._admin = None
        return gw.start()

    @property
    def admin(self) -> Admin:
        if self._admin is None:
            self._admin = Admin(self.gateways[0].base_url, self.admin_key)
        return self._admin

    def store(self) -> StoreReader:
        return StoreReader(
            self.backend,
            sqlite_path=self.sqlite_path if self.backend == "sqlite" else None,
            redis_url=self.store_url if self.backend == "redis" else None,
        )

    def log_text(self) -> str:
        return "\n".join(gw.log_text() for gw in self.gateways)

    def assert_no_secrets(self, secrets: Iterable[str]) -> None:
        text = self.log_text()
        for secret in secrets:
            assert secret, "empty secret given"
            leaked = [line for line in text.splitlines() if secret in line]
            assert not leaked, (
                f"secret {secret[:12]}… in gateway logs:\n" + "\n".join(leaked)[:2000]
            )


def usage_summary(base_url: str, key: str, period: str = "day") -> dict[str, Any]:
    """``GET /v1/usage`` with an inference (or read) key."""
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as http:
        resp = http.get(
            "/v1/usage", params={"period": period}, headers={"Authorization": f"Bearer {key}"}
        )
    assert resp.status_code == 200, f"GET /v1/usage -> {resp.status_code} {resp.text[:500]}"
    return dict(resp.json())


def cost_sum(records: Iterable[dict[str, Any]]) -> int:
    """Sum of ``cost_microdollars``; every record must carry that integer field."""
    total = 0
    for record in records:
        value = record.get("cost_microdollars")
        assert isinstance(value, int), f"record without integer cost_microdollars: {record}"
        total += value
    return total


# --- the store's server ----------------------------------------------------------------------

REDIS_USER = "routegate"


class AclRedisServer(RedisServer):
    """``redis-server`` with a user ``routegate`` that authenticates with ``password``; the
    default user stays open, so the harness's raw PING still tells when it is up."""

    def __init__(self, data_dir: Path, password: str) -> None:
        super().__init__(data_dir)
        self.password = password

    def command(self) -> list[str]:
        acl = [REDIS_USER, "on", f">{self.password}", "~*", "&*", "+@all"]
        return [*super().command(), "--user", *acl]

    @property
    def url(self) -> str:
        return f"redis://{REDIS_USER}:{self.password}@127.0.0.1:{self.port}/0"


def start_acl_redis(data_dir: Path, password: str) -> AclRedisServer:
    """Start one, or fail the calling test (never skip) when redis-server is missing."""
    if shutil.which("redis-server") is None:
        pytest.fail(MISSING, pytrace=False)
    server = AclRedisServer(data_dir, password)
    server.start()
    return server


@contextlib.contextmanager
def frozen_store(cluster: Cluster, server: RedisServer | None) -> Iterator[None]:
    """The store accepts no write while inside: ``redis-server`` is stopped (SIGSTOP by PID,
    SIGCONT after), or this process holds the SQLite file's write lock (``BEGIN IMMEDIATE``;
    readers still read)."""
    if cluster.backend == "sqlite":
        db = sqlite3.connect(str(cluster.sqlite_path), timeout=15, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                db.execute("ROLLBACK")
        finally:
            db.close()
        return
    assert server is not None and server.proc is not None, "redis-server is not running"
    pid = server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
