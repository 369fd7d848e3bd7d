"""A real Anthropic Messages-format upstream: ``UpstreamServer`` answering ``POST /v1/messages``.

``AnthropicReply`` is answered as a Messages JSON body, or as Anthropic's SSE event sequence
(``message_start``, ``ping``, content blocks with ``thinking_delta`` / ``text_delta`` /
``input_json_delta``, ``message_delta`` with ``stop_reason`` and usage, ``message_stop``) when
the request has ``stream: true``. ``AnthropicContinue`` is a provider that accepts an
assistant prefill (``support.continuation``): the whole text to an ordinary request, the rest
after the prefill to a request ending in one. ``broken_events`` cuts an Anthropic stream short
for a ``ScriptedStream``. Every other behaviour of ``support.upstream`` (``Status``, ``Delay``,
``Close``, ``ScriptedStream`` …) works unchanged.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from .continuation import answer_text, find_prefill, shape_problem
from .upstream import DEFAULT_TEXT, Status, UpstreamServer, _Handler, split_text


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class AnthropicReply:
    text: str = DEFAULT_TEXT
    thinking: str | None = None
    tools: tuple[ToolUse, ...] = ()
    stop_reason: str = "end_turn"
    input_tokens: int = 12
    output_tokens: int = 9
    cache_read: int = 0
    cache_creation: int = 0
    model: str | None = None


@dataclass(frozen=True)
class AnthropicContinue:
    """``text`` whole, or the rest of it after an assistant prefill (Anthropic's own prefill:
    a trailing-whitespace prefill is a 400, as there). ``reject``: a 400 to any prefill."""

    text: str
    input_tokens: int = 12
    output_tokens: int = 9
    reject: bool = False


def continuation(behaviour: AnthropicContinue, request: Any) -> AnthropicReply | Status:
    def reply(text: str) -> AnthropicReply:
        return AnthropicReply(
            text=text, input_tokens=behaviour.input_tokens, output_tokens=behaviour.output_tokens
        )

    prefill = find_prefill(request)
    if prefill is None:
        return reply(behaviour.text)
    problem = "assistant prefill is not supported" if behaviour.reject else None
    problem = problem or shape_problem("assistant", request, prefill)
    if problem is not None:
        return Status(400, body=anthropic_error("invalid_request_error", problem))
    return reply(answer_text("assistant", behaviour.text, prefill.text))


def anthropic_error(status_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": status_type, "message": message}}


def _usage(reply: AnthropicReply) -> dict[str, int]:
    return {
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
        "cache_read_input_tokens": reply.cache_read,
        "cache_creation_input_tokens": reply.cache_creation,
    }


def message_body(request: Any, reply: AnthropicReply) -> dict[str, Any]:
    model = reply.model or (request or {}).get("model") or "claude"
    content: list[dict[str, Any]] = []
    if reply.thinking:
        content.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig"})
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for tool in reply.tools:
        content.append({"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input})
    return {
        "id": f"msg_up_{uuid.uuid4().hex[:12]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": _usage(reply),
    }


def stream_events(request: Any, reply: AnthropicReply) -> list[bytes]:
    body = message_body(request, reply)
    start = {**body, "content": [], "stop_reason": None}
    start["usage"] = {**_usage(reply), "output_tokens": 1}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]
    index = 0

    def block(first: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        nonlocal index
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": first},
            )
        )
        for delta in deltas:
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1

    if reply.thinking:
        block(
            {"type": "thinking", "thinking": ""},
            [{"type": "thinking_delta", "thinking": p} for p in split_text(reply.thinking)]
            + [{"type": "signature_delta", "signature": "sig"}],
        )
    if reply.text:
        block(
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": p} for p in split_text(reply.text)],
        )
    for tool in reply.tools:
        args = json.dumps(tool.input)
        cut = max(1, len(args) // 2)
        pieces = ["", args[:cut], args[cut:]]
        block(
            {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}},
            [{"type": "input_json_delta", "partial_json": p} for p in pieces],
        )
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


def broken_events(request: Any, reply: AnthropicReply, text_deltas: int) -> list[bytes]:
    """The start of ``reply``'s stream up to and including its ``text_deltas``-th text delta
    (no ``content_block_stop``, ``message_delta`` or ``message_stop``): put a break after it."""
    kept: list[bytes] = []
    seen = 0
    for event in stream_events(request, reply):
        if seen >= text_deltas:
            break
        kept.append(event)
        seen += b'"text_delta"' in event
    return kept


def error_event(kind: str = "overloaded_error", message: str = "Overloaded") -> bytes:
    """Anthropic's mid-stream ``event: error``."""
    return f"event: error\ndata: {json.dumps(anthropic_error(kind, message))}\n\n".encode()


class _AnthropicHandler(_Handler):
    def _run(self, behaviour: Any, request: Any) -> None:
        if isinstance(behaviour, AnthropicContinue):
            behaviour = continuation(behaviour, request)
        if not isinstance(behaviour, AnthropicReply):
            super()._run(behaviour, request)
            return
        if isinstance(request, dict) and request.get("stream") is True:
            self._send_events(stream_events(request, behaviour))
        else:
            self._send_json(200, message_body(request, behaviour))

    def _send_events(self, events: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class AnthropicUpstream(UpstreamServer):
    """An Anthropic-format provider on loopback; ``base_url`` ends in ``/v1``."""

    def __init__(self, name: str = "anthropic-upstream") -> None:
        super().__init__(name)
        self._server.RequestHandlerClass = _AnthropicHandler
        self._default = AnthropicReply()

    def reset(self) -> None:
        super().reset()
        self.set_default(AnthropicReply())

    def message_requests(self) -> list[Any]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/messages")]

    def last_message(self) -> Any:
        reqs = self.message_requests()
        assert reqs, f"{self.name} received no Messages request"
        return reqs[-1]
