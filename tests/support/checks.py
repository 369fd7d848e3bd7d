"""Assertions shared by the integration tests (SPEC §4 and §6 shapes)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .upstream import iter_sse

ANY: Any = object()  # "do not check" marker for optional expectations

# SPEC §6: status → error type.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "policy_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "provider_error",
    503: "service_unavailable_error",
    504: "provider_error",
}


def assert_error_shape(error_body: Any, *, context: str = "") -> dict[str, Any]:
    """``{"error": {message, type, code, param}}``; returns the inner error object."""
    assert isinstance(error_body, dict), f"{context}error body is not an object: {error_body!r}"
    err = error_body.get("error")
    assert isinstance(err, dict), f"{context}no 'error' object: {error_body!r}"
    for field in ("message", "type", "code", "param"):
        assert field in err, f"{context}error lacks {field!r}: {error_body!r}"
    assert isinstance(err["message"], str) and err["message"], f"{context}empty message"
    return err


def assert_error(
    resp: httpx.Response,
    status: int,
    code: str,
    *,
    param: object = ANY,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check an error response against SPEC §6 and return the inner error object."""
    text = resp.text
    summary = f"{resp.request.method} {resp.request.url.path}: got {resp.status_code} {text[:500]}"
    assert resp.status_code == status, f"expected {status} {code}; {summary}"
    assert resp.headers.get("content-type", "").startswith("application/json"), summary
    body = resp.json()
    err = assert_error_shape(body, context=summary + "\n")
    assert err["code"] == code, f"expected code {code!r}; {summary}"
    assert err["type"] == ERROR_TYPES[status], f"expected type {ERROR_TYPES[status]!r}; {summary}"
    if param is not ANY:
        assert err["param"] == param, f"expected param {param!r}; {summary}"
    rid = resp.headers.get("x-request-id")
    assert rid, f"no X-Request-ID header; {summary}"
    assert body.get("request_id") == rid, f"request_id {body.get('request_id')!r} != header {rid!r}"
    lowered = text.lower()
    assert "traceback" not in lowered and "<html" not in lowered, summary
    for secret in secrets:
        assert secret not in text, f"secret {secret[:10]}… leaked in error body"
        for name, value in resp.headers.items():
            assert secret not in value, f"secret {secret[:10]}… leaked in header {name}"
    return err


def assert_provider_error_headers(
    resp: httpx.Response, provider: str, *, retryable: bool | None = None
) -> None:
    h = resp.headers
    assert h.get("x-error-provider") == provider, f"X-Error-Provider: {h.get('x-error-provider')}"
    assert h.get("x-error-type"), "no X-Error-Type header"
    flag = h.get("x-error-retryable")
    assert flag is not None and flag.lower() in {"true", "false"}, f"X-Error-Retryable: {flag!r}"
    if retryable is not None:
        assert flag.lower() == str(retryable).lower(), f"X-Error-Retryable: {flag!r}"


def read_sse(resp: httpx.Response) -> list[tuple[str | None, str]]:
    """Read a streaming httpx response to the end; returns ``(event, data)`` pairs."""
    return list(iter_sse(resp.iter_lines()))


def sse_json_events(events: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    """Chunks of ``data:`` events with no event name, ``[DONE]`` excluded."""
    out: list[dict[str, Any]] = []
    for event, data in events:
        if event is None and data != "[DONE]":
            out.append(json.loads(data))
    return out


def chat_body(content: str = "Say hello.", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **extra}
