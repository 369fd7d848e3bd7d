"""The stitching of a rescued stream, over random answers (issue 11, "a property test of the
stitching"): for random texts, chunkings of the broken attempt, cut points and continuation
styles, the text the client receives is the text the attempts produced, each byte once, under
one id, with one usage chunk that adds up both attempts.

One gateway per continuation style (started once for the module: breakers never open, so
every example meets its fault); ``upstream-a`` streams the examples' pieces and is cut,
``upstream-b`` continues from the prefill it is sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.checks import chat_body
from support.continuation import Style
from support.faults import chunk, deepen_backlog, post_stream
from support.gateway import GatewayProcess, new_secret
from support.rescue import (
    MODEL,
    A,
    B,
    Rig,
    assert_one_stream,
    broken_share,
    chain_of,
    chain_summary,
    rescue_config,
)
from support.upstream import Continue, Pause, ScriptedStream, UpstreamServer

STYLES: tuple[Style, ...] = ("prefix", "prefix_echo", "continue_final_message")
B_TOKENS = (17, 4)
WORDS = st.sampled_from(["alpha", "beta", "γάμμα", "δ", "naïve", "😀", "x", "end.", "\n", "  "])


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[UpstreamServer, UpstreamServer]]:
    with UpstreamServer("stitch-a") as a, UpstreamServer("stitch-b") as b:
        deepen_backlog(a)
        deepen_backlog(b)
        yield a, b


@pytest.fixture(scope="module")
def rigs(
    tmp_path_factory: pytest.TempPathFactory,
    pair: tuple[UpstreamServer, UpstreamServer],
    admin_key: str,
) -> Iterator[dict[Style, Rig]]:
    a, b = pair
    env = {"UPSTREAM_A_KEY": new_secret("sk-a-"), "UPSTREAM_B_KEY": new_secret("sk-b-")}
    started: dict[Style, Rig] = {}
    try:
        for style in STYLES:
            config = rescue_config({A: a.base_url, B: b.base_url}, {B: style})
            gw = GatewayProcess(
                tmp_path_factory.mktemp("gw-stitch"),
                config=config,
                env=env,
                admin_key=admin_key,
                name=f"gw-stitch-{style}",
            ).start()
            started[style] = Rig(gw, gw.create_key("stitch")["key"])
        yield started
    finally:
        for rig in started.values():
            rig.gw.stop()


@st.composite
def answers(draw: st.DrawFn) -> tuple[list[str], int]:
    """Non-empty pieces of an answer, and how many reach the client before the cut (≥ 1)."""
    piece = st.lists(WORDS, min_size=1, max_size=3).map("".join)
    pieces = draw(st.lists(piece, min_size=2, max_size=8))
    return pieces, draw(st.integers(min_value=1, max_value=len(pieces) - 1))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(answer=answers(), style=st.sampled_from(STYLES))
def test_stitched_text_is_every_byte_once(
    rigs: dict[Style, Rig],
    pair: tuple[UpstreamServer, UpstreamServer],
    answer: tuple[list[str], int],
    style: Style,
) -> None:
    a, b = pair
    a.reset()
    b.reset()
    pieces, after = answer
    full = "".join(pieces)
    steps: list[bytes | Pause] = [chunk("", role="assistant")]
    steps += [chunk(p) for p in pieces[:after]]
    a.enqueue(ScriptedStream(tuple(steps), end="cut"))
    b.enqueue(Continue(full, style, *B_TOKENS))
    rig = rigs[style]
    with rig.http() as http:
        result = post_stream(http, chat_body(model=MODEL))
    final = assert_one_stream(result, full)
    assert [c[:2] for c in chain_summary(chain_of(result))] == [(A, "failed"), (B, "success")]
    broken_share(final, B_TOKENS)
    (cont,) = b.chat_requests()
    assert cont.json["messages"][-1]["content"] == "".join(pieces[:after])
