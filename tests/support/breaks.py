"""OpenAI-format streams that break part-way, as ``ScriptedStream`` answers (stream rescue,
docs/behaviour.md): a cut, a stall, a malformed chunk or an upstream error event after the
first ``after`` content pieces of a known text; silence after the headers or after the role
chunk; a break in the middle of a tool call.

``pieces(text)`` is how the text is split (``upstream.split_text``: words with their
following space), so a test knows exactly which text reached the client before the break:
``delivered(text, after)``.
"""

from __future__ import annotations

import json
from typing import Literal

from .faults import DONE, chunk, sse, usage_chunk
from .upstream import Pause, ScriptedStream, split_text

Break = Literal["cut", "stall", "malformed", "error_event"]

SETTLE_S = 0.3
# Events the relay cannot use (docs/behaviour.md): each is a failure of the stream there.
MALFORMED: dict[str, bytes] = {
    "not_json": b"data: {not json\n\n",
    "choices_not_array": b'data: {"id": "x", "object": "chat.completion.chunk", '
    b'"choices": "nope"}\n\n',
    "delta_null": b'data: {"id": "x", "object": "chat.completion.chunk", '
    b'"choices": [{"index": 0, "delta": null, "finish_reason": null}]}\n\n',
    "content_number": b'data: {"id": "x", "object": "chat.completion.chunk", '
    b'"choices": [{"index": 0, "delta": {"content": 5}, "finish_reason": null}]}\n\n',
}
# OpenAI's mid-stream error: a data event holding an error object, then the end of the body.
ERROR_EVENT = sse({"error": {"message": "The server is overloaded.", "type": "server_error"}})
# Not events at all: a keep-alive comment and blank lines, never a failure.
KEEPALIVES = (b": ping\n\n", b"\n", b": keep-alive\n\n")


def pieces(text: str) -> list[str]:
    return split_text(text)


def delivered(text: str, after: int) -> str:
    """The text of the first ``after`` pieces: what reached the client before the break."""
    return "".join(pieces(text)[:after])


def broken_stream(
    text: str,
    after: int,
    how: Break,
    *,
    malformed: str = "not_json",
    model: str = "up-model",
    usage: tuple[int, int] = (12, 9),
    hang_s: float = 6.0,
) -> ScriptedStream:
    """The role chunk and the first ``after`` pieces of ``text``, a pause of ``SETTLE_S``,
    then the break:

    - ``cut``: the connection drops (RST).
    - ``stall``: nothing more for ``hang_s`` seconds, then a drop.
    - ``malformed``: the ``MALFORMED[malformed]`` event takes the place of the next piece,
      and the stream then goes on with the pieces after it, a finish, usage and ``[DONE]`` —
      a relay that skipped the bad event would deliver the text with a hole in it.
    - ``error_event``: ``ERROR_EVENT``, then the body ends.
    """
    parts = pieces(text)
    assert 0 <= after < len(parts), f"{text!r} has {len(parts)} pieces; cannot break after {after}"
    steps: list[bytes | Pause] = [chunk("", role="assistant", model=model)]
    steps += [chunk(p, model=model) for p in parts[:after]]
    if after:
        # Let the delivered pieces reach the client before the break: a break read in the same
        # batch as them may count as one before any content (a failover, not a continuation).
        steps.append(Pause(SETTLE_S))
    if how == "cut":
        return ScriptedStream(tuple(steps), end="cut")
    if how == "stall":
        return ScriptedStream(tuple(steps), end="hang", hang_s=hang_s)
    if how == "error_event":
        return ScriptedStream((*steps, ERROR_EVENT))
    steps.append(MALFORMED[malformed])
    steps += [chunk(p, model=model) for p in parts[after + 1 :]]
    steps += [chunk(finish_reason="stop", model=model), usage_chunk(*usage, model=model), DONE]
    return ScriptedStream(tuple(steps))


def headers_then_silence(hang_s: float = 6.0) -> ScriptedStream:
    """200 and the event-stream headers, then nothing."""
    return ScriptedStream((), end="hang", hang_s=hang_s)


def role_chunk_then_silence(hang_s: float = 6.0, model: str = "up-model") -> ScriptedStream:
    """200, the empty role chunk ``{"role": "assistant", "content": ""}``, then nothing."""
    return ScriptedStream((chunk("", role="assistant", model=model),), end="hang", hang_s=hang_s)


def with_keepalives(text: str, usage: tuple[int, int], model: str = "up-model") -> ScriptedStream:
    """A whole answer with keep-alive comments and blank lines between its chunks."""
    steps: list[bytes | Pause] = [chunk("", role="assistant", model=model)]
    for piece in pieces(text):
        steps += [*KEEPALIVES, chunk(piece, model=model)]
    steps += [
        *KEEPALIVES,
        chunk(finish_reason="stop", model=model),
        usage_chunk(*usage, model=model),
        DONE,
    ]
    return ScriptedStream(tuple(steps))


def tool_call_cut(text: str, arguments: dict[str, str], model: str = "up-model") -> ScriptedStream:
    """``text``, then a ``get_weather`` tool call whose arguments stop half-way: a cut."""
    args = json.dumps(arguments)
    call = {"index": 0, "id": "call_cut", "type": "function"}
    start = {"tool_calls": [{**call, "function": {"name": "get_weather", "arguments": ""}}]}
    half = {"tool_calls": [{"index": 0, "function": {"arguments": args[: len(args) // 2]}}]}
    steps: list[bytes | Pause] = [
        chunk("", role="assistant", model=model),
        chunk(text, model=model),
    ]
    steps += [_delta_chunk(start, model), _delta_chunk(half, model)]
    return ScriptedStream(tuple(steps), end="cut")


def _delta_chunk(delta: dict[str, object], model: str) -> bytes:
    return sse(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    )
