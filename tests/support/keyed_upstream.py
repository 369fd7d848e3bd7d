"""An OpenAI-format upstream that checks the key it is called with, as a real provider does.

``KeyedUpstream`` answers only the bearer keys it was given. Any other key gets a 401 whose
message quotes the key, as OpenAI's "Incorrect API key provided: sk-…" does, so the tests also
check that the gateway redacts keys that an upstream echoes. Each known key may carry its own
behaviour (``Status(429)``, ``Status(401)``, …), which also applies to ``GET /models``, so a
key can be valid for one test and rate-limited or revoked for another.
"""

from __future__ import annotations

from .upstream import Behaviour, RecordedRequest, Status, UpstreamServer, _Handler


def bearer(record: RecordedRequest) -> str | None:
    value = record.header("authorization") or ""
    return value[7:] if value[:7].lower() == "bearer " else None


class _KeyedHandler(_Handler):
    def _handle(self) -> None:
        owner = self.server.owner
        assert isinstance(owner, KeyedUpstream)
        is_models = self.command == "GET" and self.path.rstrip("/").endswith("/models")
        if is_models:
            self._read_body()
            record = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                raw_body=b"",
                json=None,
                received_at=0.0,
            )
            answer = owner.answer_for(bearer(record))
            if answer is not None:
                owner._record(record)
                self._run(answer, None)
                return
            owner._record(record)
            self._send_json(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
            return
        super()._handle()


class KeyedUpstream(UpstreamServer):
    """An upstream that knows which keys are valid; use as a context manager."""

    def __init__(self, name: str, keys: dict[str, Behaviour | None] | None = None) -> None:
        super().__init__(name)
        self._keys: dict[str, Behaviour | None] = dict(keys or {})
        self._server.RequestHandlerClass = _KeyedHandler

    def set_key(self, key: str, behaviour: Behaviour | None = None) -> None:
        """Accept ``key``; with ``behaviour``, answer it that way instead of normally."""
        with self._lock:
            self._keys[key] = behaviour

    def forget_key(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def answer_for(self, key: str | None) -> Behaviour | None:
        """The forced answer for a request made with ``key``; None to serve it normally."""
        with self._lock:
            if key is None or key not in self._keys:
                shown = key if key is not None else "(none)"
                return Status(401, message=f"Incorrect API key provided: {shown}")
            return self._keys[key]

    def _next_behaviour(self, record: RecordedRequest) -> Behaviour:
        answer = self.answer_for(bearer(record))
        if answer is None:
            return super()._next_behaviour(record)
        self._record(record)
        return answer

    def keys_seen(self) -> list[str | None]:
        """The bearer key of every chat completion request, in order."""
        return [bearer(r) for r in self.chat_requests()]
