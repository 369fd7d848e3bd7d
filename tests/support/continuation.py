"""What a provider that accepts an assistant prefill does with one (docs/behaviour.md, stream
rescue): find the prefill in a request and answer with the rest of a known full text.

Pure functions, shared by the OpenAI-format upstream (``upstream.Continue``) and the
Anthropic-format one (``anthropic_upstream.AnthropicContinue``). The four request styles:

- ``assistant`` (Anthropic Messages): ``messages`` end with an assistant turn; Anthropic
  rejects one that ends in whitespace.
- ``continue_final_message`` (vLLM): an assistant turn last, and top-level
  ``continue_final_message: true`` with ``add_generation_prompt: false``.
- ``prefix`` (DeepSeek) and ``prefix_echo`` (Mistral): an assistant turn last with
  ``prefix: true``; a ``prefix_echo`` provider repeats the prefix before continuing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Style = Literal["assistant", "continue_final_message", "prefix", "prefix_echo"]
# The request shape a style is sent as (prefix_echo differs only in the answer).
RequestShape = Literal["assistant", "continue_final_message", "prefix"]


@dataclass(frozen=True)
class Prefill:
    shape: RequestShape
    text: str


def content_text(content: Any) -> str | None:
    """A message's text: a string, or the concatenated ``text`` blocks of a block list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        if all(isinstance(p, str) for p in parts):
            return "".join(str(p) for p in parts)
    return None


def find_prefill(body: Any) -> Prefill | None:
    """The assistant prefill a request ends with, or ``None`` for an ordinary request."""
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return None
    text = content_text(last.get("content"))
    if text is None:
        return None
    if last.get("prefix") is True:
        return Prefill("prefix", text)
    if body.get("continue_final_message") is True:
        return Prefill("continue_final_message", text)
    return Prefill("assistant", text)


def request_shape(style: Style) -> RequestShape:
    return "prefix" if style == "prefix_echo" else style


def shape_problem(style: Style, body: dict[str, Any], prefill: Prefill) -> str | None:
    """Why a provider of ``style`` would refuse this continuation request, or ``None``."""
    if prefill.shape != request_shape(style):
        return f"test upstream expects a {style!r} prefill, got a {prefill.shape!r} one"
    if style == "continue_final_message" and body.get("add_generation_prompt") is not False:
        return "continue_final_message needs add_generation_prompt: false"
    if style == "assistant" and prefill.text != prefill.text.rstrip():
        return "final assistant content cannot end with trailing whitespace"
    return None


def answer_text(style: Style, full_text: str, prefill: str) -> str:
    """What the provider streams: the rest of ``full_text`` after ``prefill`` (the prefill
    first for ``prefix_echo``). A prefill that is not a prefix of ``full_text`` gets a marker
    answer, so that a test comparing texts shows what was sent."""
    if not full_text.startswith(prefill):
        return f"<prefill mismatch: {prefill!r} is not a prefix of the answer>"
    rest = full_text[len(prefill) :]
    return prefill + rest if style == "prefix_echo" else rest
