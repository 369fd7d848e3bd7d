"""msgspec structs for request bodies, and the decode step that turns msgspec's errors into
400s naming the offending ``param``.

Chat requests are decoded once to a plain dict (so unknown OpenAI fields can be forwarded
unchanged) and that dict is converted once into ``ChatRequest`` for validation.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from gateway import _router_core as core
from gateway.errors import InvalidRequest, MissingParameter
from gateway.routing_options import RoutingOptions

T = TypeVar("T")

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
ModelName = Annotated[str, msgspec.Meta(max_length=256)]
ModelList = Annotated[list[ModelName], msgspec.Meta(min_length=1, max_length=10)]

# Sizes a client controls, bounded by OpenAI's published limits (docs/behaviour.md, "Request
# limits") so no request buys unbounded work, here or from a provider.
MAX_MESSAGES = 2048
MAX_CHOICES = 128  # n
MAX_TOOLS = 128
MAX_STOP = 4
MAX_LOGIT_BIAS = 300
MAX_STOP_SEQUENCES = 16  # /v1/messages: Anthropic publishes no limit; the gateway's own
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_DIMENSIONS = 3072  # text-embedding-3-large's native size, the catalog's largest
Tag = Annotated[str, msgspec.Meta(max_length=50)]


class Message(msgspec.Struct, kw_only=True):
    """One chat message; content shapes beyond this are checked by the provider."""

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ResponseFormat(msgspec.Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class Tool(msgspec.Struct, kw_only=True):
    type: Literal["function"] = "function"
    function: dict[str, Any]


class GatewayMetadata(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Caller-supplied labels stored with the usage record (never sent upstream)."""

    tags: Annotated[list[Tag], msgspec.Meta(max_length=100)] | None = None
    user_id: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    trace_id: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    custom_fields: (
        Annotated[
            dict[
                Annotated[str, msgspec.Meta(max_length=50)],
                Annotated[str, msgspec.Meta(max_length=200)],
            ],
            msgspec.Meta(max_length=10),
        ]
        | None
    ) = None


class ChatRequest(msgspec.Struct, kw_only=True):
    """The OpenAI chat-completions body plus the gateway's extensions (SPEC §2)."""

    messages: Annotated[list[Message], msgspec.Meta(min_length=1, max_length=MAX_MESSAGES)]
    model: ModelName | None = None
    models: ModelList | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Fraction | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=MAX_CHOICES)] | None = None
    stop: str | Annotated[list[str], msgspec.Meta(max_length=MAX_STOP)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: Annotated[dict[str, float], msgspec.Meta(max_length=MAX_LOGIT_BIAS)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    seed: int | None = None
    user: str | None = None
    tools: Annotated[list[Tool], msgspec.Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=MAX_TOOLS)] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    metadata: dict[str, Any] | None = None
    routing: RoutingOptions | None = None
    extensions: dict[str, Any] | None = None
    gateway_metadata: GatewayMetadata | None = None


GATEWAY_FIELDS: frozenset[str] = frozenset({"models", "routing", "extensions", "gateway_metadata"})

_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")


def _param_from_error(message: str) -> tuple[str, str | None, bool]:
    """Split msgspec's message into (text, param path, was-a-missing-field)."""
    match = _PATH.search(message)
    path = match.group("path").lstrip(".") if match else ""
    text = message[: match.start()] if match else message
    missing = _MISSING.match(text)
    if missing:
        field = missing.group("field")
        path = f"{path}.{field}" if path else field
    return text, (path or None), missing is not None


def convert(data: object, kind: type[T], *, prefix: str = "") -> T:
    """Validate decoded JSON into ``kind``; a failure is a 400 that names the param."""
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        text, param, missing = _param_from_error(str(exc))
        if prefix and param:
            param = f"{prefix}.{param}"
        elif prefix:
            param = prefix
        if missing:
            raise MissingParameter(f"Missing required parameter: '{param}'.", param=param) from None
        raise InvalidRequest(f"Invalid value for '{param}': {text}", param=param) from None


_decoder = msgspec.json.Decoder()


MAX_JSON_DEPTH: int = core.MAX_JSON_DEPTH
"""Deepest nesting of arrays and objects a body may have (docs/behaviour.md, "Request
limits"); the native analyser's limit too, so one constant bounds every recursive decoder."""


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON request body that must be an object.

    The nesting depth is checked on the raw bytes first: msgspec, ``convert`` and the
    passthrough merge all recurse per level, and a deep body would end in ``RecursionError``.
    """
    if core.json_depth_exceeds(body, limit=MAX_JSON_DEPTH):
        raise InvalidRequest(
            f"Request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep."
        )
    try:
        value = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest("Request body must be a JSON object.")
    return value


class Thinking(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``extensions.thinking`` (SPEC §2): translated per provider wire format."""

    enabled: bool = False
    budget_tokens: PositiveInt = 8000


# --- POST /v1/messages (SPEC §5) --------------------------------------------------------

AnthropicRole = Literal["user", "assistant"]


class AnthropicMessage(msgspec.Struct, kw_only=True):
    role: AnthropicRole
    content: str | list[dict[str, Any]]


class AnthropicTool(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    description: str | None = None
    input_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    type: str | None = None
    cache_control: dict[str, Any] | None = None


class AnthropicToolChoice(msgspec.Struct, kw_only=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class AnthropicThinking(msgspec.Struct, kw_only=True):
    """``enabled`` (and newer variants such as ``adaptive``) turn thinking on."""

    type: str
    budget_tokens: PositiveInt | None = None


class AnthropicRequest(msgspec.Struct, kw_only=True):
    """The Anthropic Messages body plus the gateway's extensions."""

    max_tokens: PositiveInt
    messages: Annotated[list[AnthropicMessage], msgspec.Meta(min_length=1, max_length=MAX_MESSAGES)]
    model: ModelName | None = None
    models: ModelList | None = None
    system: str | list[dict[str, Any]] | None = None
    tools: Annotated[list[AnthropicTool], msgspec.Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: AnthropicToolChoice | None = None
    stop_sequences: Annotated[list[str], msgspec.Meta(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    top_p: Fraction | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    thinking: AnthropicThinking | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None
    routing: RoutingOptions | None = None
    extensions: dict[str, Any] | None = None
    gateway_metadata: GatewayMetadata | None = None


# --- POST /v1/embeddings --------------------------------------------------------------


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    """The OpenAI embeddings body plus the gateway's extensions; ``input`` is checked by
    the handler (a string, a list of strings, a token array or a list of token arrays)."""

    input: str | list[Any]
    model: ModelName | None = None
    models: ModelList | None = None
    dimensions: Annotated[int, msgspec.Meta(ge=1, le=MAX_EMBEDDING_DIMENSIONS)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    routing: RoutingOptions | None = None
    extensions: dict[str, Any] | None = None
    gateway_metadata: GatewayMetadata | None = None
