"""A real OpenAI-format upstream provider: an HTTP/1.1 server on loopback in a thread.

It records every request (method, path, headers, raw and decoded JSON body) and answers
according to a programmable behaviour: a FIFO queue consumed one behaviour per request,
then a default. Behaviours:

- ``Reply``: a normal completion (JSON, or OpenAI SSE chunks when the request has
  ``stream: true``; the usage chunk is sent only when ``stream_options.include_usage``).
- ``Status``: an error status with a JSON body and extra headers (e.g. ``Retry-After``).
- ``Delay``: sleep before sending anything, then another behaviour.
- ``Hang``: send nothing until ``seconds`` pass (or the server stops), then close.
- ``Close``: close the connection without answering.
- ``CutStream``: send the first ``after_chunks`` SSE chunks of a stream, then drop the
  connection (no terminating chunk, no ``[DONE]``).
- ``ScriptedStream``: a 200 event stream written exactly as scripted (raw SSE bytes and
  ``Pause`` steps), ending cleanly, cut, or hanging (for malformed chunks, stalls, a slow
  first token, streams without ``[DONE]``).
- ``Continue``: a provider that accepts an assistant prefill (``support.continuation``): a
  request without one gets the whole text, a request with one the rest of it (or a 400).
- ``CutBody``: a non-streaming answer whose body is dropped after its headers and a part.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from .continuation import Style, answer_text, find_prefill, shape_problem

DEFAULT_TEXT = "Hello from the upstream. The answer is 42."
DEFAULT_PROMPT_TOKENS = 12
DEFAULT_COMPLETION_TOKENS = 9


@dataclass(frozen=True)
class Reply:
    text: str = DEFAULT_TEXT
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS
    completion_tokens: int = DEFAULT_COMPLETION_TOKENS
    finish_reason: str = "stop"
    model: str | None = None  # None: echo the request's model
    headers: tuple[tuple[str, str], ...] = ()
    chunk_delay_s: float = 0.0


@dataclass(frozen=True)
class Status:
    status: int
    body: Any = None  # dict → JSON; str → text; None → OpenAI-style error body
    headers: tuple[tuple[str, str], ...] = ()
    message: str = "upstream error"


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Behaviour = field(default_factory=Reply)


@dataclass(frozen=True)
class Hang:
    seconds: float = 30.0


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class CutStream:
    after_chunks: int = 2
    reply: Reply = field(default_factory=Reply)


@dataclass(frozen=True)
class Pause:
    """A ``ScriptedStream`` step: send nothing for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class ScriptedStream:
    """A 200 ``text/event-stream`` answer, headers first, then each step in order: ``bytes``
    are written as they are (one HTTP chunk each, so malformed events go out verbatim) and
    ``Pause`` sleeps. Then ``end``: ``"eof"`` ends the chunked body cleanly (whether or not
    the steps held ``[DONE]``), ``"cut"`` drops the connection (RST), ``"hang"`` sends
    nothing more for ``hang_s`` seconds and then drops it."""

    steps: tuple[bytes | Pause, ...]
    end: Literal["eof", "cut", "hang"] = "eof"
    hang_s: float = 5.0


@dataclass(frozen=True)
class Continue:
    """Answers ``text`` whole, or — to a request ending in a prefill of ``style`` — only the
    rest of it after the prefill (``prefix_echo``: the prefill, then the rest). ``reject``:
    a 400 to any request with a prefill (a provider that claimed support it lacks); a prefill
    of the wrong style is a 400 too, whose message says so."""

    text: str
    style: Style
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS
    completion_tokens: int = DEFAULT_COMPLETION_TOKENS
    reject: bool = False
    chunk_delay_s: float = 0.0


@dataclass(frozen=True)
class CutBody:
    """200 with the ``Content-Length`` of the full JSON completion, then only the first
    ``fraction`` of the body, then the connection dropped (a non-streaming mid-body cut)."""

    reply: Reply = field(default_factory=Reply)
    fraction: float = 0.5


Behaviour = Reply | Status | Delay | Hang | Close | CutStream | ScriptedStream | Continue | CutBody


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    raw_body: bytes
    json: Any
    received_at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def split_text(text: str) -> list[str]:
    """Split ``text`` into stream pieces (words with their following space)."""
    pieces: list[str] = []
    current = ""
    for ch in text:
        current += ch
        if ch == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces or [""]


def completion_body(request: Any, reply: Reply) -> dict[str, Any]:
    model = reply.model or (request.get("model") if isinstance(request, dict) else None)
    return {
        "id": f"chatcmpl-up-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or "unknown",
        "system_fingerprint": "fp_upstream",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "refusal": None},
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def continuation(behaviour: Continue, request: Any) -> Reply | Status:
    """What a ``Continue`` upstream answers to ``request``."""

    def reply(text: str) -> Reply:
        return Reply(
            text=text,
            prompt_tokens=behaviour.prompt_tokens,
            completion_tokens=behaviour.completion_tokens,
            chunk_delay_s=behaviour.chunk_delay_s,
        )

    prefill = find_prefill(request)
    if prefill is None:
        return reply(behaviour.text)
    if behaviour.reject:
        return Status(400, message="This model does not support assistant message prefill.")
    problem = shape_problem(behaviour.style, request, prefill)
    if problem is not None:
        return Status(400, message=problem)
    return reply(answer_text(behaviour.style, behaviour.text, prefill.text))


