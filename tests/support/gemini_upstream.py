"""A real Gemini-format upstream: ``UpstreamServer`` answering
``POST /v1beta/models/{id}:generateContent`` and ``:streamGenerateContent?alt=sse``.

``GeminiReply`` is answered as one ``GenerateContentResponse``, or (stream path) as SSE events
``data: {GenerateContentResponse}\\r\\n\\r\\n``: thought parts, then the text word by word, then
function calls, the last event carrying ``finishReason`` and ``usageMetadata``. No ``[DONE]``
(Gemini sends none). Every other behaviour of ``support.upstream`` works unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .upstream import DEFAULT_TEXT, UpstreamServer, _Handler, split_text


@dataclass(frozen=True)
class FunctionCall:
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class GeminiReply:
    text: str = DEFAULT_TEXT
    thought: str | None = None
    calls: tuple[FunctionCall, ...] = ()
    finish_reason: str = "STOP"
    prompt_tokens: int = 12
    candidates_tokens: int = 9
    cached_tokens: int = 0
    thoughts_tokens: int = 0


def _usage(reply: GeminiReply) -> dict[str, int]:
    usage = {
        "promptTokenCount": reply.prompt_tokens,
        "candidatesTokenCount": reply.candidates_tokens,
        "totalTokenCount": reply.prompt_tokens + reply.candidates_tokens + reply.thoughts_tokens,
    }
    if reply.cached_tokens:
        usage["cachedContentTokenCount"] = reply.cached_tokens
    if reply.thoughts_tokens:
        usage["thoughtsTokenCount"] = reply.thoughts_tokens
    return usage


def _response(
    parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int]
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-upstream-001",
        "responseId": "resp-up-1",
    }


def _parts(reply: GeminiReply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reply.thought:
        parts.append({"text": reply.thought, "thought": True})
    if reply.text:
        parts.append({"text": reply.text})
    parts.extend({"functionCall": {"name": c.name, "args": c.args}} for c in reply.calls)
    return parts


def response_body(reply: GeminiReply) -> dict[str, Any]:
    return _response(_parts(reply), reply.finish_reason, _usage(reply))


def stream_events(reply: GeminiReply) -> list[bytes]:
    early = {"promptTokenCount": reply.prompt_tokens}
    bodies: list[dict[str, Any]] = []
    if reply.thought:
        bodies.append(_response([{"text": reply.thought, "thought": True}], None, early))
    bodies.extend(_response([{"text": p}], None, early) for p in split_text(reply.text) if p)
    calls = [{"functionCall": {"name": c.name, "args": c.args}} for c in reply.calls]
    bodies.append(_response(calls, reply.finish_reason, _usage(reply)))
    return [b"data: " + json.dumps(b).encode() + b"\r\n\r\n" for b in bodies]


class _GeminiHandler(_Handler):
    def _run(self, behaviour: Any, request: Any) -> None:
        if not isinstance(behaviour, GeminiReply):
            super()._run(behaviour, request)
            return
        if ":streamGenerateContent" not in self.path:
            self._send_json(200, response_body(behaviour))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in stream_events(behaviour):
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class GeminiUpstream(UpstreamServer):
    """A Gemini-format provider on loopback; ``base_url`` ends in ``/v1beta``."""

    def __init__(self, name: str = "gemini-upstream") -> None:
        super().__init__(name)
        self._server.RequestHandlerClass = _GeminiHandler
        self._default = GeminiReply()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1beta"

    def reset(self) -> None:
        super().reset()
        self.set_default(GeminiReply())

    def last_call(self) -> Any:
        reqs = [r for r in self.requests if ":" in r.path.rsplit("/", 1)[-1]]
        assert reqs, f"{self.name} received no generateContent request"
        return reqs[-1]
