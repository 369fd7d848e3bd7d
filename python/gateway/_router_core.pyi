"""Type stubs for Routegate's native core (``rust/router_core``, built by maturin).

The core does per-request computation only: request analysis, candidate filtering and
scoring, SSE framing and stream relaying. It never does I/O and holds no configured policy.
"""

from typing import Final, Literal, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__all__ = [
    "CAP_AUDIO",
    "CAP_EMBEDDINGS",
    "CAP_JSON_OBJECT",
    "CAP_JSON_SCHEMA",
    "CAP_REASONING",
    "CAP_TOOLS",
    "CAP_VISION",
    "CONSTRAINT_NAMES",
    "DATA_POLICY_NONE",
    "DATA_POLICY_NO_TRAINING",
    "DATA_POLICY_ZDR",
    "ENCODINGS",
    "FAMILIES",
    "KEY_SOURCE_ANY",
    "KEY_SOURCE_BYOK",
    "KEY_SOURCE_PLATFORM",
    "MAX_JSON_DEPTH",
    "TASKS",
    "Analysis",
    "AnthropicStreamRelay",
    "CandidateTable",
    "GeminiStreamRelay",
    "OpenAIStreamRelay",
    "OpenAIToAnthropicRelay",
    "RouteRequest",
    "RouteResult",
    "SseEvent",
    "SseParser",
    "StreamStitch",
    "__version__",
    "analyze",
    "count_body_tokens",
    "count_chat",
    "count_tokens",
    "delivered_answer",
    "estimate_tokens",
    "json_depth_exceeds",
    "token_ratio",
    "vocabulary_gz",
    "write_holding_gil",
]

__version__: Final[str]

# Deepest nesting of arrays and objects a request body may have (top-level object = 1).
MAX_JSON_DEPTH: Final[int]

# Capability bits of the candidate table's ``capabilities`` column and of
# ``Analysis.required_capabilities``.
CAP_TOOLS: Final[int]
CAP_VISION: Final[int]
CAP_JSON_OBJECT: Final[int]
CAP_JSON_SCHEMA: Final[int]
CAP_AUDIO: Final[int]
CAP_REASONING: Final[int]
CAP_EMBEDDINGS: Final[int]

# Key-source codes of the ``key_source`` column and ``RouteRequest.key_source``.
KEY_SOURCE_ANY: Final[int]
KEY_SOURCE_PLATFORM: Final[int]
KEY_SOURCE_BYOK: Final[int]

# Data-policy levels (higher is stricter): none < no_training < zdr.
DATA_POLICY_NONE: Final[int]
DATA_POLICY_NO_TRAINING: Final[int]
DATA_POLICY_ZDR: Final[int]

# Names of the hard constraints, as reported in ``RouteResult.emptied_by`` (and indexed by
# ``RouteResult.rejected_by``).
CONSTRAINT_NAMES: Final[tuple[str, ...]]

# Prompt tasks, indexed by ``Analysis.task``; also the column order of the quality matrix:
# ("chat", "code", "math", "extraction", "summarization", "creative", "vision").
TASKS: Final[tuple[str, ...]]

@final
class Analysis:
    """What one pass over a chat-completions body found, without Python touching text."""

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens as OpenAI bills them (``o200k_base``: messages, images, tools); exact
        unless ``prompt_tokens_exact`` is False, then an upper bound."""
    @property
    def prompt_tokens_exact(self) -> bool:
        """True when ``prompt_tokens`` is the exact ``o200k_base`` chat count (bodies up to
        256 KiB); False when it is the estimator's upper bound."""
    @property
    def prompt_chars(self) -> int: ...
    @property
    def message_count(self) -> int: ...
    @property
    def required_capabilities(self) -> int:
        """Bitmask of ``CAP_*`` the request needs (images → vision, tools, response_format …)."""
    @property
    def max_output_tokens(self) -> int | None:
        """``max_completion_tokens`` or else ``max_tokens``, when the request sets one."""
    @property
    def stream(self) -> bool: ...
    @property
    def task(self) -> int:
        """Index into ``TASKS`` of the prompt's task (chat, code, math, extraction,
        summarization, creative, vision), from cheap lexical features."""
    @property
    def difficulty(self) -> float:
        """Prompt difficulty in [0, 1] (length, reasoning markers, requirements, code/math)."""

