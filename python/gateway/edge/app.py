"""The app: path table → handler, served over ASGI here and over RSGI by ``gateway.edge.rsgi``.

A request's layers, in order, and what each adds:

1. ``App.__call__`` gives it a request id, reads the body within ``max_body_bytes`` (413)
   and ``body_timeout_s`` (408; a body cut short is a 400),
   and finds its handler by exact path, then by pattern (404 ``not_found`` otherwise).
2. The handler (``gateway.api.*``) authenticates, validates, routes, dispatches and meters.
3. ``App`` renders the ``Response``/``StreamResponse``, or turns any ``GatewayError`` into the
   SPEC §6 body; anything unexpected becomes a logged 500 ``internal_error`` with no detail.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

from gateway.api import (
    admin_routes,
    chat,
    embeddings,
    health,
    management,
    messages,
    models,
    provider_keys,
    routing_admin,
    usage,
)
from gateway.context import Context
from gateway.deadlines import Deadlines
from gateway.edge.http import JSON_TYPE, Request, Response, StreamResponse
from gateway.edge.request_ids import new_request_id
from gateway.errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RequestTimeout,
    RequestTooLarge,
    ServiceUnavailable,
)
from gateway.settings import Settings
from gateway.store.ledger import StoreBusy, StoreUnavailable

log = logging.getLogger("routegate")
OUTAGE_LOG_INTERVAL_S = 5.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
BodySource = AsyncIterator[bytes] | Callable[[], Awaitable[bytes]]
"""A request body as its chunks, or as one call that reads it whole."""
Handler = Callable[[Context, Request], Awaitable[Response | StreamResponse]]

ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/chat/completions"): chat.chat_completions,
    ("POST", "/v1/messages"): messages.messages,
    ("POST", "/v1/embeddings"): embeddings.embeddings,
    ("GET", "/v1/models"): models.list_models,
    ("GET", "/v1/usage"): usage.get_usage,
    ("GET", "/v1/workspaces"): management.list_workspaces,
    ("GET", "/health"): health.health,
    ("GET", "/ready"): health.ready,
}
_KEY_PATH = r"^/v1/workspaces/(?P<workspace_id>[^/]+)/keys/(?P<key_id>[^/]+)$"
_DEFAULTS_PATH = r"^/v1/workspaces/(?P<workspace_id>[^/]+)/routing-defaults$"
_POLICIES_PATH = r"^/v1/workspaces/(?P<workspace_id>[^/]+)/policies$"
_POLICY_PATH = r"^/v1/workspaces/(?P<workspace_id>[^/]+)/policies/(?P<name>[^/]+)$"
_PROVIDER_KEYS = r"^/v1/workspaces/(?P<workspace_id>[^/]+)/provider-keys"
_PROVIDER_KEY = _PROVIDER_KEYS + r"/(?P<key_id>[^/]+)"
PATTERNS: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"^/v1/workspaces/(?P<workspace_id>[^/]+)$"), management.get_workspace),
    ("POST", re.compile(r"^/v1/workspaces/(?P<workspace_id>[^/]+)/keys$"), management.create_key),
    ("GET", re.compile(r"^/v1/workspaces/(?P<workspace_id>[^/]+)/keys$"), management.list_keys),
    ("GET", re.compile(_KEY_PATH), management.get_key),
    ("DELETE", re.compile(_KEY_PATH), management.revoke_key),
    ("GET", re.compile(_DEFAULTS_PATH), routing_admin.get_routing_defaults),
    ("PATCH", re.compile(_DEFAULTS_PATH), routing_admin.patch_routing_defaults),
    ("GET", re.compile(_POLICIES_PATH), routing_admin.list_policies),
    ("GET", re.compile(_POLICY_PATH), routing_admin.get_policy),
    ("PUT", re.compile(_POLICY_PATH), routing_admin.put_policy),
    ("DELETE", re.compile(_POLICY_PATH), routing_admin.delete_policy),
    ("POST", re.compile(_PROVIDER_KEYS + "$"), provider_keys.create_provider_key),
    ("GET", re.compile(_PROVIDER_KEYS + "$"), provider_keys.list_provider_keys),
    ("DELETE", re.compile(_PROVIDER_KEY + "$"), provider_keys.delete_provider_key),
    ("POST", re.compile(_PROVIDER_KEY + "/validate$"), provider_keys.validate_provider_key),
    ("POST", re.compile(_PROVIDER_KEY + "/set-default$"), provider_keys.set_default_provider_key),
]
ROUTES.update(admin_routes.ROUTES)
PATTERNS += admin_routes.PATTERNS
KNOWN_PATHS = {path for _, path in ROUTES}
ON_LOOP: frozenset[Handler] = frozenset(
    {
        chat.chat_completions,
        messages.messages,
        embeddings.embeddings,
        models.list_models,
        usage.get_usage,
        health.health,
        health.ready,
    }
)
"""Handlers that never block the loop: their store reads are awaited off it. Every other one
(the management API, whose store calls are synchronous throughout) runs on its own event loop
in a worker thread (``_off_loop``), so a stalled store never stalls this loop."""


def _match(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    handler = ROUTES.get((method, path))
    if handler is not None:
        return handler, {}
    path_known = path in KNOWN_PATHS
    for pattern_method, pattern, candidate in PATTERNS:
        found = pattern.match(path)
        if found:
            if pattern_method == method:
                return candidate, found.groupdict()
            path_known = True
    if path_known:
        raise MethodNotAllowed(f"Method {method} is not allowed on {path}.")
    raise NotFound(f"Unknown path: {method} {path}")


_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
MAX_HEADER_VALUE = 512


def header_text(value: str) -> str:
    """``value`` as a header may carry it: printable ASCII kept, anything else (non-ASCII,
    NUL, CR, LF …) percent-encoded as UTF-8, cut at ``MAX_HEADER_VALUE``. Headers echo what
    clients sent (``X-Model-Requested``), and one bad byte would make the server drop the
    whole response."""
    if not (value.isascii() and value.isprintable()):  # all of 0x20-0x7E, at C speed
        value = quote(value, safe=_HEADER_SAFE)
    return value[:MAX_HEADER_VALUE]


def header_value(value: str) -> bytes:
    """``header_text`` as the bytes ASGI sends."""
    return header_text(value).encode("ascii")


def _header_list(headers: dict[str, str], content_type: str) -> list[tuple[bytes, bytes]]:
    items = [(b"content-type", content_type.encode())]
    items += [(k.encode("ascii"), header_value(v)) for k, v in headers.items()]
    return items


STREAM_TYPE = "text/event-stream; charset=utf-8"


def stream_headers(result: StreamResponse) -> dict[str, str]:
    """A stream's headers: the handler's, and no caching or proxy buffering."""
    return {**result.headers, "cache-control": "no-cache", "x-accel-buffering": "no"}


async def close_chunks(chunks: AsyncIterator[bytes]) -> None:
    """Close a stream's chunk generator, sent through or not: closing meters what the client
    received (``api/streaming.relay_stream``)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _error_response(error: GatewayError, request_id: str) -> Response:
    headers = {**error.headers, "x-request-id": request_id}
    return Response(error.body(request_id), error.status, headers, JSON_TYPE)


