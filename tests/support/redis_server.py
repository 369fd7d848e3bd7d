"""A real ``redis-server`` on loopback, started and stopped by the test harness itself.

Durable like a production deployment should be (``appendonly yes``, ``appendfsync always``,
no RDB snapshots), in its own temporary directory, so a test can kill it (SIGKILL) or stop it
(SIGTERM) and ``restart()`` it on the same port with the same data, and check what survived.

The ``redis_server`` session fixture is importable by any conftest
(``from support.redis_server import redis_server``). A machine without ``redis-server`` fails
the tests that need it, with a message saying so: the shared-store tests are never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

READY_TIMEOUT_S = 10.0
MISSING = (
    "redis-server is not on PATH: the Redis store tests need a real server "
    "(Debian/Ubuntu: apt-get install redis-server; .ci/run installs it)"
)


class RedisServerError(RuntimeError):
    """The server did not start, or did not answer PING in time."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    """One raw RESP PING: no client library, so this also works while a client is broken."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; the port and data directory survive restarts."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError(MISSING)
        return [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip

    def start(self, timeout: float = READY_TIMEOUT_S) -> RedisServer:
        assert self.proc is None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = _free_port()
        self.starts += 1
        self.proc = subprocess.Popen(
            self.command(),
            cwd=str(self.data_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise RedisServerError(f"redis-server exited with {code}\n{self.log_tail()}")
            if _ping(self.port):
                return self
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"redis-server not answering PING after {timeout}s")

    def _signal(self, signum: signal.Signals, timeout: float) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return proc.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM by PID: redis flushes the append-only file and exits."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL by PID: a crash; only what was fsynced survives."""
        return self._signal(signal.SIGKILL, 5.0)

    def restart(self, *, crash: bool = False) -> RedisServer:
        """Same port, same data directory: clients reconnect to the same address."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def log_tail(self, lines: int = 30) -> str:
        path = self.data_dir / "redis.log"
        if not path.exists():
            return "(no redis log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_redis(data_dir: Path) -> RedisServer:
    """Start a server, or fail the calling test (never skip) when redis-server is missing."""
    if shutil.which("redis-server") is None:
        pytest.fail(MISSING, pytrace=False)
    return RedisServer(data_dir).start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One server for the session; tests that need a clean slate flush it themselves."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