_Encoding = Literal["o200k_base", "cl100k_base"]

# Exact encodings, as tiktoken names them.
ENCODINGS: Final[tuple[str, ...]]
# Model families known to the estimator ("gpt-4o", …, "claude", "gemini", …).
FAMILIES: Final[tuple[str, ...]]

def count_tokens(text: str, /, *, encoding: _Encoding) -> int:
    """Exact token count, equal to tiktoken's ``len(enc.encode(text, disallowed_special=()))``.

    The GIL is released for long texts. ``ValueError`` for an unknown encoding.
    """

def count_chat(
    messages_json: bytes, /, *, encoding: _Encoding, tools_json: bytes | None = None
) -> int:
    """Tokens OpenAI bills as ``prompt_tokens`` for a JSON array of chat messages (and tool
    definitions): 3 per message, +1 per ``name``, +3 reply priming, images by tiles."""

def estimate_tokens(text: str, /, *, family: str) -> int:
    """Upper bound of the tokens of ``text`` for a model family (see ``FAMILIES``)."""

def count_body_tokens(body: bytes, /, *, family: str) -> tuple[int, bool]:
    """Prompt tokens of a raw chat-completions body for a family: ``(tokens, exact)``."""

def token_ratio(family: str | None) -> float:
    """Assumed tokens of a model family per ``o200k_base`` token (case-insensitive name):
    1.0 for OpenAI families, an unknown family or ``None``."""

def vocabulary_gz(encoding: _Encoding, /) -> bytes:
    """The gzipped ``.tiktoken`` vocabulary compiled into the core."""

def json_depth_exceeds(body: bytes, /, *, limit: int = ...) -> bool:
    """Whether ``body`` nests arrays and objects more than ``limit`` (default
    ``MAX_JSON_DEPTH``) levels deep, by a byte scan that never recurses."""

def write_holding_gil(fd: int, data: bytes, /) -> int:
    """One ``write(2)`` of ``data`` to ``fd`` that keeps the GIL (retried on ``EINTR``); the
    bytes written, fewer on a short write; ``OSError`` with its ``errno`` on failure."""

def analyze(body: bytes, /) -> Analysis:
    """Analyse a raw chat-completions JSON body in one pass.

    Raises ``ValueError`` naming the byte position when the body is not valid JSON or not an
    object.
    """

