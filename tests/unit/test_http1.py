"""The upstream HTTP/1.1 client (``gateway.providers.http1``) against real sockets on
loopback: scripted raw servers send answers in arbitrary pieces, cut them, stall, compress
them, close kept-alive connections. Properties for the pure parts (targets, header blocks)
and for framing under any split of the bytes."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Awaitable, Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.providers.http1 import (
    ConnectError,
    ConnectionCut,
    Pool,
    Target,
    header_block,
    parse_target,
)

Piece = bytes | float  # bytes to send, or seconds to wait
Script = Callable[[int], Sequence[Piece]]  # connection's request number -> what to answer


class RawServer:
    """Answers each request on a connection with ``script(n)``; counts connections; a
    ``None`` piece closes the connection."""

    def __init__(self, script: Callable[[int], Sequence[Piece | None]]) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                for piece in self.script(n):
                    if piece is None:
                        writer.close()
                        return
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                    else:
                        writer.write(piece)
                        await writer.drain()
                n += 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    def url(self, path: str = "/v1/chat") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


BLOCK = header_block({"content-type": "application/json", "authorization": "Bearer k"})


def request_bytes(target: Target, body: bytes = b"{}") -> bytes:
    head = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (
        target.path,
        target.host_header,
        len(body),
    )
    return head + BLOCK + b"\r\n" + body


async def fetch(
    pool: Pool, url: str, *, stall: float | None = None, deadline: float = 5.0
) -> tuple[int, bytes]:
    target = pool.target(url)
    conn = await pool.acquire(target, 2.0)
    conn.send(request_bytes(target), deadline)
    try:
        response = await conn.head()
        if stall is None:
            return response.status, await conn.read_all()
        conn.set_stall(stall)
        parts = []
        while part := await conn.read_some():
            parts.append(part)
        return response.status, b"".join(parts)
    finally:
        pool.release(conn)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def chunked(body: bytes, sizes: Sequence[int]) -> bytes:
    out, i = [], 0
    for size in sizes:
        if i >= len(body):
            break
        piece = body[i : i + size]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        i += size
    if i < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - i, body[i:]))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def split(data: bytes, cuts: Sequence[int]) -> list[Piece | None]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces: list[Piece | None] = []
    last = 0
    for point in [*points, len(data)]:
        if point > last:
            pieces.append(data[last:point])
            pieces.append(0.0)
            last = point
    return pieces


# -- pure parts -------------------------------------------------------------------------


@given(
    st.sampled_from(["http", "https"]),
    st.sampled_from(["api.example.com", "127.0.0.1", "::1", "localhost"]),
    st.one_of(st.none(), st.integers(1, 65535)),
    st.text("abcXYZ/-_.", max_size=20),
    st.text("a=b&c", max_size=8),
)
def test_a_target_keeps_host_port_and_path(
    scheme: str, host: str, port: int | None, path: str, query: str
) -> None:
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}{f':{port}' if port else ''}/{path}{'?' + query if query else ''}"
    target = parse_target(url)
    default = 443 if scheme == "https" else 80
    assert (target.host, target.port, target.tls) == (host, port or default, scheme == "https")
    assert target.path == f"/{path}{'?' + query if query else ''}".encode()
    expected_host = shown if (port or default) == default else f"{shown}:{port}"
    assert target.host_header == expected_host.encode()


@pytest.mark.parametrize("url", ["ftp://x/y", "http:///nohost", "unix:/tmp/s", "x"])
def test_a_target_must_be_http(url: str) -> None:
    with pytest.raises(ValueError):
        parse_target(url)


@given(st.dictionaries(st.text("abc-XYZ", min_size=1, max_size=8), st.text(max_size=30)))
def test_a_header_block_carries_no_line_break(headers: dict[str, str]) -> None:
    """Every header is one line, or the block is refused: no value can add a header."""
    try:
        block = header_block(headers)
    except ValueError as error:
        assert any(c in v for v in headers.values() for c in "\r\n\0")
        assert not any(v and v in str(error) for v in headers.values() if len(v) > 3)
        return
    lines = block.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == len(headers) + 1
    for (name, value), line in zip(headers.items(), lines, strict=False):
        assert line == f"{name}: {value}".encode()


def test_a_header_name_with_a_colon_or_space_is_refused() -> None:
    for name in ("a:b", "a b", "a\r\nb"):
        with pytest.raises(ValueError):
            header_block({name: "v"})


# -- framing under any split --------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(min_size=0, max_size=600),
    sizes=st.lists(st.integers(1, 97), min_size=1, max_size=12),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
    use_chunks=st.booleans(),
)
def test_any_split_of_an_answer_reads_the_same_body(
    body: bytes, sizes: list[int], cuts: list[int], use_chunks: bool
) -> None:
    if use_chunks:
        wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked(body, sizes)
    else:
        wire = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    async def main() -> None:
        async with RawServer(lambda n: split(wire, cuts)) as server:
            pool = Pool()
            for _ in range(2):  # the second one reuses the connection
                assert await fetch(pool, server.url()) == (200, body)
                assert await fetch(pool, server.url(), stall=1.0) == (200, body)
            assert server.connections == 1
            pool.close()

    run(main)


def test_a_compressed_answer_is_inflated() -> None:
    body = b'{"x": "' + b"y" * 5000 + b'"}'
    packed = gzip.compress(body)
    wire = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed)

    async def main() -> None:
        async with RawServer(lambda n: [wire + packed]) as server:
            assert await fetch(Pool(), server.url()) == (200, body)

    run(main)


def test_an_unknown_content_encoding_is_a_cut_not_garbage() -> None:
    wire = b"HTTP/1.1 200 OK\r\ncontent-encoding: zstd\r\ncontent-length: 2\r\n\r\n{}"

    async def main() -> None:
        async with RawServer(lambda n: [wire]) as server:
            with pytest.raises(ConnectionCut, match="zstd"):
                await fetch(Pool(), server.url())

    run(main)


# -- connection reuse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "reused"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n", False),
    ],
)
def test_a_connection_is_kept_only_when_the_server_keeps_it(head: bytes, reused: bool) -> None:
    async def main() -> None:
        async with RawServer(lambda n: [head + b"{}"]) as server:
            pool = Pool()
            for _ in range(3):
                assert await fetch(pool, server.url()) == (200, b"{}")
            assert server.connections == (1 if reused else 3)

    run(main)


def test_a_body_until_close_ends_with_the_connection() -> None:
    async def main() -> None:
        async with RawServer(lambda n: [b"HTTP/1.1 200 OK\r\n\r\n{", 0.01, b"}", None]) as server:
            pool = Pool()
            assert await fetch(pool, server.url()) == (200, b"{}")
            assert await fetch(pool, server.url()) == (200, b"{}")
            assert server.connections == 2

    run(main)


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async def main() -> None:
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
        async with RawServer(lambda n: [ok, 0.01, None]) as server:
            pool = Pool()
            assert await fetch(pool, server.url()) == (200, b"{}")
            await asyncio.sleep(0.1)  # the server closes the kept connection meanwhile
            assert await fetch(pool, server.url()) == (200, b"{}")
            assert server.connections == 2

    run(main)


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pieces",
    [
        [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}", None],  # short body
        [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n", None],  # no end
        [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\ncontent-le", None],  # cut in the head
        [b"NOT HTTP AT ALL\r\n\r\n"],
        [None],  # closed before answering
    ],
    ids=["short", "unterminated", "bad-chunk", "cut-head", "not-http", "closed"],
)
def test_a_broken_answer_is_a_cut(pieces: list[Piece | None]) -> None:
    async def main() -> None:
        async with RawServer(lambda n: pieces) as server:
            pool = Pool()
            with pytest.raises(ConnectionCut):
                await fetch(pool, server.url())
            assert not any(pool._idle.values())

    run(main)


@pytest.mark.parametrize("trickle", [False, True])
def test_a_head_past_64_kib_is_refused(trickle: bool) -> None:
    huge = b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"a" * 70_000 + b"\r\ncontent-length: 0\r\n\r\n"
    pieces: list[Piece | None] = split(huge, range(0, len(huge), 4096)) if trickle else [huge]

    async def main() -> None:
        async with RawServer(lambda n: pieces) as server:
            with pytest.raises(ConnectionCut, match="64 KiB"):
                await fetch(Pool(), server.url())

    run(main)


@pytest.mark.parametrize("use_chunks", [False, True])
def test_a_large_answer_read_with_its_head_is_whole(use_chunks: bool) -> None:
    """A head bound must not count the body that arrives in the same read."""
    body = b'{"x": "' + b"y" * 300_000 + b'"}'
    if use_chunks:
        wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked(body, [70_000])
    else:
        wire = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    async def main() -> None:
        async with RawServer(lambda n: [wire]) as server:
            assert await fetch(Pool(), server.url()) == (200, body)

    run(main)


def test_a_refused_port_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        with pytest.raises(ConnectError):
            await fetch(Pool(), f"http://127.0.0.1:{port}/v1")

    run(main)


def test_the_deadline_ends_a_silent_answer() -> None:
    async def main() -> None:
        async with RawServer(lambda n: [3.0]) as server:
            pool = Pool()
            target = pool.target(server.url())
            conn = await pool.acquire(target, 2.0)
            conn.send(request_bytes(target), 0.2)
            started = asyncio.get_running_loop().time()
            with pytest.raises(asyncio.TimeoutError):
                await conn.head()
            assert asyncio.get_running_loop().time() - started < 1.0
            pool.release(conn)
            assert not any(pool._idle.values())

    run(main)


def test_a_deadline_ends_with_its_own_exchange() -> None:
    """A kept connection's next exchanges never meet an earlier exchange's deadline."""
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"

    async def main() -> None:
        async with RawServer(lambda n: [ok]) as server:
            pool = Pool()
            for _ in range(8):  # 400 ms in all, each under a 150 ms deadline
                assert await fetch(pool, server.url(), deadline=0.15) == (200, b"{}")
                await asyncio.sleep(0.05)
            assert server.connections == 1

    run(main)


def test_the_stall_timer_fires_only_on_silence() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    steady: list[Piece | None] = [head, *[p for _ in range(8) for p in (b"1\r\na\r\n", 0.05)]]

    async def main() -> None:
        async with RawServer(lambda n: [*steady, b"0\r\n\r\n"]) as server:
            # 8 pieces 50 ms apart (400 ms in all) under a 150 ms stall: no timeout
            assert await fetch(Pool(), server.url(), stall=0.15) == (200, b"a" * 8)
        async with RawServer(lambda n: [*steady, 0.5, b"0\r\n\r\n"]) as server:
            with pytest.raises(asyncio.TimeoutError):
                await fetch(Pool(), server.url(), stall=0.15)

    run(main)
