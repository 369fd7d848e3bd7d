"""A fast OpenAI-format upstream for load benchmarks.

The gateway's overhead is measured as (latency through the gateway) minus (latency calling
this server directly), so this server must cost almost nothing: a raw asyncio Protocol with
HTTP/1.1 keep-alive and pre-encoded responses, no framework. It answers
``POST /v1/chat/completions`` (non-streaming, and streaming with
``stream_options.include_usage``) with a fixed small completion, and any GET with a model list.

Run: ``python -m gateway.bench.upstream --port 9100`` (``--port 0`` picks a free port; the
first stdout line names it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time

import msgspec

from gateway.bench.http11 import LAST_CHUNK, encode_chunk, parse_chunked, parse_head

REPLY_WORDS = ("Bench", " reply:", " the", " quick", " brown", " fox", " jumps", " over")
PROMPT_TOKENS = 64
COMPLETION_TOKENS = len(REPLY_WORDS)
_CREATED = int(time.time())
_CACHE_MAX = 64


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _Request(msgspec.Struct):
    """Only the fields that change the answer; everything else is ignored."""

    model: str = "bench-model"
    stream: bool = False
    stream_options: _StreamOptions | None = None


_decode_request = msgspec.json.Decoder(_Request).decode
_encode = msgspec.json.encode


def _usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def _completion_body(model: str) -> bytes:
    return _encode(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": _CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(REPLY_WORDS)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": _usage(),
        }
    )


def _chunk(model: str, choices: list[object], usage: object = None) -> bytes:
    event: dict[str, object] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        event["usage"] = usage
    return b"data: " + _encode(event) + b"\n\n"


def _stream_body(model: str, include_usage: bool) -> bytes:
    """The whole SSE stream, already framed as chunks: one write per response."""
    events = [_chunk(model, [{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    events += [
        _chunk(model, [{"index": 0, "delta": {"content": word}, "finish_reason": None}])
        for word in REPLY_WORDS
    ]
    events.append(_chunk(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if include_usage:
        events.append(_chunk(model, [], _usage()))
    events.append(b"data: [DONE]\n\n")
    return b"".join(encode_chunk(e) for e in events) + LAST_CHUNK


def _response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        content_type,
        len(body),
        body,
    )


_NOT_FOUND = _response(b"404 Not Found", b"application/json", b'{"error":{"message":"no"}}')
_BAD_REQUEST = _response(b"400 Bad Request", b"application/json", b'{"error":{"message":"?"}}')
_MODELS = _response(
    b"200 OK",
    b"application/json",
    b'{"object":"list","data":[{"id":"bench-model","object":"model","owned_by":"bench"}]}',
)
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)


class Responder:
    """Maps a request to response bytes, caching the encoded answers per model and mode."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bool, bool], bytes] = {}

    def respond(self, method: bytes, path: bytes, body: bytes) -> bytes:
        if method == b"GET":
            return _MODELS
        if method != b"POST" or not path.startswith(b"/v1/chat/completions"):
            return _NOT_FOUND
        try:
            req = _decode_request(body)
        except msgspec.DecodeError:
            return _BAD_REQUEST
        include_usage = req.stream_options is not None and req.stream_options.include_usage
        key = (req.model, req.stream, include_usage)
        cached = self._cache.get(key)
        if cached is None:
            if req.stream:
                cached = _STREAM_HEAD + _stream_body(req.model, include_usage)
            else:
                cached = _response(b"200 OK", b"application/json", _completion_body(req.model))
            if len(self._cache) < _CACHE_MAX:
                self._cache[key] = cached
        return cached


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection; handles pipelined requests in arrival order."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        transport = self._transport
        while transport is not None and not transport.is_closing():
            head = parse_head(self._buf)
            if head is None:
                return
            if head.chunked:
                decoded = parse_chunked(self._buf, head.end)
                if decoded is None:
                    return
                body, end = decoded
            else:
                end = head.end + max(head.content_length, 0)
                if len(self._buf) < end:
                    return
                body = bytes(self._buf[head.end : end])
            del self._buf[:end]
            method, _, rest = head.first_line.partition(b" ")
            path = rest.partition(b" ")[0]
            transport.write(self._responder.respond(method, path, body))
            if head.close:
                transport.close()


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; print the bound address first so callers can use port 0."""
    loop = asyncio.get_running_loop()
    responder = Responder()
    server = await loop.create_server(
        lambda: UpstreamProtocol(responder), host, port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"bench upstream listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench.upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
