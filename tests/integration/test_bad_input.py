"""Bad input against a real gateway process: over-deep JSON, unsafe ``model`` strings,
client-controlled sizes past the published limits, and bodies that never finish. Each is a
clear 4xx in the SPEC §6 shape, never a 500, a hang or free unbounded work."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway._router_core import MAX_JSON_DEPTH
from support.checks import assert_error, chat_body
from support.faults import usage
from support.gateway import GatewayProcess

BODY_TIMEOUT_S = 1.0
EMBED = "text-embedding-3-small"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, admin_key: str) -> Iterator[GatewayProcess]:
    """The built-in catalog served by the mock (test keys), with a 1 s body timeout."""
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("gw-bad-input"),
        config={"defaults": {"body_timeout_s": BODY_TIMEOUT_S}},
        admin_key=admin_key,
        name="gw-bad-input",
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log_text(), gateway.log_tail(80)


@pytest.fixture(scope="module")
def test_key(gw: GatewayProcess) -> str:
    key: str = gw.create_key("bad-input", mode="test")["key"]
    return key


NEST = "@nest@"


def nested(levels: int) -> str:
    """A placeholder for ``levels`` nested arrays, spliced in by ``encoded``."""
    return f"{NEST}{levels}"


def encoded(body: dict[str, Any]) -> bytes:
    """``body`` as JSON with each ``nested`` placeholder written as raw brackets (Python's
    encoders recurse per level and cannot write the depths these tests need)."""
    text = json.dumps(body)
    while NEST in text:
        at = text.index('"' + NEST)
        end = text.index('"', at + 1)
        levels = int(text[at + 1 + len(NEST) : end])
        text = text[:at] + "[" * levels + "]" * levels + text[end + 1 :]
    return text.encode()


def post_raw(gw: GatewayProcess, key: str, path: str, body: bytes) -> Any:
    with gw.http(key, timeout=30) as http:
        return http.post(path, content=body, headers={"content-type": "application/json"})


# --- nesting depth ------------------------------------------------------------------------

DEEP = 1000  # past Python's recursion limit: a RecursionError 500 before the depth check

DEEP_BODIES = {
    "/v1/chat/completions": chat_body(model="gpt-4o", metadata={"x": nested(DEEP)}),
    "/v1/messages": {
        "model": "gpt-4o",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"x": nested(DEEP)},
    },
    "/v1/embeddings": {"model": EMBED, "input": nested(DEEP)},
}


@pytest.mark.parametrize("path", sorted(DEEP_BODIES))
def test_deep_json_is_400_on_inference_routes(gw, test_key, path):
    resp = post_raw(gw, test_key, path, encoded(DEEP_BODIES[path]))
    err = assert_error(resp, 400, "invalid_request")
    assert f"{MAX_JSON_DEPTH} levels" in err["message"]


def test_deep_json_is_400_on_the_management_api(gw, admin_key):
    ws = gw.default_workspace_id()
    body = encoded({"name": "deep", "mode": "test", "metadata": nested(DEEP)})
    resp = post_raw(gw, admin_key, f"/v1/workspaces/{ws}/keys", body)
    err = assert_error(resp, 400, "invalid_request")
    assert f"{MAX_JSON_DEPTH} levels" in err["message"]


def test_deep_provider_passthrough_is_400(gw, test_key):
    # ~490 levels: under msgspec's own limit, past the passthrough merge's recursion.
    body = chat_body(model="gpt-4o", extensions={"openai": {"x": nested(490)}})
    err = assert_error(
        post_raw(gw, test_key, "/v1/chat/completions", encoded(body)), 400, "invalid_request"
    )
    assert f"{MAX_JSON_DEPTH} levels" in err["message"]


def test_nesting_at_the_limit_is_served(gw, test_key):
    # body object (1) → extensions (2) → openai (3) → x (4) → arrays: exactly the limit.
    body = chat_body(model="gpt-4o", extensions={"openai": {"x": nested(MAX_JSON_DEPTH - 3)}})
    resp = post_raw(gw, test_key, "/v1/chat/completions", encoded(body))
    assert resp.status_code == 200, resp.text
    over = chat_body(model="gpt-4o", extensions={"openai": {"x": nested(MAX_JSON_DEPTH - 2)}})
    assert_error(
        post_raw(gw, test_key, "/v1/chat/completions", encoded(over)), 400, "invalid_request"
    )


# --- unsafe model strings -----------------------------------------------------------------

UNSAFE_MODELS = {"non-latin-1": "模型", "nul": "gpt\x00-4o", "crlf": "gpt-4o\r\nX-Injected: 1"}


def _body_for(path: str, model: str) -> dict[str, Any]:
    if path == "/v1/embeddings":
        return {"model": model, "input": "hello"}
    if path == "/v1/messages":
        return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    return chat_body(model=model)


@pytest.mark.parametrize("kind", sorted(UNSAFE_MODELS))
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"])
def test_unsafe_model_is_a_json_404_with_safe_headers(gw, test_key, path, kind):
    model = UNSAFE_MODELS[kind]
    with gw.http(test_key, timeout=30) as http:
        resp = http.post(path, json=_body_for(path, model))
    assert_error(resp, 404, "model_not_found")
    assert "x-injected" not in resp.headers
    echoed = resp.headers["x-model-requested"]
    assert echoed.isascii() and echoed.isprintable(), echoed
    assert "\r" not in echoed and "\n" not in echoed and "\x00" not in echoed


# --- client-controlled sizes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 129),
        ("tools", [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]),
        ("stop", ["x"] * 5),
        ("logit_bias", {str(i): 1 for i in range(301)}),
        ("top_logprobs", 21),
        ("messages", [{"role": "user", "content": "hi"}] * 2049),
    ],
)
def test_chat_size_past_the_limit_names_the_field(gw, test_key, field, value):
    body = {**chat_body(model="gpt-4o"), field: value}
    with gw.http(test_key, timeout=30) as http:
        resp = http.post("/v1/chat/completions", json=body)
    assert_error(resp, 400, "invalid_request", param=field)


def test_messages_stop_sequences_past_the_limit(gw, test_key):
    body = {**_body_for("/v1/messages", "gpt-4o"), "stop_sequences": ["x"] * 17}
    with gw.http(test_key, timeout=30) as http:
        resp = http.post("/v1/messages", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "stop_sequences"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": EMBED, "input": "a", "dimensions": 100_000_000}, "dimensions"),
        ({"model": EMBED, "input": ["a"] * 8, "dimensions": 2_000_000}, "dimensions"),
        ({"model": EMBED, "input": "a", "dimensions": 1537}, "dimensions"),  # native: 1536
        ({"model": EMBED, "input": ["a"] * 2049}, "input"),
    ],
)
def test_embedding_size_past_the_model_limit_is_400_fast(gw, test_key, body, param):
    start = time.monotonic()
    with gw.http(test_key, timeout=30) as http:
        resp = http.post("/v1/embeddings", json=body)
    assert_error(resp, 400, "invalid_request", param=param)
    assert time.monotonic() - start < 10


def test_embedding_native_dimension_is_served(gw, test_key):
    with gw.http(test_key, timeout=30) as http:
        resp = http.post("/v1/embeddings", json={"model": EMBED, "input": "a", "dimensions": 1536})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["data"][0]["embedding"]) == 1536


# --- bodies that never finish ----------------------------------------------------------------


def _head(gw: GatewayProcess, key: str, length: int) -> bytes:
    host, port = gw.base_url.removeprefix("http://").split(":")
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _connect(gw: GatewayProcess) -> socket.socket:
    host, port = gw.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (or 20 s of silence fails the test)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_slow_body_is_408_and_the_connection_is_freed(gw, test_key):
    body = encoded(chat_body(model="gpt-4o"))
    with _connect(gw) as sock:
        start = time.monotonic()
        sock.sendall(_head(gw, test_key, len(body)) + body[:10])
        answer = _read_all(sock)  # the server closes: the connection is not held
        elapsed = time.monotonic() - start
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    error = json.loads(payload)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_timeout")
    assert BODY_TIMEOUT_S * 0.9 <= elapsed < 15, elapsed


def settled_requests(gw, key) -> int:
    """The key's request count once the records of earlier requests have all been committed
    (two reads 0.3 s apart agree): what a request refused now must leave unchanged."""
    count = usage(gw, key)["requests"]
    while True:
        time.sleep(0.3)
        again = usage(gw, key)["requests"]
        if again == count:
            return count
        count = again


def test_half_closed_short_body_is_400_and_never_billed(gw, test_key):
    before = settled_requests(gw, test_key)
    body = encoded(chat_body(model="gpt-4o"))
    with _connect(gw) as sock:
        # A complete, valid request, but fewer bytes than declared: must not be served.
        sock.sendall(_head(gw, test_key, len(body) + 16) + body)
        sock.shutdown(socket.SHUT_WR)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "incomplete_body")
    time.sleep(0.5)  # a record would be spooled by now
    assert usage(gw, test_key)["requests"] == before
    with gw.http(test_key) as http:  # the gateway still serves
        assert http.post("/v1/chat/completions", json=chat_body(model="gpt-4o")).status_code == 200


def test_disconnect_mid_body_is_never_billed(gw, test_key):
    before = settled_requests(gw, test_key)
    body = encoded(chat_body(model="gpt-4o"))
    with _connect(gw) as sock:
        sock.sendall(_head(gw, test_key, len(body) + 16) + body)
    time.sleep(0.5)  # a record would be spooled by now
    assert usage(gw, test_key)["requests"] == before
    with gw.http(test_key) as http:
        assert http.post("/v1/chat/completions", json=chat_body(model="gpt-4o")).status_code == 200
