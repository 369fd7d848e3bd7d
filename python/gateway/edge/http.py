"""The smallest request/response pair the ASGI app needs; no framework on the hot path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec

_encoder = msgspec.json.Encoder()
JSON_TYPE = "application/json"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    client_ip: str | None
    request_id: str
    path_params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any], body: bytes, request_id: str) -> Request:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        return cls(
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
            body=body,
            client_ip=client[0] if client else None,
            request_id=request_id,
        )


@dataclass(slots=True)
class Response:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE


@dataclass(slots=True)
class StreamResponse:
    """Sent as ``text/event-stream``; headers go out before the first chunk."""

    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


def json_response(
    value: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(_encoder.encode(value), status, dict(headers or {}))
