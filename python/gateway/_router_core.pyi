"""Type stubs for Routegate's native core (``rust/router_core``, built by maturin).

The core does per-request computation only: request analysis, candidate filtering and
scoring, SSE framing and stream relaying. It never does I/O and holds no configured policy.
"""

from typing import Final, final

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
    "KEY_SOURCE_ANY",
    "KEY_SOURCE_BYOK",
    "KEY_SOURCE_PLATFORM",
    "TASKS",
    "Analysis",
    "CandidateTable",
    "OpenAIStreamRelay",
    "RouteRequest",
    "RouteResult",
    "SseEvent",
    "SseParser",
    "__version__",
    "analyze",
]

__version__: Final[str]

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
        """Upper-bound estimate of the prompt's tokens (all message text, tools, overhead)."""
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
    ) -> Self:
        """Copy the columns in. Raises ``ValueError`` when lengths or shapes disagree."""
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
    def route(self, request: RouteRequest, /, *, explain: bool = False) -> RouteResult:
        """Enumerate, filter and score in one call with the GIL released.

        With ``explain=True`` the result's ``rejected_by`` says, for every row, which
        constraint (if any) removed it.
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
        """Events whose data was not a JSON object (skipped, not fatal)."""
