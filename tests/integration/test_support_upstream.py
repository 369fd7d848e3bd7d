"""Self-check of the upstream test server (no gateway): it must behave like an OpenAI API."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from support.checks import read_sse, sse_json_events
from support.upstream import (
    Close,
    CutStream,
    Delay,
    Hang,
    Reply,
    Status,
    UpstreamServer,
    closed_port,
)


@pytest.fixture
def up() -> UpstreamServer:
    server = UpstreamServer("self-check").start()
    yield server
    server.stop()


def test_openai_sdk_against_upstream(up: UpstreamServer):
    up.set_default(Reply(text="alpha beta", prompt_tokens=3, completion_tokens=2))
    with openai.OpenAI(base_url=up.base_url, api_key="sk-probe", max_retries=0) as client:
        resp = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        chunks = list(
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "x"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert resp.choices[0].message.content == "alpha beta"
    assert resp.usage.total_tokens == 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "alpha beta"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2
    assert [r.header("authorization") for r in up.chat_requests()] == ["Bearer sk-probe"] * 2


def test_stream_without_include_usage_has_no_usage_chunk(up: UpstreamServer):
    with (
        httpx.Client() as http,
        http.stream("POST", up.base_url + "/chat/completions", json={"stream": True}) as r,
    ):
        events = read_sse(r)
    assert events[-1] == (None, "[DONE]")
    assert all(c["choices"] for c in sse_json_events(events))


def test_status_delay_close_hang_cut(up: UpstreamServer):
    up.enqueue(
        Status(429, headers=(("Retry-After", "3"),)),
        Delay(0.3, Reply(text="late")),
        Close(),
        Hang(5),
        CutStream(after_chunks=2),
    )
    with httpx.Client(timeout=1.0) as http:
        url = up.base_url + "/chat/completions"
        r = http.post(url, json={})
        assert r.status_code == 429 and r.headers["retry-after"] == "3"
        assert r.json()["error"]["type"] == "rate_limit_error"
        t0 = time.monotonic()
        r = http.post(url, json={})
        assert r.json()["choices"][0]["message"]["content"] == "late"
        assert time.monotonic() - t0 >= 0.3
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(url, json={})
        with pytest.raises(httpx.ReadTimeout):
            http.post(url, json={})
        with (
            pytest.raises(httpx.RemoteProtocolError),
            http.stream("POST", url, json={"stream": True}) as r,
        ):
            list(r.iter_lines())
        assert http.post(url, json={}).status_code == 200
    assert len(up.chat_requests()) == 6


def test_closed_port_refuses():
    with httpx.Client(timeout=1.0) as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{closed_port()}/v1/models")
