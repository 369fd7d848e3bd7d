"""Both server interfaces serve the same gateway (docs/decisions.md, "The server interface").

``routegate serve`` runs the app over granian's RSGI by default and over ASGI with
``--interface asgi`` (the ASGI app also serves under any other ASGI server). Both go through
``App.handle``; what differs is how the request, its body and the response cross the server
boundary. So each interface is started here and held to the same answers, through the parts
that cross it: the body (whole, chunked, over the limit, cut short), the query string, the
client address, headers (including ones that must be escaped), a stream, errors.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from support.checks import assert_error, chat_body
from support.gateway import GatewayProcess

INTERFACES = ["rsgi", "asgi"]
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module", params=INTERFACES)
def gw(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, admin_key: str
) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(
        tmp_path_factory.mktemp(f"gw-{request.param}"),
        config={"defaults": {"max_body_bytes": MAX_BODY, "body_timeout_s": 2}},
        admin_key=admin_key,
        name=f"gw-{request.param}",
        interface=request.param,
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log_text(), gateway.log_tail(60)


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return str(gw.create_key("iface", mode="test")["key"])


def test_the_gateway_runs_the_interface_asked_for(gw: GatewayProcess) -> None:
    assert gw.interface in gw.command()
    assert f"--interface {gw.interface}" in " ".join(gw.command())


def test_a_chat_answer_and_its_headers(gw: GatewayProcess, key: str) -> None:
    with gw.http(key) as http:
        resp = http.post(
            "/v1/chat/completions",
            json=chat_body(model="gpt-4o-mini"),
            headers={"x-routegate-policy": "cheapest"},
        )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"].startswith("req_")
    assert resp.headers["x-provider-used"] == "mock"
    assert resp.json()["choices"][0]["message"]["content"]


def test_a_header_that_must_be_escaped_is_sent_escaped(gw: GatewayProcess, key: str) -> None:
    with gw.http(key) as http:
        resp = http.post("/v1/chat/completions", json=chat_body(model="模型-x"))
    assert_error(resp, 404, "model_not_found")
    assert resp.headers["x-model-requested"] == "%E6%A8%A1%E5%9E%8B-x"


def test_a_stream_ends_with_done(gw: GatewayProcess, key: str) -> None:
    with (
        gw.http(key) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=chat_body(model="gpt-4o-mini", stream=True)
        ) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        data = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    final = json.loads(data[-2].removeprefix("data: "))
    assert final["usage"]["completion_tokens"] > 0 and "routing_metadata" in final


def test_a_chunked_body_is_read_whole(gw: GatewayProcess, key: str) -> None:
    body = json.dumps(chat_body(model="gpt-4o-mini")).encode()

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    with gw.http(key) as http:
        resp = http.post("/v1/chat/completions", content=pieces())
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_body_over_the_limit_is_413(gw: GatewayProcess, key: str, chunked: bool) -> None:
    body = json.dumps(chat_body(model="gpt-4o-mini", user="x" * MAX_BODY)).encode()
    content: bytes | Iterator[bytes] = iter([body]) if chunked else body
    with gw.http(key) as http:
        resp = http.post("/v1/chat/completions", content=content)
    assert_error(resp, 413, "request_too_large")


def test_a_body_cut_short_is_400_and_the_gateway_still_serves(gw: GatewayProcess, key: str) -> None:
    body = json.dumps(chat_body(model="gpt-4o-mini")).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) + 10}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "incomplete_body"
    with gw.http(key) as http:
        assert http.post("/v1/chat/completions", json=chat_body(model="gpt-4o-mini")).is_success


def test_query_strings_and_errors(gw: GatewayProcess, key: str) -> None:
    with gw.http(key) as http:
        assert http.get("/v1/usage", params={"period": "day"}).status_code == 200
        assert_error(http.get("/v1/usage", params={"period": "fortnight"}), 400, "invalid_request")
        assert_error(http.get("/v1/nowhere"), 404, "not_found")
        wrong_method = http.put("/v1/chat/completions")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert_error(httpx.get(gw.url("/v1/models")), 401, "invalid_api_key")


def test_the_client_address_reaches_the_ip_allow_list(gw: GatewayProcess) -> None:
    allowed = gw.create_key("lo", mode="test", ip_allowlist=["127.0.0.1/32"])["key"]
    elsewhere = gw.create_key("far", mode="test", ip_allowlist=["10.0.0.0/8"])["key"]
    body = chat_body(model="gpt-4o-mini")
    with gw.http(allowed) as http:
        assert http.post("/v1/chat/completions", json=body).status_code == 200
    with gw.http(elsewhere) as http:
        assert_error(http.post("/v1/chat/completions", json=body), 403, "ip_not_allowed")