@final
class CandidateTable:
    """Columnar table of deployments; built once from the catalog, shared by all requests.

    Every column has one entry per deployment (row). ``quality`` is shaped (rows, tasks).
    """

    def __new__(
        cls,
        *,
        model: npt.NDArray[np.int32],
        provider: npt.NDArray[np.int32],
        region: npt.NDArray[np.int32],
        price_input: npt.NDArray[np.float64],
        price_output: npt.NDArray[np.float64],
        price_cached: npt.NDArray[np.float64],
        context_window: npt.NDArray[np.int64],
        max_output: npt.NDArray[np.int64],
        capabilities: npt.NDArray[np.uint32],
        data_policy: npt.NDArray[np.uint8],
        key_source: npt.NDArray[np.uint8],
        ttft_ms: npt.NDArray[np.float64],
        throughput_tps: npt.NDArray[np.float64],
        success_rate: npt.NDArray[np.float64],
        circuit_open: npt.NDArray[np.bool_],
        quality: npt.NDArray[np.float64],
        token_ratio: npt.NDArray[np.float64] | None = None,
    ) -> Self:
        """Copy the columns in. Raises ``ValueError`` when lengths or shapes disagree, or when
        a ``token_ratio`` is not finite and at least 1.0.

        ``token_ratio`` (``None``: 1.0 for every row) is each row's model-family tokens per
        counted prompt token: the context window must hold
        ``ceil(prompt_tokens * token_ratio) + max_output_tokens``, and the cost feature prices
        ``prompt_tokens * token_ratio`` input tokens.
        """
    def __len__(self) -> int: ...
    @property
    def task_count(self) -> int: ...
    def update_health(
        self,
        row: int,
        /,
        *,
        ttft_ms: float,
        throughput_tps: float,
        success_rate: float,
        circuit_open: bool,
    ) -> None:
        """Replace one row's live health figures in place (``IndexError`` when out of range)."""
    def route(
        self,
        request: RouteRequest,
        /,
        *,
        prompt_tokens: int | None = None,
        max_output_tokens: int | None = None,
        expected_output_tokens: int | None = None,
        limit: int | None = None,
        explain: bool = False,
        quality_floor: float | None = None,
    ) -> RouteResult:
        """Enumerate, filter and score in one call (the GIL released for a large table).

        ``prompt_tokens``, ``max_output_tokens`` and ``expected_output_tokens``, when given,
        replace the request's values for this call only (so one request can be cached per
        query shape). With ``limit`` only the best ``limit`` viable rows are ranked: the same
        rows and scores as the first ``limit`` of the full ranking (``candidates_viable`` still
        counts every viable row). With ``explain=True`` the result's ``rejected_by`` says, for
        every row, which constraint (if any) removed it. ``quality_floor``, when given,
        replaces the request's floor for this call (``auto``'s floor follows each prompt).
        """

@final
class RouteRequest:
    """Constraints and weights for one routing decision (built per request by routing.py).

    Masks are indexed by id (model, provider or region number), not by row; ``None`` allows
    every id. ``weights`` is (cost, ttft, throughput, reliability, quality) and is normalised.
    """

    def __new__(
        cls,
        *,
        model_mask: npt.NDArray[np.bool_] | None = None,
        provider_mask: npt.NDArray[np.bool_] | None = None,
        region_mask: npt.NDArray[np.bool_] | None = None,
        required_capabilities: int = 0,
        prompt_tokens: int = 0,
        max_output_tokens: int = 0,
        expected_output_tokens: int = 256,
        min_data_policy: int = 0,
        key_source: int = 0,
        max_price_per_1m: float | None = None,
        max_ttft_ms: float | None = None,
        min_throughput_tps: float | None = None,
        min_success_rate: float | None = None,
        weights: tuple[float, float, float, float, float] = (0.35, 0.25, 0.1, 0.2, 0.1),
        task: int = 0,
        quality_floor: float | None = None,
        cheapest: bool = False,
    ) -> Self:
        """Raises ``ValueError`` for negative weights, all-zero weights or out-of-range values."""

@final
class RouteResult:
    """A ranked routing decision."""

    @property
    def ranked(self) -> npt.NDArray[np.int64]:
        """Viable rows, best first (the fallback order)."""
    @property
    def scores(self) -> npt.NDArray[np.float64]:
        """Score of each row in ``ranked`` (higher is better), same order."""
    @property
    def candidates_total(self) -> int:
        """Rows whose model passed ``model_mask`` (the enumeration step)."""
    @property
    def candidates_viable(self) -> int: ...
    @property
    def emptied_by(self) -> str | None:
        """When nothing is viable: the first constraint (in ``CONSTRAINT_NAMES`` order) that
        removed the last remaining candidate(s); ``None`` when something is viable."""
    @property
    def health_only(self) -> bool:
        """True when static constraints left candidates and only health/latency emptied them."""
    @property
    def rejected_by(self) -> npt.NDArray[np.int8] | None:
        """Only when routed with ``explain=True`` (else ``None``): one int8 per table row, -1
        when the row is viable, else the index in ``CONSTRAINT_NAMES`` of the first
        constraint the row fails."""

