"""A provider's content-policy refusal, returned as the answer (docs/behaviour.md, "Failover").

The provider refused the request under its content policy with a 400. Failing over would shop
for a laxer provider, and a bare 400 would read as the caller's mistake; the refusal is the
answer. It comes back the way OpenAI reports filtered output: ``finish_reason:
"content_filter"`` with the provider's reason as the message's ``refusal``, as a whole
``chat.completion`` or as a stream (which ``/v1/messages`` turns into ``stop_reason:
"refusal"``). The provider billed nothing, and neither does the record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from gateway.api.outcome import Outcome
from gateway.api.streaming import final_chunk
from gateway.governance.metering import Usage
from gateway.providers.dispatch import ContentFiltered

_encoder = msgspec.json.Encoder()


def _settle(outcome: Outcome) -> None:
    """Nothing was generated or billed; the refusal is the first (and only) token."""
    outcome.usage = Usage()
    outcome.ttft_ms = outcome.elapsed_ms


def refusal_answer(outcome: Outcome, refusal: ContentFiltered) -> dict[str, Any]:
    """The metered ``chat.completion`` that carries the refusal (its deployment already set
    on ``outcome`` as the one that served)."""
    _settle(outcome)
    answer: dict[str, Any] = {
        "id": f"chatcmpl-{outcome.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": refusal.deployment.model.id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": refusal.reason},
                "finish_reason": "content_filter",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
    answer["routing_metadata"] = outcome.routing_metadata()
    outcome.record(status=200)
    return answer


async def refusal_stream(outcome: Outcome, refusal: ContentFiltered) -> AsyncIterator[bytes]:
    """The same refusal as an OpenAI stream: the refusal, the finish, usage, ``[DONE]``."""
    _settle(outcome)
    ids = (f"chatcmpl-{outcome.request_id}", int(time.time()))
    head = {
        "id": ids[0],
        "object": "chat.completion.chunk",
        "created": ids[1],
        "model": refusal.deployment.model.id,
    }
    delta = {"role": "assistant", "content": None, "refusal": refusal.reason}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]},
    ]
    for chunk in chunks:
        yield b"data: " + _encoder.encode(chunk) + b"\n\n"
    outcome.record(status=200)
    yield b"data: " + _encoder.encode(final_chunk(outcome, ids)) + b"\n\ndata: [DONE]\n\n"
