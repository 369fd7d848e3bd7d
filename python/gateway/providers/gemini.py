"""Gemini wire format (Google AI Studio): ``POST {base_url}/models/{id}:generateContent`` and
``:streamGenerateContent?alt=sse``, key in the ``x-goog-api-key`` header.

Two pure transforms and thin I/O (``wire_http``):

- ``to_gemini(payload)``: OpenAI chat payload → ``GenerateContentRequest``. System and developer
  messages become ``systemInstruction``; turns become ``contents`` with roles ``user`` /
  ``model`` (consecutive same-role turns merged); parts are ``text``, ``inlineData``
  (``data:`` URLs, input audio) or ``fileData`` (http URLs); assistant tool calls become
  ``functionCall`` parts and tool messages ``functionResponse`` parts (named by the call they
  answer); tools become ``functionDeclarations`` (schemas stripped of keywords Gemini
  rejects) and ``tool_choice`` a ``functionCallingConfig``; ``generationConfig`` carries
  ``maxOutputTokens``, ``temperature``, ``topP``, ``stopSequences``, ``candidateCount``,
  ``seed``, penalties, JSON mode (``responseMimeType`` + ``responseSchema``) and
  ``extensions.thinking`` as ``thinkingConfig.thinkingBudget``; the sanitised
  ``extensions.gemini`` passthrough is deep-merged last (its values win).
- ``from_gemini(answer)``: ``GenerateContentResponse`` → OpenAI ``chat.completion``
  (tool-call ids ``call_<n>`` unless Gemini sent ids; thoughts as ``reasoning_content``).

Streams are returned with ``wire="gemini"``; the native ``GeminiStreamRelay`` translates them.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import quote

import msgspec

from gateway.config import ProviderConfig
from gateway.errors import InvalidRequest
from gateway.providers.base import AttemptFailure, UpstreamStream
from gateway.providers.credentials import auth_headers
from gateway.providers.passthrough import (
    apply_passthrough,
    function_definitions,
    thinking_budget,
)
from gateway.providers.wire_http import WireClient
from gateway.routing.catalog import Deployment

__all__ = ["CORE_FIELDS", "GeminiProvider", "finish_reason", "from_gemini", "to_gemini"]

CORE_FIELDS: frozenset[str] = frozenset(
    {"model", "messages", "stream", "contents", "systemInstruction", "system_instruction"}
)
_encoder = msgspec.json.Encoder()
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,(?P<data>.*)$", re.S)
# JSON-schema keywords Gemini's OpenAPI-subset schema rejects.
_UNSUPPORTED_SCHEMA_KEYS = frozenset(
    {"$schema", "$id", "additionalProperties", "strict", "default", "examples", "$comment"}
)
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_FILTERED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)


def finish_reason(reason: str | None, called_tool: bool) -> str:
    """Gemini ``finishReason`` → OpenAI ``finish_reason`` (same table as the native relay)."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if called_tool else "stop"


# --- request -------------------------------------------------------------------------------


