"""A real Redis Cluster on loopback: 6 ``redis-server`` nodes (3 masters, 3 replicas).

Each node runs in its own directory of one temporary root (``--cluster-enabled yes``,
``appendonly yes``, node timeout 1 s so a failover takes a few seconds); ``redis-cli --cluster
create`` joins them. ``kill_master(key)`` SIGKILLs the master serving a key's slot, by PID,
and waits until its replica is promoted and every live node reports ``cluster_state:ok``.
``revive(port)`` starts a killed node again (it rejoins as a replica). ``stop()`` stops every
node by PID. The ``redis_cluster`` session fixture is importable by any
conftest; a machine without ``redis-server``/``redis-cli`` fails the tests that need it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.cluster

from .redis_server import MISSING

NODES = 6
READY_TIMEOUT_S = 30.0
FAILOVER_TIMEOUT_S = 30.0


BUS_OFFSET = 10_000
"""Each node also listens on its port + 10000 (the cluster bus), so its port is <= 55535."""


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pair_port() -> int:
    """A free port below 55536 whose bus port is free too."""
    while True:
        port = random.randint(20_000, 55_535 - 1)
        if _free(port) and _free(port + BUS_OFFSET):
            return port


class RedisClusterError(RuntimeError):
    """The cluster did not form, or did not recover, in time."""


def _info(port: int) -> dict[str, str]:
    """``CLUSTER INFO`` of one node as a dict ({} when it does not answer)."""
    try:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1) as client:
            raw = client.execute_command("CLUSTER INFO")
    except redis.RedisError:
        return {}
    if isinstance(raw, dict):  # redis-py parses the reply (values may be ints)
        return {str(k): str(v) for k, v in raw.items()}
    body = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in body.splitlines() if ":" in line)


class RedisClusterServer:
    """Six nodes; ``ports`` and ``procs`` by port. ``url`` names every node as a seed (so a
    client that starts after a failover finds a live one), ``seed_url`` one node only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in sorted(self.procs))

    @property
    def seed_url(self) -> str:
        return f"redis+cluster://127.0.0.1:{min(self.procs)}"

    def _command(self, port: int) -> list[str]:
        binary = shutil.which("redis-server")
        assert binary is not None, MISSING
        return [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", "1000",
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
            "--logfile", "redis.log",
        ]  # fmt: skip

    def start(self) -> RedisClusterServer:
        ports: list[int] = []
        while len(ports) < NODES:
            port = _pair_port()
            if port not in ports and port + BUS_OFFSET not in ports:
                ports.append(port)
        for port in ports:
            directory = self.root / str(port)
            directory.mkdir(parents=True)
            self.procs[port] = subprocess.Popen(
                self._command(port),
                cwd=str(directory),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait(lambda: all(_info(p) for p in ports), "every node answering")
            nodes = [f"127.0.0.1:{p}" for p in ports]
            cli = shutil.which("redis-cli") or "redis-cli"
            create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "1"]
            subprocess.run(
                [*create, "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_ok()
            self.wait_replicated()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, ready: object, what: str, timeout: float = READY_TIMEOUT_S) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise RedisClusterError(f"redis cluster: no {what} after {timeout} s")

    def live_ports(self) -> list[int]:
        return [port for port, proc in self.procs.items() if proc.poll() is None]

    def wait_ok(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Every live node says ``cluster_state:ok`` and all 16384 slots are served."""

        def ok() -> bool:
            infos = [_info(port) for port in self.live_ports()]
            return all(
                i.get("cluster_state") == "ok" and i.get("cluster_slots_ok") == "16384"
                for i in infos
            )

        self._wait(ok, "cluster_state:ok on every node", timeout)

    def _roles(self) -> dict[int, list[object]]:
        """Port → ``ROLE`` reply of every live node that answers."""
        roles: dict[int, list[object]] = {}
        for port in self.live_ports():
            try:
                with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1) as client:
                    roles[port] = list(client.execute_command("ROLE"))
            except redis.RedisError:
                continue
        return roles

    def wait_replicated(self, timeout: float = READY_TIMEOUT_S) -> None:
        """3 masters, each with one replica connected and in sync (so each can fail over)."""

        def ready() -> bool:
            roles = self._roles()
            masters = [r for r in roles.values() if r[0] in (b"master", "master")]
            synced = [r for r in roles.values() if r[0] in (b"slave", "slave")]
            return (
                len(masters) == NODES // 2
                and all(len(r[2]) == 1 for r in masters)  # type: ignore[arg-type]
                and len(synced) == NODES // 2
                and all(r[3] in (b"connected", "connected") for r in synced)
            )

        self._wait(ready, "3 masters with one synced replica each", timeout)

    def _client(self) -> redis.cluster.RedisCluster:
        port = self.live_ports()[0]
        return redis.cluster.RedisCluster(host="127.0.0.1", port=port, socket_timeout=2)

    def master_pids(self) -> dict[int, int]:
        """Port → PID of every live master."""
        return {
            port: self.procs[port].pid
            for port, role in self._roles().items()
            if role[0] in (b"master", "master")
        }

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot."""
        with self._client() as client:
            return int(client.get_node_from_key(key).port)

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        with self._client() as client:
            client.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)

    def kill_master(self, key: str, timeout: float = FAILOVER_TIMEOUT_S) -> int:
        """SIGKILL (by PID) the master of ``key``'s slot; return once another node serves it
        and the cluster is ``ok`` again. Returns the killed node's port."""
        port = self.master_of(key)
        proc = self.procs[port]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self._wait(lambda: self._serving(key, port), f"new master for {key!r}", timeout)
        self.wait_ok(timeout)
        return port

    def revive(self, port: int, timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """Start a killed node again (same directory, same node id): it rejoins as a replica
        of the master that replaced it, so the next test again has 3 masters + 3 replicas."""
        assert self.procs[port].poll() is not None, f"node {port} is running"
        self.procs[port] = subprocess.Popen(
            self._command(port),
            cwd=str(self.root / str(port)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait(lambda: bool(_info(port)), f"node {port} answering", timeout)
        self.wait_ok(timeout)
        self.wait_replicated(timeout)

    def _serving(self, key: str, dead: int) -> bool:
        try:
            return self.master_of(key) != dead
        except (redis.exceptions.RedisClusterException, redis.RedisError):
            return False

    def stop(self) -> None:
        """SIGTERM every node by PID (SIGKILL if one does not exit)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def start_redis_cluster(root: Path) -> RedisClusterServer:
    """Start one, or fail the calling test (never skip) when the binaries are missing."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail(MISSING, pytrace=False)
    return RedisClusterServer(root).start()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    """One cluster for the session; tests that need a clean slate call ``flush()``."""
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()
