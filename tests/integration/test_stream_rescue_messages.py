"""Stream rescue on ``/v1/messages`` (issue 11; docs/behaviour.md): the Anthropic SDK's
``client.messages.stream(...)`` sees one answer — the full text, one ``message_stop`` — when a
stream breaks and is continued, and raises on the error event when nothing can continue it.

The same rig as ``test_stream_rescue.py`` (``support.rescue``): OpenAI-format ``upstream-a``
and ``upstream-b``, and the Anthropic-format ``anthro-c`` whose offers accept an assistant
prefill by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest

from support.anthropic_upstream import (
    AnthropicContinue,
    AnthropicReply,
    AnthropicUpstream,
    broken_events,
    error_event,
)
from support.breaks import SETTLE_S, Break, broken_stream, delivered, headers_then_silence
from support.continuation import Style, content_text
from support.faults import deepen_backlog
from support.gateway import GatewayProcess
from support.rescue import MODEL, A, B, C, Rig, assert_continuation_request, rescue_config
from support.upstream import Continue, Pause, Reply, ScriptedStream, UpstreamServer

FULL = "Rescued answers read as one stream: every byte once, in order, nothing missing."
B_TEXT = "served whole by the secondary"
B_TOKENS = (20, 5)
C_TOKENS = (31, 7)
AFTER = 3
QUESTION = [{"role": "user", "content": "Tell me."}]


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, UpstreamServer]]:
    with (
        UpstreamServer("rescue-msg-a") as a,
        UpstreamServer("rescue-msg-b") as b,
        AnthropicUpstream("rescue-msg-c") as c,
    ):
        for up in (a, b, c):
            deepen_backlog(up)
        yield {A: a, B: b, C: c}


@pytest.fixture(autouse=True)
def _fresh(ups: dict[str, UpstreamServer]) -> None:
    for up in ups.values():
        up.reset()
    ups[B].set_default(Reply(text=B_TEXT, prompt_tokens=B_TOKENS[0], completion_tokens=B_TOKENS[1]))


@pytest.fixture
def rig(
    make_gateway: Callable[..., GatewayProcess],
    ups: dict[str, UpstreamServer],
    provider_key_a: str,
    provider_key_b: str,
) -> Callable[..., Rig]:
    env = {
        "UPSTREAM_A_KEY": provider_key_a,
        "UPSTREAM_B_KEY": provider_key_b,
        "ANTHRO_C_KEY": provider_key_b + "-anthropic",
    }

    def make(providers: tuple[str, ...] = (A, B), **prefill: Style | str) -> Rig:
        urls = {pid: ups[pid].base_url for pid in providers}
        by_id = {pid.replace("_", "-"): style for pid, style in prefill.items()}
        gw = make_gateway(rescue_config(urls, by_id), env, name="gw-rescue-msg")
        return Rig(gw, gw.create_key("rescue-messages")["key"])

    return make


@dataclass
class Seen:
    """What the SDK delivered: event types, the text as it streamed, the final message."""

    kinds: list[str] = field(default_factory=list)
    text: str = ""
    final: Any = None
    error: anthropic.APIError | None = None


def ask(rig: Rig) -> Seen:
    seen = Seen()
    client = anthropic.Anthropic(
        base_url=rig.gw.base_url, api_key=rig.key, max_retries=0, timeout=20.0
    )
    try:
        with (
            client,
            client.messages.stream(model=MODEL, max_tokens=200, messages=QUESTION) as stream,
        ):
            for event in stream:
                seen.kinds.append(event.type)
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    seen.text += event.delta.text
            seen.final = stream.get_final_message()
    except anthropic.APIError as exc:
        seen.error = exc
    return seen


def assert_whole(seen: Seen, text: str) -> None:
    assert seen.error is None, f"the SDK raised: {seen.error!r} after {seen.text!r}"
    assert seen.text == text, f"streamed {seen.text!r} != {text!r}"
    assert "".join(b.text for b in seen.final.content if b.type == "text") == text
    assert seen.kinds.count("message_start") == 1 and seen.kinds.count("message_stop") == 1
    assert seen.kinds[-1] == "message_stop", seen.kinds[-5:]


def assert_sdk_error(seen: Seen, text: str) -> None:
    assert seen.error is not None, f"no error raised; streamed {seen.text!r}"
    assert "message_stop" not in seen.kinds, seen.kinds
    assert seen.text == text, seen.text


@pytest.mark.parametrize("how", ["cut", "stall", "malformed", "error_event"])
def test_a_broken_stream_is_continued(rig, ups, how: Break):
    ups[A].enqueue(broken_stream(FULL, AFTER, how, hang_s=6.0))
    ups[B].enqueue(Continue(FULL, "prefix", *B_TOKENS))
    seen = ask(rig(upstream_b="prefix"))
    assert_whole(seen, FULL)
    assert seen.final.usage.output_tokens > B_TOKENS[1], "usage is not the sum of the attempts"
    (first,), (cont,) = ups[A].chat_requests(), ups[B].chat_requests()
    assert_continuation_request(cont, first, "prefix", delivered(FULL, AFTER))


def test_an_anthropic_provider_continues_its_own_broken_stream(rig, ups):
    # anthro-c is the only candidate: an error event after three text deltas, then the same
    # deployment continues from an assistant prefill (its format's default).
    events = broken_events({"model": "m"}, AnthropicReply(text=FULL), AFTER)
    broken = ScriptedStream((*events, Pause(SETTLE_S), error_event()))
    ups[C].enqueue(broken, AnthropicContinue(FULL, *C_TOKENS))
    seen = ask(rig((C,)))
    assert_whole(seen, FULL)
    first, cont = ups[C].message_requests()  # type: ignore[attr-defined]
    last = cont.json["messages"][-1]
    assert last["role"] == "assistant"
    assert content_text(last["content"]) == delivered(FULL, AFTER).rstrip()
    assert cont.json["messages"][:-1] == first.json["messages"]


def test_headers_then_silence_fails_over_before_any_byte(rig, ups):
    ups[A].enqueue(headers_then_silence(hang_s=6.0))
    seen = ask(rig())
    assert_whole(seen, B_TEXT)
    assert ups[B].chat_requests()[0].json["messages"][-1]["role"] == "user"


def test_no_prefill_candidate_raises_in_the_sdk(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"))
    seen = ask(rig())
    assert_sdk_error(seen, delivered(FULL, AFTER))
    assert "continue" in str(seen.error).lower() or "prefill" in str(seen.error).lower()
    assert ups[B].chat_requests() == []


def test_a_rejected_prefill_raises_in_the_sdk(rig, ups):
    ups[A].enqueue(broken_stream(FULL, AFTER, "cut"))
    ups[B].enqueue(Continue(FULL, "prefix", reject=True))
    seen = ask(rig(upstream_b="prefix"))
    assert_sdk_error(seen, delivered(FULL, AFTER))
    assert "prefill" in str(seen.error).lower() or "continue" in str(seen.error).lower()
    assert len(ups[B].chat_requests()) == 1


@pytest.mark.parametrize("how", ["malformed", "error_event"])
def test_a_break_in_the_same_read_as_the_content_still_sums_usage(rig, ups, how: Break):
    # No pause between the delivered pieces and the break: the gateway may read them at once.
    # Whatever it then does, text the client got from upstream-a is usage of upstream-a.
    broken = broken_stream(FULL, AFTER, how)
    ups[A].enqueue(ScriptedStream(tuple(s for s in broken.steps if not isinstance(s, Pause))))
    ups[B].enqueue(Continue(FULL, "prefix", *B_TOKENS))
    seen = ask(rig(upstream_b="prefix"))
    assert_whole(seen, FULL)
    assert seen.final.usage.output_tokens > B_TOKENS[1], "upstream-a's delivered text not metered"
