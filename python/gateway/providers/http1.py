"""A lean keep-alive HTTP/1.1 client for the upstream calls, on asyncio protocols.

Why not aiohttp: per call it builds request, response, timer and stream objects and runs
several tasks' worth of awaits; this client sends one pre-built header block and reads the
answer in ``data_received`` with httptools (llhttp, the parser Node.js uses), so an upstream
call costs the loop one write, one read callback and one future (measured in
docs/decisions.md). It does exactly what the wire needs: POST or GET, ``Content-Length``,
chunked or until-close bodies, gzip/deflate if a server compresses anyway, pooled keep-alive
connections per host, TLS through ``ssl``.

Failures are plain exceptions for ``wire_http`` to map: ``ConnectError`` (refused or
unresolvable: nothing was sent), ``ConnectionCut`` (the connection dropped or broke HTTP after
it was made), ``asyncio.TimeoutError``.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import httptools

from gateway.deadlines import Deadline, Deadlines

_MAX_HEAD_BYTES = 64 * 1024
_IDLE_S = 30.0  # a pooled connection unused this long is closed rather than reused
_MAX_IDLE_PER_HOST = 256
_URL_CACHE_MAX = 512


class ConnectError(OSError):
    """The connection could not be made: refused, unreachable or unresolvable."""


class ConnectionCut(OSError):
    """The connection dropped, or the server broke HTTP, after it was made."""


class Target(NamedTuple):
    """Where one URL goes: the pool key and the request line's parts."""

    host: str
    port: int
    tls: bool
    path: bytes
    host_header: bytes


