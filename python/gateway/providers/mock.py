"""The built-in ``mock`` provider: serves ``rg_test_`` keys in-process, free and offline.

Its answer is deterministic (a fixed sentence naming the model) and it speaks the OpenAI wire
format, streaming included, so test traffic exercises the same relay and metering code as
live traffic without touching a network.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from gateway.providers.base import AttemptFailure, UpstreamStream
from gateway.routing.catalog import Deployment

_encoder = msgspec.json.Encoder()


DEFAULT_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
FALLBACK_DIMENSIONS = 1024
MAX_INPUTS = 2048  # OpenAI's published limit of inputs per embeddings request


def mock_vector(model: str, item: object, dimensions: int) -> npt.NDArray[np.float32]:
    """A deterministic unit vector for ``item`` (text or token array) under ``model``."""
    digest = hashlib.sha256(model.encode() + b"\0" + _encoder.encode(item)).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    vector = rng.standard_normal(dimensions)
    norm = float(np.linalg.norm(vector)) or 1.0
    return np.asarray(vector / norm, dtype=np.float32)


def mock_text(model: str) -> str:
    return f"This is a mock response from Routegate's built-in mock provider for {model}."


def _usage(payload: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    prompt_chars = len(_encoder.encode(payload.get("messages", [])))
    prompt_tokens = max(1, prompt_chars // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class MockProvider:
    """Answers every model with ``mock_text``; ``usage`` is an estimate from the payload size."""

    def with_key(self, api_key: str) -> MockProvider:
        """The mock takes no key (and has no BYOK deployments): itself."""
        return self

    async def complete(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        text = mock_text(deployment.model.id)
        return {
            "id": "chatcmpl-mock-" + uuid.uuid4().hex[:20],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment.model.id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(payload, len(text.split())),
        }

    async def embed(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        """Deterministic vectors of the model's dimension (or ``dimensions``), in input order;
        ``prompt_tokens`` is ~4 characters (or one array entry) a token. Sizes past the
        model's own are refused, as OpenAI refuses them: the mock is free, not unbounded."""
        model = deployment.model.id
        raw = payload.get("input")
        items: list[Any] = raw if isinstance(raw, list) and not _is_tokens(raw) else [raw]
        native = deployment.model.dimensions or DEFAULT_DIMENSIONS.get(model, FALLBACK_DIMENSIONS)
        dims = payload.get("dimensions")
        size = dims if isinstance(dims, int) else native
        if not 1 <= size <= native or len(items) > MAX_INPUTS:  # as OpenAI refuses them
            raise AttemptFailure(
                "bad_request",
                f"'dimensions' must be 1 to {native} and 'input' at most {MAX_INPUTS} items",
                status=400,
            )
        as_base64 = payload.get("encoding_format") == "base64"
        data = []
        tokens = 0
        for index, item in enumerate(items):
            vector = mock_vector(model, item, size)
            tokens += len(item) if isinstance(item, list) else max(1, len(str(item)) // 4)
            embedding: Any = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if as_base64
                else vector.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def stream(self, deployment: Deployment, payload: dict[str, Any]) -> UpstreamStream:
        events = list(self._events(deployment, payload))
        return UpstreamStream(first=events[0], rest=_iterate(events[1:]), close=_nothing)

    def _events(self, deployment: Deployment, payload: dict[str, Any]) -> list[bytes]:
        words = mock_text(deployment.model.id).split(" ")
        base = {
            "id": "chatcmpl-mock-" + uuid.uuid4().hex[:20],
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": deployment.model.id,
        }
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
        chunks = [
            {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({**base, "choices": [], "usage": _usage(payload, len(words))})
        return [b"data: " + _encoder.encode(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]

    async def aclose(self) -> None:
        return None


def _is_tokens(value: list[Any]) -> bool:
    """A single token array (a list of ints), as opposed to a list of inputs."""
    return bool(value) and all(isinstance(v, int) for v in value)


async def _iterate(items: list[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def _nothing() -> None:
    return None
