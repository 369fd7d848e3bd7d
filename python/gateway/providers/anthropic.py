"""Anthropic Messages wire format: ``POST {base_url}/messages``.

Two pure transforms and thin I/O (``wire_http``):

- ``to_anthropic(deployment, payload)``: OpenAI chat payload → Messages request. System and
  developer messages become ``system`` blocks; content parts become text / image blocks
  (``data:`` URLs as base64 sources, http URLs as url sources); assistant ``tool_calls``
  become ``tool_use`` blocks and ``tool`` messages user ``tool_result`` blocks (consecutive
  same-role turns merged); tools, ``tool_choice``, ``stop``, ``max_tokens`` (required: the
  request's, else the offer's ``max_output`` capped at 8,192), ``temperature``, ``top_p``,
  ``user`` → ``metadata.user_id``, ``extensions.thinking`` → ``thinking`` and the sanitised
  ``extensions.anthropic`` passthrough (its values win). Prompt caching (SPEC §4): when the
  estimated prompt exceeds the model family's threshold and the request carries no
  ``cache_control`` anywhere, the last system block (else the last tool, else the last
  block of the last message) gets ``cache_control: {type: ephemeral}``.
- ``from_anthropic(answer)``: Messages response → OpenAI ``chat.completion``.

Streams are returned with ``wire="anthropic"``; the native ``AnthropicStreamRelay`` translates
them. Unknown top-level OpenAI fields are not forwarded (this is not an OpenAI-format API).
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec

from gateway import _router_core as core
from gateway.config import ProviderConfig
from gateway.errors import InvalidRequest
from gateway.providers.base import AttemptFailure, UpstreamStream
from gateway.providers.credentials import ANTHROPIC_VERSION, auth_headers
from gateway.providers.passthrough import (
    apply_passthrough,
    function_definitions,
    thinking_budget,
)
from gateway.providers.wire_http import WireClient
from gateway.routing.catalog import Deployment

__all__ = [
    "ANTHROPIC_VERSION",
    "CORE_FIELDS",
    "AnthropicProvider",
    "cache_threshold",
    "from_anthropic",
    "to_anthropic",
]

CORE_FIELDS: frozenset[str] = frozenset({"model", "messages", "stream", "system"})
DEFAULT_MAX_TOKENS = 8192
MIN_THINKING_BUDGET = 1024
_encoder = msgspec.json.Encoder()
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,(?P<data>.*)$", re.S)
_EPHEMERAL = {"type": "ephemeral"}
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def cache_threshold(model_id: str) -> int:
    """Minimum cacheable prompt (tokens) of the model's family (SPEC §4)."""
    name = model_id.lower().replace(".", "-")
    if re.search(r"haiku-4-5|opus-4-5|4-5-haiku|4-5-opus", name):
        return 4096
    if "haiku" in name:
        return 2048
    return 1024