def parse_target(url: str) -> Target:
    """``Target`` of an ``http``/``https`` URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
    return Target(host, port, tls, path.encode("ascii"), host_header.encode("idna"))


def header_block(headers: dict[str, str]) -> bytes:
    """``Name: value\\r\\n`` lines, once per client; a line break or NUL in a name or a value
    would let it smuggle another header, so it is refused (ValueError, naming the header)."""
    lines = []
    for name, value in headers.items():
        if any(c in name for c in "\r\n\0: ") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} holds a character a header cannot")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode()  # UTF-8, as aiohttp sent them


class Response:
    """Status and headers (names lower-cased); the body is read through ``Connection``."""

    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, pool: Pool, key: tuple[str, int, bool]) -> None:
        self._pool = pool
        self.key = key
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self._deadlines = pool.deadlines
        self._timer: asyncio.TimerHandle | Deadline | None = None
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: dict[str, str] = {}
        self._head_bytes = 0  # bytes read while the head is incomplete
        self._header_bytes = 0  # names and values parsed
        self._head_done = False
        self._keep_alive = False
        self.complete = False
        self._body: deque[bytes] = deque()
        self._inflate: Any = None
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._stall = 0.0
        self._last_data = 0.0
        self._cancel_timer()  # a timer left from the last exchange must never fire on this one

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        head_pending = not self._head_done
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionCut(f"the upstream broke HTTP/1.1 ({type(exc).__name__})"))
            return
        if head_pending and not self._head_done:
            self._head_bytes += len(data)  # a head still unfinished: bounded while it trickles
        if not self._head_done and self._head_bytes > _MAX_HEAD_BYTES:
            self._fail(ConnectionCut("the upstream's response head exceeds 64 KiB"))
            return
        if self._stall:
            self._last_data = self._loop.time()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._pool.forget(self)
        if self.complete:
            return
        if self._head_done and self._until_close():
            self._finish()  # a body without length or chunking ends when the server closes
        else:
            reason = type(exc).__name__ if exc is not None else "closed by the upstream"
            self._fail(ConnectionCut(f"connection lost ({reason})"))

    # -- httptools callbacks -----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEAD_BYTES:
            self._fail(ConnectionCut("the upstream's response head exceeds 64 KiB"))
            raise ConnectionCut  # stops the parser; the failure above is the one kept
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()  # llhttp forgets it once complete
        self._head_done = True
        encoding = self._headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._inflate = zlib.decompressobj(47 if "gzip" in encoding else zlib.MAX_WBITS)
        elif encoding not in ("identity", ""):
            self._fail(ConnectionCut(f"the upstream sent content-encoding {encoding[:32]!r}"))

    def on_body(self, body: bytes) -> None:
        if self._inflate is not None:
            try:
                body = self._inflate.decompress(body)
            except zlib.error:
                self._fail(ConnectionCut("the upstream sent a body that does not inflate"))
                return
        if body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self._finish()

    # -- state -------------------------------------------------------------------------
    def _until_close(self) -> bool:
        h = self._headers
        return "content-length" not in h and "chunked" not in h.get("transfer-encoding", "")

    def _finish(self) -> None:
        if self._inflate is not None:
            try:
                tail = self._inflate.flush()
            except zlib.error:
                tail = b""
            if tail:
                self._body.append(tail)
        self.complete = True
        self._cancel_timer()
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self.complete:
            self._error = error
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self._loop.create_future()
        await self._waiter
        if self._error is not None:
            raise self._error

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self._fail(asyncio.TimeoutError())

    def set_stall(self, seconds: float) -> None:
        """From now on, fail when nothing arrives for ``seconds`` (one timer, re-armed only
        when it fires early: a chunk costs a clock read, not a timer)."""
        self._stall = seconds
        self._last_data = self._loop.time()
        self._cancel_timer()
        self._timer = self._loop.call_later(seconds, self._check_stall)

    def _check_stall(self) -> None:
        left = self._last_data + self._stall - self._loop.time()
        if left > 0:
            self._timer = self._loop.call_later(left, self._check_stall)
        else:
            self._timer = None
            self._fail(asyncio.TimeoutError())

    # -- one exchange ------------------------------------------------------------------
    def send(self, data: bytes, deadline: float | None) -> None:
        """Start an exchange: write the request; abort it with TimeoutError ``deadline``
        seconds from now unless the answer is complete by then (None: no deadline)."""
        self._reset()
        assert self.transport is not None
        self.transport.write(data)
        if deadline is not None:  # a coarse deadline (``gateway.deadlines``): no loop timer
            self._timer = self._deadlines.after(deadline, self._expire)

    async def head(self) -> Response:
        """Wait for the status line and headers."""
        while not self._head_done:
            if self._error is not None:
                raise self._error
            self._waiter = self._loop.create_future()
            await self._waiter  # ``_wait``, inline: the one wait of almost every exchange
        if self._error is not None:
            raise self._error
        return Response(self._status, self._headers)

    async def read_all(self) -> bytes:
        """The rest of the body, whole."""
        while not self.complete:
            await self._wait()
        return self.take_body()

    def take_body(self) -> bytes:
        """The body read so far, whole (all of it once ``complete``)."""
        body, self._body = b"".join(self._body), deque()
        return body

    async def read_some(self) -> bytes:
        """What has arrived of the body, at least one byte; b"" once it is complete."""
        while not self._body:
            if self.complete:
                return b""
            await self._wait()
        if len(self._body) == 1:
            return self._body.popleft()
        body, self._body = b"".join(self._body), deque()
        return body

    def reusable(self) -> bool:
        return (
            self.complete
            and self._error is None
            and self.transport is not None
            and self._keep_alive
        )

    def close(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Idle keep-alive connections per (host, port, tls), reused most-recent first."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.deadlines = Deadlines(self.loop)
        self._idle: dict[tuple[str, int, bool], list[Connection]] = {}
        self._targets: dict[str, Target] = {}
        self._ssl: ssl.SSLContext | None = None
        self._open: set[Connection] = set()

    def target(self, url: str) -> Target:
        found = self._targets.get(url)
        if found is None:
            if len(self._targets) >= _URL_CACHE_MAX:
                self._targets.clear()
            found = self._targets[url] = parse_target(url)
        return found

    def idle(self, target: Target) -> Connection | None:
        """A kept connection to ``target`` that may be reused now (most recent first), or
        None: then ``connect`` makes one."""
        idle = self._idle.get((target.host, target.port, target.tls))
        if not idle:
            return None
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            if conn.transport is not None and now - conn.idle_since < _IDLE_S:
                return conn
            conn.close()
        return None

    async def acquire(self, target: Target, connect_timeout: float) -> Connection:
        """A kept connection, else a new one."""
        conn = self.idle(target)
        return conn if conn is not None else await self.connect(target, connect_timeout)

    async def connect(self, target: Target, connect_timeout: float) -> Connection:
        """A new connection to ``target`` (refused or unresolvable: ``ConnectError``)."""
        conn = Connection(self, (target.host, target.port, target.tls))
        if target.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: conn,
                    target.host,
                    target.port,
                    ssl=self._ssl if target.tls else None,
                    server_hostname=target.host if target.tls else None,
                ),
                connect_timeout,
            )
        except asyncio.TimeoutError:
            raise  # an OSError too since Python 3.11: not a refusal
        except OSError as exc:
            raise ConnectError(f"connection failed: {type(exc).__name__}") from None
        self._open.add(conn)
        return conn

    def release(self, conn: Connection) -> None:
        """Back to the pool when its answer was read whole and it may be kept; else closed."""
        if not conn.reusable():
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= _MAX_IDLE_PER_HOST:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)

    def forget(self, conn: Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