@final
class SseEvent:
    """One complete Server-Sent Event."""

    @property
    def event(self) -> str | None: ...
    @property
    def data(self) -> str: ...
    @property
    def id(self) -> str | None: ...
    @property
    def retry(self) -> int | None: ...

@final
class SseParser:
    """Incremental SSE parser (WHATWG rules): bytes in at any boundary, complete events out."""

    def __new__(cls) -> Self: ...
    def feed(self, data: bytes, /) -> list[SseEvent]: ...
    def finish(self) -> list[SseEvent]:
        """Flush at end of stream: a pending event without its blank line is dispatched."""

@final
class OpenAIStreamRelay:
    """Turns an upstream OpenAI-format SSE byte stream into the bytes to send the client.

    Each chunk is re-emitted as ``data: {json}\\n\\n`` with ``model`` set to the served model;
    the upstream's usage-only chunk (``choices: []``) and ``[DONE]`` are withheld so the
    gateway can append its own final chunk. Usage, ids and progress are kept for metering.

    The chunk JSON is the upstream's own bytes with only the ``model`` value replaced (key
    order, whitespace and escapes kept; line breaks of a multi-line ``data`` become spaces); a
    chunk without ``model`` gets it appended as its last member.

    A JSON object that breaks the ``chat.completion.chunk`` shape (``choices`` not an array,
    ``delta: null``, ``content: 5``, …) is counted in ``malformed`` and not forwarded.
    """

    def __new__(cls, *, model: str) -> Self: ...
    def feed(self, data: bytes, /) -> bytes:
        """Consume upstream bytes; return client bytes ready to send (possibly empty)."""
    def finish(self) -> bytes:
        """Flush a pending final event at end of stream; returns bytes to send."""
    @property
    def done(self) -> bool:
        """True once ``data: [DONE]`` was seen."""
    @property
    def halted(self) -> bool:
        """True once the stream ended, reported an error or sent an event that could not be
        used: nothing after it is forwarded."""
    @property
    def error(self) -> str | None:
        """JSON text of an upstream ``{"error": …}`` event, when one arrived (not forwarded)."""
    @property
    def chunk_id(self) -> str | None:
        """``id`` of the first chunk seen."""
    @property
    def created(self) -> int | None: ...
    @property
    def usage(self) -> tuple[int, int, int, int] | None:
        """(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) when reported."""
    @property
    def chunks(self) -> int:
        """Chunks forwarded so far."""
    @property
    def content_chars(self) -> int:
        """Characters of delta content (text, refusal, reasoning, tool arguments) forwarded."""
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def malformed(self) -> int:
        """Events whose data was not a JSON object or broke the chunk shape (the first halts
        the stream)."""
    @property
    def completion_truncated(self) -> bool:
        """True when the forwarded completion text passed 4 MiB and stopped being kept."""
    def completion_tokens(self, *, encoding: _Encoding | None) -> int:
        """Completion tokens of the forwarded text (delta content, refusal, reasoning, tool
        arguments), for a stream without upstream usage: exact with an ``encoding`` (text past
        the 4 MiB cap estimated), ``ceil(content_chars / 4)`` with ``None``."""