def _cut_short() -> InvalidRequest:
    return InvalidRequest(
        "The request body ended before its Content-Length; nothing was processed.",
        code="incomplete_body",
        headers={"connection": "close"},
    )


class App:
    """One per worker process; holds the ``Context`` built at start."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.max_body = ctx.config.defaults.max_body_bytes
        self.body_timeout = ctx.config.defaults.body_timeout_s
        self._closed = False
        self._background: asyncio.Task[None] | None = None
        self._last_outage_log = float("-inf")
        self._deadline_loop: asyncio.AbstractEventLoop | None = None
        self._deadline_set: Deadlines | None = None
        atexit.register(self._close_sync)

    def _log_outage(self, request_id: str, error: StoreUnavailable) -> None:
        """At most one line per ``OUTAGE_LOG_INTERVAL_S``: an outage must not flood the log."""
        now = time.monotonic()
        if now - self._last_outage_log >= OUTAGE_LOG_INTERVAL_S:
            self._last_outage_log = now
            log.warning("store unavailable (request %s and others): %s", request_id, error)

    def _start_background(self) -> None:
        """Share open circuits with the other gateway processes (``health_sync``)."""
        self._background = asyncio.get_running_loop().create_task(self.ctx.health_sync.run())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point (``routegate serve --interface asgi``, or any ASGI server)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _cut_short()
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        result = await self.handle(
            scope["method"],
            scope["path"],
            _declared_length(scope["headers"]),
            chunks(),
            lambda body, request_id: Request.from_scope(scope, body, request_id),
        )
        if isinstance(result, StreamResponse):
            await self._send_stream(send, result)
            return
        await send(
            {
                "type": "http.response.start",
                "status": result.status,
                "headers": _header_list(result.headers, result.content_type),
            }
        )
        await send({"type": "http.response.body", "body": result.body})

    async def handle(
        self,
        method: str,
        path: str,
        declared: int | None,
        body: BodySource,
        make: Callable[[bytes, str], Request],
    ) -> Response | StreamResponse:
        """Route and run one request, whichever server interface brought it, to its response
        (every failure already rendered in the documented error shape). ``body`` is the
        body's chunks, or a call that reads it whole (a declared length: no chunk loop)."""
        if self._background is None:  # no lifespan events from the server: start here
            self._start_background()
        request_id = new_request_id()
        try:
            handler, params = _match(method, path)
            request = make(await self._read_body(declared, body), request_id)
            request.path_params = params
            if handler in ON_LOOP:
                result = await handler(self.ctx, request)
            else:
                result = await self._off_loop(handler, request)
        except GatewayError as error:
            return _error_response(error, request_id)
        except StoreUnavailable as error:  # fail closed (SPEC §6): refuse, say why, log it
            self._log_outage(request_id, error)
            unavailable = ServiceUnavailable("The gateway's store is unavailable; retry shortly.")
            unavailable.headers["retry-after"] = "1"
            return _error_response(unavailable, request_id)
        except StoreBusy:  # back-pressure, in either fail mode
            busy = ServiceUnavailable(
                "The gateway is waiting on its store (every connection is in use); retry shortly."
            )
            busy.headers["retry-after"] = "1"
            return _error_response(busy, request_id)
        except Exception:
            log.exception("internal error on %s %s (request %s)", method, path, request_id)
            return _error_response(InternalError("Internal server error."), request_id)
        if isinstance(result, Response):
            result.headers.setdefault("x-request-id", request_id)
        return result

    async def _off_loop(self, handler: Handler, request: Request) -> Response | StreamResponse:
        """Run ``handler`` to completion on a fresh event loop in a management thread."""

        async def run() -> Response | StreamResponse:
            return await handler(self.ctx, request)

        return await self.ctx.admin_offload(lambda: asyncio.run(run()))

    async def _read_body(self, declared: int | None, source: BodySource) -> bytes:
        """The whole body within ``max_body_bytes`` (413) and ``body_timeout_s`` (408); a
        body cut short (the client disconnects, or fewer bytes than ``Content-Length``) is a
        400 and is never handled."""
        if declared is not None and declared > self.max_body:
            raise self._too_large()
        read = source() if callable(source) else self._receive_all(source)
        try:
            body = await self._deadlines().within(self.body_timeout, read)  # no loop timer
        except asyncio.TimeoutError:
            raise RequestTimeout(
                f"The request body did not arrive within {self.body_timeout:g} s.",
                headers={"connection": "close"},
            ) from None
        if declared is not None and len(body) != declared:
            raise _cut_short()
        if len(body) > self.max_body:
            raise self._too_large()
        return body

    def _deadlines(self) -> Deadlines:
        loop = asyncio.get_running_loop()
        if self._deadline_loop is not loop:
            self._deadline_loop, self._deadline_set = loop, Deadlines(loop)
        assert self._deadline_set is not None
        return self._deadline_set

    async def _receive_all(self, chunks: AsyncIterator[bytes]) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large()
            parts.append(chunk)
        return b"".join(parts)

    def _too_large(self) -> RequestTooLarge:
        return RequestTooLarge(f"Request body exceeds the limit of {self.max_body} bytes.")

    async def _send_stream(self, send: Send, result: StreamResponse) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": result.status,
                "headers": _header_list(stream_headers(result), STREAM_TYPE),
            }
        )
        try:
            async for chunk in result.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await close_chunks(result.chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._background is None:
                    self._start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _close(self) -> None:
        if self._background is not None:
            self._background.cancel()
        if not self._closed:
            self._closed = True
            await self.ctx.aclose()

    def _close_sync(self) -> None:
        """At interpreter exit without a lifespan shutdown: still flush usage records."""
        if not self._closed:
            self._closed = True
            self.ctx.usage.close()


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


GC_GEN0_THRESHOLD = 10_000
"""Allocations between young-generation collections (CPython's default is 700)."""


def settle_heap() -> None:
    """Once a worker has built its app: move everything alive into the collector's permanent
    generation (catalog, tables, modules are never garbage) and collect the young generation
    less often. A request frees almost all it allocates by reference counting, so the
    default's collection every 700 allocations mostly re-scans live objects
    (docs/decisions.md has the figures)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, older, oldest)


def create_app() -> App:
    """granian's factory target: each worker builds its own context from the environment."""
    configure_logging()
    app = App(Context.build(Settings.from_env()))
    settle_heap()
    return app