def clean_schema(schema: Any) -> Any:
    """A JSON schema without the keywords Gemini rejects (property names are kept)."""
    if isinstance(schema, list):
        return [clean_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNSUPPORTED_SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        else:
            out[key] = clean_schema(value)
    return out


def _text_of(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise InvalidRequest(f"Only text parts are supported in {where}.", param=where)
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise InvalidRequest("Message content must be a string or a list of parts.", param=where)


def _media_part(url: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match:
        mime = match.group("type") or "image/png"
        return {"inlineData": {"mimeType": mime, "data": match.group("data")}}
    extension = url.rsplit(".", 1)[-1].lower().split("?")[0]
    mime = {"png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(
        extension, "image/jpeg"
    )
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("Message content must be a string or a list of parts.", param=where)
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                parts.append({"text": str(part["text"])})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequest("image_url needs a 'url'.", param=where)
            parts.append(_media_part(url))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = _AUDIO_TYPES.get(str(audio.get("format", "wav")), "audio/wav")
            parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data", "")}})
        else:
            raise InvalidRequest(
                f"Content part type {kind!r} is not supported by Gemini models.", param=where
            )
    return parts


def _args(raw: Any, where: str) -> Any:
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        value = msgspec.json.decode(raw if isinstance(raw, str | bytes) else str(raw))
    except msgspec.DecodeError:
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=where) from None
    return value if isinstance(value, dict) else {"value": value}


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _response_object(content: Any, where: str) -> dict[str, Any]:
    text = _text_of(content, where)
    try:
        value = msgspec.json.decode(text) if text else None
    except msgspec.DecodeError:
        value = None
    return value if isinstance(value, dict) else {"content": text}


def _contents(payload: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name, latest call wins
    for i, message in enumerate(payload.get("messages") or []):
        where = f"messages[{i}].content"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content, where)
            if text:
                system.append(text)
        elif role == "user":
            _append(contents, "user", _parts(content, where))
        elif role == "assistant":
            parts = _parts(content, where)
            for j, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") or {}
                name = function.get("name", "")
                if call.get("id"):
                    names[call["id"]] = name
                args = _args(function.get("arguments"), f"messages[{i}].tool_calls[{j}]")
                parts.append({"functionCall": {"name": name, "args": args}})
            _append(contents, "model", parts)
        elif role in ("tool", "function"):
            name = message.get("name") or names.get(message.get("tool_call_id") or "", "")
            if not name:
                raise InvalidRequest(
                    "A tool message must answer a tool call made earlier in the conversation.",
                    param=f"messages[{i}].tool_call_id",
                )
            response = _response_object(content, where)
            _append(contents, "user", [{"functionResponse": {"name": name, "response": response}}])
        else:
            raise InvalidRequest(f"Unknown message role {role!r}.", param=f"messages[{i}].role")
    return system, contents


def _tools(payload: dict[str, Any]) -> list[dict[str, Any]] | None:
    functions = function_definitions(payload)
    if not functions:
        return None
    declarations = []
    for function in functions:
        declaration: dict[str, Any] = {"name": function.get("name", "")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parameters"] = clean_schema(function["parameters"])
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _tool_config(payload: dict[str, Any]) -> dict[str, Any] | None:
    choice = payload.get("tool_choice", payload.get("function_call"))
    if choice is None:
        return None
    config: dict[str, Any]
    if choice == "auto":
        config = {"mode": "AUTO"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        config = {"mode": "ANY", "allowedFunctionNames": [name]}
    else:
        raise InvalidRequest(f"Unsupported tool_choice {choice!r}.", param="tool_choice")
    return {"functionCallingConfig": config}


def _generation_config(payload: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    simple = {
        "temperature": "temperature",
        "top_p": "topP",
        "n": "candidateCount",
        "seed": "seed",
        "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty",
    }
    for name, gemini_name in simple.items():
        if payload.get(name) is not None:
            config[gemini_name] = payload[name]
    stop = payload.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = payload.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")  # type: ignore[union-attr]
        if schema:
            config["responseSchema"] = clean_schema(schema)
    budget = thinking_budget(payload)
    if budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
    return config


def to_gemini(payload: dict[str, Any]) -> dict[str, Any]:
    """The ``GenerateContentRequest`` for an OpenAI chat payload."""
    system, contents = _contents(payload)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    tools = _tools(payload)
    if tools:
        body["tools"] = tools
        tool_config = _tool_config(payload)
        if tool_config:
            body["toolConfig"] = tool_config
    generation = _generation_config(payload)
    if generation:
        body["generationConfig"] = generation
    return apply_passthrough(body, payload, "gemini", CORE_FIELDS)


# --- response ------------------------------------------------------------------------------


def _usage(meta: Any) -> dict[str, Any]:
    meta = meta if isinstance(meta, dict) else {}
    prompt = int(meta.get("promptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(meta.get("cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def from_gemini(answer: dict[str, Any]) -> dict[str, Any]:
    """A ``GenerateContentResponse`` → an OpenAI ``chat.completion``."""
    candidates = answer.get("candidates")
    if not isinstance(candidates, list):
        if not isinstance(answer.get("promptFeedback"), dict):
            raise AttemptFailure("server_error", "upstream sent no GenerateContentResponse")
        candidates = []
    candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append(
                {
                    "id": call.get("id") or f"call_{len(calls)}",
                    "type": "function",
                    "function": {
                        "name": call.get("name", ""),
                        "arguments": _encoder.encode(call.get("args") or {}).decode(),
                    },
                }
            )
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") is True else texts).append(part["text"])
    reason = candidate.get("finishReason") if candidate else "SAFETY"  # blocked prompt
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-" + str(answer.get("responseId") or uuid.uuid4().hex[:24]),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(answer.get("modelVersion") or ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(reason, bool(calls)),
            }
        ],
        "usage": _usage(answer.get("usageMetadata")),
    }


# --- I/O -----------------------------------------------------------------------------------


class GeminiProvider:
    """Calls one Gemini-format provider with its platform key (``x-goog-api-key``), or through
    ``with_key`` a workspace's own key for one attempt."""

    def __init__(
        self, config: ProviderConfig, api_key: str | None, *, wire: WireClient | None = None
    ) -> None:
        self.config = config
        self._client = wire or WireClient(config, api_key, auth_headers("gemini", api_key))
        self._base = (config.base_url or "https://generativelanguage.googleapis.com/v1beta").rstrip(
            "/"
        )

    def with_key(self, api_key: str) -> GeminiProvider:
        """This provider for one attempt with ``api_key``, over the same connection pool."""
        view = self._client.view(api_key, auth_headers("gemini", api_key))
        return GeminiProvider(self.config, api_key, wire=view)

    def _url(self, model: str, method: str) -> str:
        return f"{self._base}/models/{quote(model, safe='-._~/')}:{method}"

    async def complete(self, deployment: Deployment, payload: dict[str, Any]) -> dict[str, Any]:
        body = to_gemini(payload)
        answer = await self._client.post_json(self._url(payload["model"], "generateContent"), body)
        return from_gemini(answer)

    async def stream(self, deployment: Deployment, payload: dict[str, Any]) -> UpstreamStream:
        url = self._url(payload["model"], "streamGenerateContent") + "?alt=sse"
        return await self._client.open_stream(url, to_gemini(payload), "gemini")

    async def aclose(self) -> None:
        await self._client.aclose()
