"""The RSGI entry point: granian's native interface, with the same handlers as the ASGI one.

ASGI moves every request through per-event message dicts (``receive``/``send``) that granian
builds and reads back across its Rust/Python boundary; RSGI hands the handler a scope object
and a protocol whose ``response_bytes`` sends a whole answer in one call, and streams through a
transport. ``App.handle`` is shared, so routing, limits, errors and metering are the same
whichever interface serves (docs/decisions.md, "The server interface").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

from granian.rsgi import ProtocolClosed as RSGIProtocolClosed  # type: ignore[attr-defined]
from granian.rsgi import ProtocolError as RSGIProtocolError  # type: ignore[attr-defined]

from gateway.context import Context
from gateway.edge.app import (
    MAX_HEADER_VALUE,
    STREAM_TYPE,
    App,
    BodySource,
    close_chunks,
    configure_logging,
    header_text,
    settle_heap,
    stream_headers,
)
from gateway.edge.http import Request, StreamResponse
from gateway.settings import Settings

_NO_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class _Transport(Protocol):
    async def send_bytes(self, data: bytes, /) -> None: ...


class _HTTPProtocol(Protocol):
    async def __call__(self) -> bytes: ...
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...
    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> _Transport: ...


async def _whole(protocol: _HTTPProtocol) -> bytes:
    """A body of declared length, read in one call; one the client abandons ends short,
    which ``App`` refuses as cut short."""
    try:
        return await protocol()
    except (RSGIProtocolError, RSGIProtocolClosed):
        return b""


async def _chunks(protocol: _HTTPProtocol) -> AsyncIterator[bytes]:
    """A body without a declared length, chunk by chunk so the limit applies as it
    arrives."""
    try:
        async for chunk in protocol:
            yield chunk
    except (RSGIProtocolError, RSGIProtocolClosed):
        return


async def _empty() -> bytes:
    return b""


def _body(protocol: _HTTPProtocol, declared: int | None, method: str) -> BodySource:
    """The request body's source for ``App.handle`` (which has already refused a declared
    length over the limit)."""
    if declared == 0 or (declared is None and method in _NO_BODY):
        return _empty
    if declared is not None:
        return lambda: _whole(protocol)
    return _chunks(protocol)


def _headers(headers: dict[str, str], content_type: str) -> list[tuple[str, str]]:
    items = [("content-type", content_type)]
    values = "".join(headers.values())
    if values.isascii() and values.isprintable() and len(values) <= MAX_HEADER_VALUE:
        items += headers.items()  # every value already as a header may carry it: one check
    else:
        items += [(k, header_text(v)) for k, v in headers.items()]
    return items


class _Headers(Mapping[str, str]):
    """granian's request headers as a read-only mapping, without copying them into a dict
    (the handlers only look a few up); names are matched case-insensitively, as HTTP says."""

    __slots__ = ("_headers",)

    def __init__(self, headers: Any) -> None:
        self._headers = headers

    def get(self, key: str, default: Any = None) -> Any:
        return self._headers.get(key, default)

    def __getitem__(self, key: str) -> str:
        value: str | None = self._headers.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._headers.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers.keys())

    def __len__(self) -> int:
        return len(self._headers.keys())


def _request(scope: Any, body: bytes, request_id: str) -> Request:
    query = scope.query_string
    client: str = scope.client or ""
    return Request(
        method=scope.method,
        path=scope.path,
        headers=_Headers(scope.headers),
        query=dict(parse_qsl(query)) if query else {},
        body=body,
        client_ip=client.rpartition(":")[0].strip("[]") or None,
        request_id=request_id,
    )


class RSGIApp(App):
    """``App`` served over RSGI; granian calls ``__rsgi_init__``/``__rsgi_del__`` per worker."""

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._background is None:
            self._background = loop.create_task(self.ctx.health_sync.run())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.run_until_complete(self._close())
        except RuntimeError:  # the loop is still running or already closed
            self._close_sync()

    async def __rsgi__(self, scope: Any, protocol: _HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        length = scope.headers.get("content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        result = await self.handle(
            scope.method,
            scope.path,
            declared,
            _body(protocol, declared, scope.method),
            lambda raw, request_id: _request(scope, raw, request_id),
        )
        if isinstance(result, StreamResponse):
            await self._stream(protocol, result)
            return
        protocol.response_bytes(
            result.status, _headers(result.headers, result.content_type), result.body
        )

    async def _stream(self, protocol: _HTTPProtocol, result: StreamResponse) -> None:
        headers = _headers(stream_headers(result), STREAM_TYPE)
        transport = protocol.response_stream(result.status, headers)
        try:
            async for chunk in result.chunks:
                await transport.send_bytes(chunk)
        except (RSGIProtocolClosed, RSGIProtocolError):
            pass  # the client went away: closing the chunks meters what it received
        finally:
            await close_chunks(result.chunks)


def create_rsgi_app() -> RSGIApp:
    """granian's factory target for ``--interface rsgi``."""
    configure_logging()
    app = RSGIApp(Context.build(Settings.from_env()))
    settle_heap()
    return app
