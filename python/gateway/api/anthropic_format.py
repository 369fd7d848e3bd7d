"""Pure transforms for the Anthropic Messages inbound endpoint (SPEC §5): an Anthropic request
becomes the gateway's internal OpenAI chat request, and an OpenAI ``chat.completion`` becomes
an Anthropic ``message``. No I/O; everything here is a function of its arguments.

Request mapping (Anthropic → OpenAI):

- ``system`` (string or text blocks) → a leading ``system`` message (string, or text parts);
- ``user`` text / image (base64 → data URL, url) blocks → content parts; ``tool_result``
  blocks → ``tool`` messages placed before the rest of that user turn;
- ``assistant`` text → ``content``, ``tool_use`` → ``tool_calls`` (input as JSON text);
  ``thinking`` / ``redacted_thinking`` history blocks are dropped (they do not cross formats);
- ``tools`` → function tools, ``tool_choice`` auto/any/tool/none → auto/required/{function}/
  none, ``disable_parallel_tool_use`` → ``parallel_tool_calls: false``;
- ``stop_sequences`` → ``stop``, ``metadata.user_id`` → ``user``, ``thinking`` →
  ``extensions.thinking``, ``top_k`` → ``extensions.anthropic.top_k`` (Anthropic-only: the
  chat pipeline drops it with a warning for any other provider);
- the gateway extensions (``models``, ``routing``, ``extensions``, ``gateway_metadata``) are
  carried over unchanged.

Anything that cannot be expressed is dropped and named in the returned warnings, which end up
in ``routing_metadata.warnings``.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.edge.schemas import AnthropicRequest

CARRIED_OVER = ("models", "routing", "gateway_metadata")
FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _text_of(blocks: str | list[Any]) -> str:
    if isinstance(blocks, str):
        return blocks
    return "".join(
        str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text"
    )


def _image_part(block: dict[str, Any], where: str, warnings: list[str]) -> dict[str, Any] | None:
    source = block.get("source")
    if isinstance(source, dict):
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            media = source.get("media_type") or "image/png"
            url = f"data:{media};base64,{source['data']}"
            return {"type": "image_url", "image_url": {"url": url}}
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return {"type": "image_url", "image_url": {"url": source["url"]}}
    warnings.append(f"{where}: image source not supported; dropped")
    return None


def _tool_result(block: dict[str, Any], where: str, warnings: list[str]) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        if any(isinstance(b, dict) and b.get("type") != "text" for b in content):
            warnings.append(f"{where}: non-text tool_result content not supported; dropped")
        text = _text_of(content)
    else:
        text = "" if content is None else str(content)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}


def _user_turn(content: str | list[Any], where: str, warnings: list[str]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            part = _image_part(block, at, warnings)
            if part is not None:
                parts.append(part)
        elif kind == "tool_result":
            tool_messages.append(_tool_result(block, at, warnings))
        else:
            warnings.append(f"{at}: content block type {kind!r} not supported; dropped")
    out = tool_messages
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_turn(content: str | list[Any], where: str, warnings: list[str]) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, separators=(",", ":"))
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {"name": str(block.get("name", "")), "arguments": arguments},
                }
            )
        elif kind not in ("thinking", "redacted_thinking"):
            warnings.append(f"{where}.content.{j}: content block type {kind!r} not supported")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _system(system: str | list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(system, str):
        return {"role": "system", "content": system}
    parts = [
        {"type": "text", "text": str(b.get("text", ""))}
        for b in system
        if isinstance(b, dict) and b.get("type") == "text"
    ]
    return {"role": "system", "content": parts}


def _tool_choice(request: AnthropicRequest) -> str | dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name or ""}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def _tools(request: AnthropicRequest, body: dict[str, Any], warnings: list[str]) -> None:
    if not request.tools:
        return
    tools = []
    for i, tool in enumerate(request.tools):
        if tool.type not in (None, "custom"):
            warnings.append(f"tools.{i}: server tool type {tool.type!r} not supported")
            continue
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description is not None:
            function["description"] = tool.description
        tools.append({"type": "function", "function": function})
    if tools:
        body["tools"] = tools
        choice = _tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
        if request.tool_choice is not None and request.tool_choice.disable_parallel_tool_use:
            body["parallel_tool_calls"] = False


def _extensions(request: AnthropicRequest, raw: dict[str, Any]) -> dict[str, Any]:
    """The caller's ``extensions`` plus ``thinking`` and the Anthropic-only ``top_k``."""
    extensions = dict(raw.get("extensions") or {})
    if request.thinking is not None and request.thinking.type != "disabled":
        thinking: dict[str, Any] = {"enabled": True}
        if request.thinking.budget_tokens is not None:
            thinking["budget_tokens"] = request.thinking.budget_tokens
        extensions["thinking"] = thinking
    if request.top_k is not None:
        anthropic = extensions.get("anthropic")
        extensions["anthropic"] = {
            **(anthropic if isinstance(anthropic, dict) else {}),
            "top_k": request.top_k,
        }
    return extensions


def to_openai(request: AnthropicRequest, raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The internal OpenAI chat body for an Anthropic request, and what was dropped."""
    warnings: list[str] = []
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append(_system(request.system))
    for i, message in enumerate(request.messages):
        where = f"messages.{i}"
        if message.role == "user":
            messages.extend(_user_turn(message.content, where, warnings))
        else:
            messages.append(_assistant_turn(message.content, where, warnings))
    body: dict[str, Any] = {"messages": messages, "max_tokens": request.max_tokens}
    if request.model is not None:
        body["model"] = request.model
    _tools(request, body, warnings)
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stream:
        body["stream"] = True
    if request.metadata:
        user_id = request.metadata.get("user_id")
        if isinstance(user_id, str):
            body["user"] = user_id
        others = sorted(k for k in request.metadata if k != "user_id")
        if others:
            warnings.append(f"metadata.{others[0]}: only metadata.user_id is supported")
    for name in CARRIED_OVER:
        if name in raw:
            body[name] = raw[name]
    extensions = _extensions(request, raw)
    if extensions:
        body["extensions"] = extensions
    return body, warnings


def _tool_input(arguments: object) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def from_openai(answer: dict[str, Any], *, message_id: str, model: str) -> dict[str, Any]:
    """An Anthropic ``message`` for an OpenAI ``chat.completion`` (first choice)."""
    choices = answer.get("choices") or []
    choice: dict[str, Any] = choices[0] if choices and isinstance(choices[0], dict) else {}
    message: dict[str, Any] = _object(choice.get("message"))
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal and not text:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = _object(call.get("function"))
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "input": _tool_input(function.get("arguments")),
            }
        )
    finish = choice.get("finish_reason")
    usage = _object(answer.get("usage"))
    details = usage.get("prompt_tokens_details")
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    prompt = int(usage.get("prompt_tokens") or 0)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(finish, "end_turn") if isinstance(finish, str) else None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": max(0, prompt - cached),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0,
        },
    }