@final
class AnthropicStreamRelay:
    """Translates an upstream Anthropic Messages SSE byte stream into OpenAI chunk bytes.

    Same surface as ``OpenAIStreamRelay``: every output chunk is
    ``data: {chat.completion.chunk}\\n\\n`` with the given ``chunk_id``, ``created`` and ``model``.
    The first chunk carries ``delta.role``; text, thinking and tool-use blocks become
    ``content``, ``reasoning_content`` and ``tool_calls`` deltas (tool calls numbered from 0 in
    block order); ``stop_reason`` becomes ``finish_reason``. Usage is kept, not emitted, so the
    gateway appends its own final chunk; ``error`` events are kept, not forwarded.

    >>> relay = AnthropicStreamRelay(model="claude-x", chunk_id="chatcmpl-1", created=0)
    >>> out = relay.feed(b'event: message_stop\\ndata: {"type":"message_stop"}\\n\\n')
    >>> (out, relay.done)
    (b'', True)
    """

    def __new__(cls, *, model: str, chunk_id: str, created: int) -> Self: ...
    def feed(self, data: bytes, /) -> bytes:
        """Consume upstream bytes; return client bytes ready to send (possibly empty)."""
    def finish(self) -> bytes:
        """Flush a pending final event at end of stream; returns bytes to send."""
    @property
    def done(self) -> bool:
        """True once ``message_stop`` was seen."""
    @property
    def halted(self) -> bool:
        """True once the stream ended, reported an error or sent an event that could not be
        used: nothing after it is forwarded."""
    @property
    def error(self) -> str | None:
        """JSON text of an upstream ``error`` event, when one arrived (not forwarded)."""
    @property
    def chunk_id(self) -> str:
        """The ``id`` every chunk carries."""
    @property
    def created(self) -> int: ...
    @property
    def usage(self) -> tuple[int, int, int, int] | None:
        """(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) when reported;
        prompt = input + cache read + cache creation tokens, cached = cache read tokens."""
    @property
    def chunks(self) -> int:
        """Chunks sent so far."""
    @property
    def content_chars(self) -> int:
        """Characters of delta content (text, thinking, tool arguments) sent."""
    @property
    def finish_reason(self) -> str | None:
        """The OpenAI ``finish_reason`` mapped from ``stop_reason``."""
    @property
    def malformed(self) -> int:
        """Events that could not be understood (the first halts the stream)."""

@final
class GeminiStreamRelay:
    """Translates an upstream Gemini ``streamGenerateContent?alt=sse`` byte stream into OpenAI
    chunk bytes.

    Same surface as ``AnthropicStreamRelay``: every output chunk is
    ``data: {chat.completion.chunk}\\n\\n`` with the given ``chunk_id``, ``created`` and
    ``model``. Text parts become ``content`` deltas (``reasoning_content`` for thoughts), each
    ``functionCall`` one whole tool call (id ``call_<n>`` unless Gemini sent one);
    ``finishReason`` becomes ``finish_reason`` (``tool_calls`` when a tool was called). Usage
    comes from the last ``usageMetadata`` and is kept, not emitted; an ``error`` object is
    kept, not forwarded. Gemini sends no terminator: ``done`` becomes true in ``finish()``
    when a ``finishReason`` was seen.

    >>> relay = GeminiStreamRelay(model="gemini-x", chunk_id="chatcmpl-1", created=0)
    >>> out = relay.feed(b'data: {"candidates":[{"finishReason":"STOP"}]}\\r\\n\\r\\n')
    >>> (out.count(b"data: "), relay.finish_reason, relay.done)
    (2, 'stop', False)
    >>> (relay.finish(), relay.done)
    (b'', True)
    """

    def __new__(cls, *, model: str, chunk_id: str, created: int) -> Self: ...
    def feed(self, data: bytes, /) -> bytes:
        """Consume upstream bytes; return client bytes ready to send (possibly empty)."""
    def finish(self) -> bytes:
        """End of stream: flush a pending final event; sets ``done`` when a ``finishReason``
        was seen."""
    @property
    def done(self) -> bool:
        """True after ``finish()`` when the stream carried a ``finishReason`` and no error."""
    @property
    def halted(self) -> bool:
        """True once the stream ended, reported an error or sent an event that could not be
        used: nothing after it is forwarded."""
    @property
    def error(self) -> str | None:
        """JSON text of an upstream ``{"error": …}`` event, when one arrived (not forwarded)."""
    @property
    def chunk_id(self) -> str:
        """The ``id`` every chunk carries."""
    @property
    def created(self) -> int: ...
    @property
    def usage(self) -> tuple[int, int, int, int] | None:
        """(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) from the last
        ``usageMetadata``; completion = candidates + thoughts tokens, reasoning = thoughts."""
    @property
    def chunks(self) -> int:
        """Chunks sent so far."""
    @property
    def content_chars(self) -> int:
        """Characters of delta content (text, thoughts, tool arguments) sent."""
    @property
    def finish_reason(self) -> str | None:
        """The OpenAI ``finish_reason`` mapped from ``finishReason`` (set when seen)."""
    @property
    def malformed(self) -> int:
        """Events that could not be understood (the first halts the stream)."""