# --- request -------------------------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    """Plain text of string or text-part content (system, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                raise InvalidRequest(f"Only text parts are supported in {where}.", param=where)
        return "\n".join(texts)
    raise InvalidRequest("Message content must be a string or a list of parts.", param=where)


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequest("image_url needs a 'url'.", param=where)
    match = _DATA_URL.match(url)
    if match:
        source = {
            "type": "base64",
            "media_type": match.group("type") or "image/png",
            "data": match.group("data"),
        }
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """User / assistant content → content blocks (empty text dropped)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("Message content must be a string or a list of parts.", param=where)
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image_block(part, where))
        else:
            raise InvalidRequest(
                f"Content part type {kind!r} is not supported by Anthropic models.", param=where
            )
    return blocks


def _arguments(raw: Any, where: str) -> Any:
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        return msgspec.json.decode(raw if isinstance(raw, str | bytes) else str(raw))
    except msgspec.DecodeError:
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=where) from None


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Append a turn, merging it into the previous one when the role repeats."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _messages(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(payload.get("messages") or []):
        where = f"messages[{i}].content"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content, where)
            if text:
                system.append({"type": "text", "text": text})
        elif role == "user":
            _append(messages, "user", _blocks(content, where))
        elif role == "assistant":
            blocks = _blocks(content, where)
            for j, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{i}_{j}",
                        "name": function.get("name", ""),
                        "input": _arguments(
                            function.get("arguments"), f"messages[{i}].tool_calls[{j}]"
                        ),
                    }
                )
            legacy = message.get("function_call")
            if isinstance(legacy, dict):
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_{i}",
                        "name": legacy.get("name", ""),
                        "input": _arguments(legacy.get("arguments"), f"messages[{i}]"),
                    }
                )
            _append(messages, "assistant", blocks)
        elif role in ("tool", "function"):
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id") or f"toolu_{i - 1}",
                "content": _text_of(content, where),
            }
            _append(messages, "user", [result])
        else:
            raise InvalidRequest(f"Unknown message role {role!r}.", param=f"messages[{i}].role")
    return system, messages


def _tools(payload: dict[str, Any]) -> list[dict[str, Any]] | None:
    functions = function_definitions(payload)
    if not functions:
        return None
    out = []
    for function in functions:
        entry: dict[str, Any] = {
            "name": function.get("name", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        out.append(entry)
    return out


def _tool_choice(payload: dict[str, Any]) -> dict[str, Any] | None:
    choice = payload.get("tool_choice", payload.get("function_call"))
    mapped: dict[str, Any] | None
    if choice in (None, "auto"):
        mapped = {"type": "auto"} if choice else None
    elif choice == "none":
        mapped = {"type": "none"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        mapped = {"type": "tool", "name": name}
    else:
        raise InvalidRequest(f"Unsupported tool_choice {choice!r}.", param="tool_choice")
    if payload.get("parallel_tool_calls") is False:
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    return mapped


def _estimated_prompt_tokens(payload: dict[str, Any]) -> int:
    body = {k: payload[k] for k in ("messages", "tools") if k in payload}
    tokens, _exact = core.count_body_tokens(_encoder.encode(body), family="claude")
    return tokens


def _add_cache_control(body: dict[str, Any]) -> None:
    if body.get("system"):
        body["system"][-1]["cache_control"] = _EPHEMERAL
    elif body.get("tools"):
        body["tools"][-1]["cache_control"] = _EPHEMERAL
    elif body["messages"] and body["messages"][-1]["content"]:
        body["messages"][-1]["content"][-1]["cache_control"] = _EPHEMERAL


def to_anthropic(deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
    """The Messages request for ``payload`` (an OpenAI chat payload, ``model`` already the
    provider's id). Raises ``InvalidRequest`` for content Anthropic cannot take."""
    system, messages = _messages(payload)
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if not max_tokens:
        max_tokens = min(deployment.offer.max_output, DEFAULT_MAX_TOKENS)
    body: dict[str, Any] = {"model": payload["model"], "max_tokens": max_tokens}
    if system:
        body["system"] = system
    body["messages"] = messages
    tools = _tools(payload)
    if tools:
        body["tools"] = tools
    choice = _tool_choice(payload) if tools else None
    if choice:
        body["tool_choice"] = choice
    stop = payload.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    budget = thinking_budget(payload)
    if budget is not None:
        budget = max(budget, MIN_THINKING_BUDGET)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if body["max_tokens"] <= budget:  # Anthropic requires max_tokens > budget_tokens
            body["max_tokens"] = min(budget + body["max_tokens"], deployment.offer.max_output)
    elif payload.get("temperature") is not None:  # thinking allows no temperature
        body["temperature"] = min(float(payload["temperature"]), 1.0)
    if payload.get("top_p") is not None:
        body["top_p"] = payload["top_p"]
    if payload.get("user"):
        body["metadata"] = {"user_id": str(payload["user"])}
    if payload.get("stream"):
        body["stream"] = True
    body = apply_passthrough(body, payload, "anthropic", CORE_FIELDS)
    if b'"cache_control"' not in _encoder.encode(body):
        threshold = cache_threshold(deployment.provider_model_id or deployment.model.id)
        if _estimated_prompt_tokens(payload) > threshold:
            _add_cache_control(body)
    return body


# --- response ------------------------------------------------------------------------------


def _usage(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = (
        int(usage.get("input_tokens") or 0)
        + cached
        + int(usage.get("cache_creation_input_tokens") or 0)
    )
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def from_anthropic(answer: dict[str, Any]) -> dict[str, Any]:
    """A Messages response → an OpenAI ``chat.completion``."""
    if answer.get("type") == "error" or not isinstance(answer.get("content"), list):
        raise AttemptFailure("server_error", "upstream sent no Messages response")
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in answer["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": _encoder.encode(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    stop_reason = answer.get("stop_reason")
    return {
        "id": str(answer.get("id") or "msg"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(answer.get("model") or ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _STOP_REASONS.get(str(stop_reason), "stop"),
            }
        ],
        "usage": _usage(answer.get("usage")),
    }


# --- I/O -----------------------------------------------------------------------------------


class AnthropicProvider:
    """Calls one Anthropic-format provider with its platform key (``x-api-key``), or through
    ``with_key`` a workspace's own key for one attempt."""

    def __init__(
        self, config: ProviderConfig, api_key: str | None, *, wire: WireClient | None = None
    ) -> None:
        self.config = config
        self._client = wire or WireClient(config, api_key, auth_headers("anthropic", api_key))
        self._url = (config.base_url or "https://api.anthropic.com/v1").rstrip("/") + "/messages"

    def with_key(self, api_key: str) -> AnthropicProvider:
        """This provider for one attempt with ``api_key``, over the same connection pool."""
        view = self._client.view(api_key, auth_headers("anthropic", api_key))
        return AnthropicProvider(self.config, api_key, wire=view)

    async def complete(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        body = to_anthropic(deployment, {**payload, "stream": False})
        return from_anthropic(await self._client.post_json(self._url, body))

    async def stream(self, deployment: Deployment, payload: dict[str, Any]) -> UpstreamStream:
        body = to_anthropic(deployment, {**payload, "stream": True})
        return await self._client.open_stream(self._url, body, "anthropic")

    async def aclose(self) -> None:
        await self._client.aclose()
