"""Gateway configurations shared by the integration tests."""

from __future__ import annotations

from typing import Any

from .gateway import gateway_config, offer, openai_provider

GPT4O_UP = "up-gpt-4o-2024"
MINI_UP = "up-gpt-4o-mini-2024"
MINI_CONTEXT_WINDOW = 2000
MAX_BODY_BYTES = 65536


def single_upstream_config(base_url: str) -> dict[str, Any]:
    """upstream-a offers gpt-4o (no vision) and a small-context gpt-4o-mini."""
    return gateway_config(
        [openai_provider("upstream-a", base_url, "UPSTREAM_A_KEY")],
        [
            offer("gpt-4o", "upstream-a", GPT4O_UP, price_in=2.5, price_out=10.0),
            offer(
                "gpt-4o-mini",
                "upstream-a",
                MINI_UP,
                price_in=0.15,
                price_out=0.6,
                context_window=MINI_CONTEXT_WINDOW,
                max_output=1000,
            ),
        ],
        max_body_bytes=MAX_BODY_BYTES,
    )