@final
class OpenAIToAnthropicRelay:
    """Translates the gateway's OpenAI-format stream into Anthropic Messages SSE bytes.

    Feed it what a chat-completions client would receive (chunks, the usage chunk,
    ``[DONE]`` or an ``error`` event); it returns ``event: …\\ndata: {…}\\n\\n`` bytes:
    ``message_start`` (with ``input_tokens``), one content block per run of text, thinking
    (``reasoning_content``) or tool call (arguments as ``input_json_delta``), then on ``[DONE]``
    ``message_delta`` (stop reason; usage from the usage chunk) and ``message_stop``. An error
    event is sent on as an Anthropic ``error`` event and input after it is ignored.

    >>> relay = OpenAIToAnthropicRelay(model="m", message_id="msg_1", input_tokens=3)
    >>> out = relay.feed(b"data: [DONE]\\n\\n")
    >>> out.count(b"event: "), relay.done
    (3, True)
    """

    def __new__(cls, *, model: str, message_id: str, input_tokens: int) -> Self: ...
    def feed(self, data: bytes, /) -> bytes:
        """Consume OpenAI-format bytes; return Anthropic SSE bytes ready to send."""
    def finish(self) -> bytes:
        """End of stream: flush, close an open content block, and when a finish reason was
        seen without ``[DONE]`` also send ``message_delta`` and ``message_stop``."""
    @property
    def done(self) -> bool:
        """True once ``message_stop`` was sent."""
    @property
    def error(self) -> str | None:
        """JSON text of the error event that ended the stream, when one arrived."""
    @property
    def usage(self) -> tuple[int, int, int, int] | None:
        """(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) from the usage
        chunk."""
    @property
    def stop_reason(self) -> str | None:
        """The Anthropic ``stop_reason`` for the finish reason seen so far."""
    @property
    def events(self) -> int:
        """Anthropic events sent so far."""
    @property
    def malformed(self) -> int:
        """Events that could not be understood (skipped, not fatal)."""

def delivered_answer(client_bytes: bytes, /) -> tuple[str, str | None]:
    """What the client has of a stream's answer, read from the client-bound chunk bytes sent so
    far: ``(text, obstacle)``, the concatenated ``delta.content`` and, when a prefill cannot
    continue the answer (a tool call or refusal was sent, or only reasoning), why not."""

@final
class StreamStitch:
    """Rewrites a continuation attempt's client chunks into the stream the client is reading.

    Every chunk gets ``chunk_id`` and ``created`` (the first attempt's), ``delta.role`` is
    dropped (the client has it), ``reasoning_content`` too when ``drop_reasoning`` (answer
    text was already delivered), and content that repeats ``skip`` (a prefill the provider
    echoes, or whitespace held back from it) is removed until the text differs; chunks left
    with nothing to say are dropped.
    """

    def __new__(cls, *, chunk_id: str, created: int, skip: str, drop_reasoning: bool) -> Self: ...
    def feed(self, data: bytes, /) -> bytes:
        """Consume a relay's client bytes; return the stitched bytes (possibly empty)."""
    @property
    def pending_skip(self) -> str:
        """Text still expected (and to be skipped) at the start of the continuation."""
