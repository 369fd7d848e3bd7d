"""Zero-config quick start (SPEC §9): no config, no provider keys, no admin key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from support.gateway import ADMIN_KEY_RE, TEST_KEY_RE, GatewayProcess


@dataclass
class QuickStart:
    gw: GatewayProcess
    admin_key: str | None
    test_key: str | None


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickStart]:
    gw = GatewayProcess(tmp_path_factory.mktemp("quickstart"), config=None, name="gw-quick")
    gw.start()
    try:
        admin = gw.wait_for_stdout(ADMIN_KEY_RE)
        test = gw.wait_for_stdout(TEST_KEY_RE, timeout=1.0)
        gw.admin_key = admin
        yield QuickStart(gw, admin, test)
    finally:
        gw.stop()


def _test_key(quick: QuickStart) -> str:
    assert quick.test_key, (
        "first start printed no 'test key: rg_test_…' line on stdout\n" + quick.gw.log_tail()
    )
    return quick.test_key


def test_first_start_prints_admin_and_test_keys(quick: QuickStart):
    assert quick.admin_key, "no 'admin key: rg_live_…' on stdout\n" + quick.gw.log_tail()
    assert quick.test_key, "no 'test key: rg_test_…' on stdout\n" + quick.gw.log_tail()
    assert quick.admin_key != quick.test_key


def test_health_and_ready(quick: QuickStart):
    with quick.gw.http() as http:
        assert http.get("/health").status_code == 200
        assert http.get("/ready").status_code == 200


def test_sdk_auto_completion_with_test_key(quick: QuickStart):
    with quick.gw.openai(_test_key(quick)) as client:
        resp = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "Hello, gateway!"}]
        )
    content = resp.choices[0].message.content
    assert isinstance(content, str) and content.strip()
    assert resp.model and resp.model != "auto", "model must be the canonical model that served"
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert resp.model_extra["routing_metadata"]["provider"] == "mock"


def test_sdk_auto_stream_with_test_key_matches_non_stream(quick: QuickStart):
    messages = [{"role": "user", "content": "Stream me something deterministic."}]
    with quick.gw.openai(_test_key(quick)) as client:
        whole = client.chat.completions.create(model="auto", messages=messages)
        chunks = list(client.chat.completions.create(model="auto", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and text == whole.choices[0].message.content
    assert sum(1 for c in chunks if c.choices) > 1, "mock stream should come in several chunks"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].model_extra.get("routing_metadata", {}).get("provider") == "mock"


def test_second_start_reuses_keys_and_prints_none(quick: QuickStart):
    test_key = _test_key(quick)
    assert quick.admin_key, "first start printed no admin key"
    gw = quick.gw
    gw.restart()
    assert gw.wait_for_stdout(TEST_KEY_RE, timeout=2.0) is None, "second start printed a new key"
    assert ADMIN_KEY_RE.search(gw.stdout_text()) is None, "second start printed an admin key"
    with gw.openai(test_key) as client:
        resp = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "still there?"}]
        )
    assert resp.choices[0].message.content
    workspaces = gw.workspaces()
    assert [ws["slug"] for ws in workspaces].count("default") == 1
