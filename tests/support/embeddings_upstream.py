"""A real OpenAI-format embeddings upstream on loopback: ``POST /v1/embeddings``.

Each input's vector is a deterministic function of (model, input): ``expected_vector``.
The ``data`` list is sent in reverse order (each item keeps its ``index``), so a gateway that
does not reorder by ``index`` is caught. ``dimensions`` and ``encoding_format: base64`` are
honoured. ``fail_next(status, n)`` answers the next ``n`` requests with that status.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_DIMENSIONS = 8


def expected_vector(model: str, item: Any, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    digest = hashlib.sha256(f"{model}|{json.dumps(item)}".encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]
    return list(value or [])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw or b"{}")
        owner = self.server.owner
        with owner.lock:
            headers = {k.lower(): v for k, v in self.headers.items()}
            owner.requests.append({"path": self.path, "headers": headers, "json": body})
            failing = owner.failures > 0
            if failing:
                owner.failures -= 1
        if failing:
            error = {"error": {"message": "upstream unavailable", "type": "server_error"}}
            self._send(owner.failure_status, error)
            return
        if self.path != "/v1/embeddings":
            self._send(404, {"error": {"message": "not found", "type": "not_found_error"}})
            return
        model = body.get("model", "")
        dims = body.get("dimensions") or DEFAULT_DIMENSIONS
        data = []
        tokens = 0
        for index, item in enumerate(_items(body.get("input"))):
            vector = expected_vector(model, item, dims)
            tokens += len(item) if isinstance(item, list) else len(str(item).split())
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._send(
            200,
            {
                "object": "list",
                "data": list(reversed(data)),
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: EmbeddingsUpstream


class EmbeddingsUpstream:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.failures = 0
        self.failure_status = 503
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail_next(self, status: int, count: int = 1) -> None:
        with self.lock:
            self.failure_status, self.failures = status, count

    def __enter__(self) -> EmbeddingsUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
