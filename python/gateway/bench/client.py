"""A lean asyncio HTTP/1.1 client connection for the load generator.

httpx costs a few hundred microseconds of CPU per request, which caps one core well below
the 1,000 req/s the harness must offer. This client sends pre-built request bytes on a
keep-alive socket and parses only the status line and the body framing.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
from collections.abc import Iterator, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

from gateway.bench.http11 import Head, parse_chunked, parse_head


class Response(NamedTuple):
    status: int
    body: bytes
    first_byte: float = 0.0
    """Loop time at which the first byte of the body arrived (a stream's first event)."""


class Target(NamedTuple):
    """Where to connect and the exact bytes of the requests to send, built once: ``request``
    is the first, and ``next_request`` takes them in turn (one body: always the same)."""

    host: str
    port: int
    request: bytes
    rotation: Iterator[bytes]

    def next_request(self) -> bytes:
        return next(self.rotation)


def build_target(
    url: str, body: bytes | Sequence[bytes], headers: dict[str, str] | None = None
) -> Target:
    """POST ``body`` (JSON; several: each in turn) to ``url`` with ``headers``; the request
    bytes are built once and reused."""
    bodies = [body] if isinstance(body, bytes) else list(body)
    if not bodies:
        raise ValueError("at least one request body is needed")
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.hostname}:{port}",
        "Content-Type: application/json",
        "Accept: */*",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    head = "\r\n".join(lines).encode("latin-1")
    requests = [b"%s\r\nContent-Length: %d\r\n\r\n%s" % (head, len(one), one) for one in bodies]
    return Target(parts.hostname, port, requests[0], itertools.cycle(requests))


class _ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.must_close = False
        self._buf = bytearray()
        self._head: Head | None = None
        self._first_byte: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self.waiter is None:
            return
        if self._head is None:
            self._head = parse_head(self._buf)
            if self._head is None:
                return
        head = self._head
        if self._first_byte is None and len(self._buf) > head.end:
            self._first_byte = asyncio.get_running_loop().time()
        if head.chunked:
            decoded = parse_chunked(self._buf, head.end)
            if decoded is None:
                return
            body, end = decoded
        elif head.content_length >= 0:
            end = head.end + head.content_length
            if len(self._buf) < end:
                return
            body = bytes(self._buf[head.end : end])
        else:
            return  # body delimited by connection close
        del self._buf[:end]
        self._finish(head, body)

    def _finish(self, head: Head, body: bytes) -> None:
        first_byte = self._first_byte
        if first_byte is None:  # an empty body: its first byte is its end
            first_byte = asyncio.get_running_loop().time()
        self._head, self._first_byte = None, None
        self.must_close = head.close
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(int(head.first_line[9:12]), body, first_byte))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        head = self._head
        if head is not None and not head.chunked and head.content_length < 0:
            self._finish(head, bytes(self._buf[head.end :]))
            return
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc or ConnectionResetError("connection closed by server"))


class Connection:
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, protocol: _ClientProtocol) -> None:
        self._protocol = protocol

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_ClientProtocol, host, port)
        return cls(protocol)

    @property
    def reusable(self) -> bool:
        return not (self._protocol.closed or self._protocol.must_close)

    def request(self, data: bytes) -> asyncio.Future[Response]:
        """Send ``data`` and return a future for the response; one request in flight at most."""
        protocol = self._protocol
        if protocol.closed or protocol.transport is None:
            raise ConnectionResetError("connection is closed")
        if protocol.waiter is not None:
            raise RuntimeError("a request is already in flight on this connection")
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        protocol.waiter = waiter
        protocol.transport.write(data)
        return waiter

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()


class Pool:
    """Keep-alive connections handed out LIFO; opens more on demand up to ``max_conns``."""

    def __init__(self, target: Target, max_conns: int) -> None:
        self._target = target
        self._max = max_conns
        self._idle: list[Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[Connection]] = collections.deque()

    async def prefill(self, n: int) -> None:
        n = min(n, self._max) - self._open
        conns = await asyncio.gather(*(self._connect() for _ in range(n)))
        self._idle.extend(conns)

    async def _connect(self) -> Connection:
        self._open += 1
        try:
            return await Connection.open(self._target.host, self._target.port)
        except BaseException:
            self._open -= 1
            raise

    async def acquire(self) -> Connection:
        if self._idle:
            return self._idle.pop()
        if self._open < self._max:
            return await self._connect()
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def release(self, conn: Connection) -> None:
        if not conn.reusable:
            self.discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def discard(self, conn: Connection) -> None:
        conn.close()
        self._open -= 1
        while self._waiters:  # let a waiter open a fresh connection
            waiter = self._waiters.popleft()
            if not waiter.done():
                task = asyncio.ensure_future(self._connect())
                task.add_done_callback(functools.partial(_hand_over, waiter=waiter))
                return

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _hand_over(task: asyncio.Future[Connection], waiter: asyncio.Future[Connection]) -> None:
    if waiter.done():
        if not task.cancelled() and task.exception() is None:
            task.result().close()
        return
    if task.cancelled():
        waiter.cancel()
    elif (exc := task.exception()) is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(task.result())


async def fetch(target: Target, timeout: float = 10.0) -> Response:
    """One request on a fresh connection: for sanity checks before a run."""
    conn = await asyncio.wait_for(Connection.open(target.host, target.port), timeout)
    try:
        return await asyncio.wait_for(conn.request(target.request), timeout)
    finally:
        conn.close()