def stream_events(request: Any, reply: Reply) -> list[bytes]:
    """The SSE events (each ``data: …\\n\\n``) of a streamed completion, ``[DONE]`` included."""
    req = request if isinstance(request, dict) else {}
    model = reply.model or req.get("model") or "unknown"
    base = {
        "id": f"chatcmpl-up-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_upstream",
    }
    opts = req.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    chunks: list[dict[str, Any]] = []
    first = {"role": "assistant", "content": ""}
    chunks.append({**base, "choices": [{"index": 0, "delta": first, "finish_reason": None}]})
    for piece in split_text(reply.text):
        delta = {"content": piece}
        chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    chunks.append(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]}
    )
    if include_usage:
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
        chunks.append({**base, "choices": [], "usage": usage})
    events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    events.append(b"data: [DONE]\n\n")
    return events


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: UpstreamServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A peer that gives up (gateway timeout) breaks our pipe: expected, keep quiet.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- request handling -------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            data = b""
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            return data
        return b""

    def _handle(self) -> None:
        owner = self.server.owner
        raw = self._read_body()
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=raw,
            json=decoded,
            received_at=time.monotonic(),
        )
        if self.command == "GET" and self.path.rstrip("/").endswith("/models"):
            owner._record(record)
            self._send_json(200, {"object": "list", "data": []})
            return
        behaviour = owner._next_behaviour(record)
        self._run(behaviour, decoded)

    def _run(self, behaviour: Behaviour, request: Any) -> None:
        owner = self.server.owner
        if isinstance(behaviour, Delay):
            if owner._stop.wait(behaviour.seconds):
                self._drop()
                return
            self._run(behaviour.then, request)
        elif isinstance(behaviour, Hang):
            owner._stop.wait(behaviour.seconds)
            self._drop()
        elif isinstance(behaviour, Close):
            self._drop()
        elif isinstance(behaviour, Status):
            body = behaviour.body
            if body is None:
                body = _error_body(behaviour.status, behaviour.message)
            self._send_json(behaviour.status, body, behaviour.headers)
        elif isinstance(behaviour, CutStream):
            self._stream(request, behaviour.reply, cut_after=behaviour.after_chunks)
        elif isinstance(behaviour, ScriptedStream):
            self._scripted(behaviour)
        elif isinstance(behaviour, Continue):
            self._run(continuation(behaviour, request), request)
        elif isinstance(behaviour, CutBody):
            self._cut_body(completion_body(request, behaviour.reply), behaviour.fraction)
        else:
            wants_stream = isinstance(request, dict) and request.get("stream") is True
            if wants_stream:
                self._stream(request, behaviour, cut_after=None)
            else:
                self._send_json(200, completion_body(request, behaviour), behaviour.headers)

    # --- writers ---------------------------------------------------------------------
    def _send_json(self, status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        ctype = "text/plain" if isinstance(body, str) else "application/json"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_up_{uuid.uuid4().hex[:10]}")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _cut_body(self, body: dict[str, Any], fraction: float) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: int(len(data) * fraction)])
        self.wfile.flush()
        self._drop()

    def _stream(self, request: Any, reply: Reply, cut_after: int | None) -> None:
        events = stream_events(request, reply)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in reply.headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()
        for i, event in enumerate(events):
            if cut_after is not None and i >= cut_after:
                self._drop()
                return
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
            if reply.chunk_delay_s:
                time.sleep(reply.chunk_delay_s)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _scripted(self, script: ScriptedStream) -> None:
        stop = self.server.owner._stop
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for step in script.steps:
            if isinstance(step, Pause):
                if stop.wait(step.seconds):
                    self._drop()
                    return
                continue
            self.wfile.write(f"{len(step):x}\r\n".encode() + step + b"\r\n")
            self.wfile.flush()
        if script.end == "eof":
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        if script.end == "hang":
            stop.wait(script.hang_s)
        self._drop()

    def _drop(self) -> None:
        """Close the connection abruptly (RST), without any further bytes."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class UpstreamServer:
    """An OpenAI-format provider on ``127.0.0.1:<free port>``. Use as a context manager."""

    def __init__(self, name: str = "upstream") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[Behaviour] = deque()
        self._default: Behaviour = Reply()
        self._requests: list[RecordedRequest] = []
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread: threading.Thread | None = None
        self.on_request: Callable[[RecordedRequest], None] | None = None

    # --- lifecycle --------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The provider's ``base_url`` (with ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> UpstreamServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- programming ------------------------------------------------------------------
    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def set_default(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._default = behaviour

    def reset(self) -> None:
        """Forget recorded requests and queued behaviours; default back to ``Reply()``."""
        with self._lock:
            self._queue.clear()
            self._default = Reply()
            self._requests.clear()

    def _next_behaviour(self, record: RecordedRequest) -> Behaviour:
        with self._cond:
            self._requests.append(record)
            self._cond.notify_all()
            behaviour = self._queue.popleft() if self._queue else self._default
        if self.on_request is not None:
            self.on_request(record)
        return behaviour

    def _record(self, record: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(record)
            self._cond.notify_all()

    # --- inspection -------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def last_chat(self) -> RecordedRequest:
        reqs = self.chat_requests()
        assert reqs, f"{self.name} received no chat completion request"
        return reqs[-1]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._requests)


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port() -> int:
    return closed_port()


def iter_sse(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """Parse SSE text lines into ``(event, data)`` pairs (multi-line data joined by \\n)."""
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data or event is not None:
                yield event, "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data or event is not None:
        yield event, "\n".join(data)
