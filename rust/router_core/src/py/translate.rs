//! `AnthropicStreamRelay` and `OpenAIToAnthropicRelay`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::relay::Usage;
use crate::{AnthropicStreamRelay, OpenAIToAnthropicRelay};

/// Reads at least this large are translated with the GIL released.
const DETACH_BYTES: usize = 64 * 1024;

fn usage_tuple(usage: Option<Usage>) -> Option<(u64, u64, u64, u64)> {
    usage.map(|u| {
        (
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens,
            u.reasoning_tokens,
        )
    })
}

/// Translates an upstream Anthropic Messages SSE byte stream into OpenAI chunk bytes.
///
/// Same surface as ``OpenAIStreamRelay``: every output chunk is
/// ``data: {chat.completion.chunk}\n\n`` with the given ``chunk_id``, ``created`` and
/// ``model``; usage is kept (``usage``), not emitted, so the gateway can append its own final
/// chunk; ``error`` events are kept (``error``), not forwarded.
///
/// >>> relay = AnthropicStreamRelay(model="claude-x", chunk_id="chatcmpl-1", created=0)
/// >>> out = relay.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
/// >>> (out, relay.done)
/// (b'', True)
#[pyclass(name = "AnthropicStreamRelay", module = "gateway._router_core")]
pub struct PyAnthropicStreamRelay {
    relay: AnthropicStreamRelay,
    /// Reused output buffer: one allocation for the life of the stream.
    out: Vec<u8>,
}

#[pymethods]
impl PyAnthropicStreamRelay {
    #[new]
    #[pyo3(signature = (*, model, chunk_id, created))]
    fn new(model: &str, chunk_id: &str, created: i64) -> Self {
        Self {
            relay: AnthropicStreamRelay::new(model, chunk_id, created),
            out: Vec::new(),
        }
    }

    /// Consume upstream bytes; return client bytes ready to send (possibly empty).
    #[pyo3(signature = (data, /))]
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
        self.out.clear();
        let Self { relay, out } = self;
        if data.len() >= DETACH_BYTES {
            py.detach(|| relay.feed(data, out));
        } else {
            relay.feed(data, out);
        }
        PyBytes::new(py, &self.out)
    }

    /// Flush a pending final event at end of stream; returns bytes to send.
    fn finish<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.out.clear();
        self.relay.finish(&mut self.out);
        PyBytes::new(py, &self.out)
    }

    /// True once ``message_stop`` was seen.
    #[getter]
    fn done(&self) -> bool {
        self.relay.state().done
    }
    /// JSON text of an upstream ``error`` event, when one arrived (not forwarded).
    #[getter]
    fn error(&self) -> Option<&str> {
        self.relay.state().error.as_deref()
    }
    /// The ``id`` every chunk carries.
    #[getter]
    fn chunk_id(&self) -> &str {
        self.relay.state().chunk_id.as_deref().unwrap_or_default()
    }
    /// The ``created`` every chunk carries.
    #[getter]
    fn created(&self) -> i64 {
        self.relay.state().created.unwrap_or_default()
    }
    /// (prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) when reported;
    /// prompt = input + cache read + cache creation tokens, cached = cache read tokens.
    #[getter]
    fn usage(&self) -> Option<(u64, u64, u64, u64)> {
        usage_tuple(self.relay.state().usage)
    }
    /// Chunks sent so far.
    #[getter]
    fn chunks(&self) -> u64 {
        self.relay.state().chunks
    }
    /// Characters of delta content (text, thinking, tool arguments) sent.
    #[getter]
    fn content_chars(&self) -> u64 {
        self.relay.state().content_chars
    }
    /// The OpenAI ``finish_reason`` mapped from ``stop_reason``.
    #[getter]
    fn finish_reason(&self) -> Option<&str> {
        self.relay.state().finish_reason.as_deref()
    }
    /// True once the stream ended, reported an error or sent an event that could not be
    /// used: nothing after it is forwarded.
    #[getter]
    fn halted(&self) -> bool {
        self.relay.state().halted()
    }
    /// Events that could not be understood (the first one halts the stream).
    #[getter]
    fn malformed(&self) -> u64 {
        self.relay.state().malformed
    }
}

/// Translates the gateway's OpenAI-format stream into Anthropic Messages SSE bytes.
///
/// Feed it what a chat-completions client would receive (chunks, the usage chunk,
/// ``[DONE]`` or an ``error`` event); it returns ``event: …\ndata: {…}\n\n`` bytes:
/// ``message_start`` (with ``input_tokens``), content blocks for text, thinking and tool
/// calls, ``message_delta`` (stop reason, usage) and ``message_stop`` when ``[DONE]`` arrives.
/// An error event is sent on as an Anthropic ``error`` event, and input after it is ignored.
///
/// >>> relay = OpenAIToAnthropicRelay(model="m", message_id="msg_1", input_tokens=3)
/// >>> out = relay.feed(b"data: [DONE]\n\n")
/// >>> out.count(b"event: "), relay.done
/// (3, True)
#[pyclass(name = "OpenAIToAnthropicRelay", module = "gateway._router_core")]
pub struct PyOpenAIToAnthropicRelay {
    relay: OpenAIToAnthropicRelay,
    out: Vec<u8>,
}

#[pymethods]
impl PyOpenAIToAnthropicRelay {
    #[new]
    #[pyo3(signature = (*, model, message_id, input_tokens))]
    fn new(model: &str, message_id: &str, input_tokens: u64) -> Self {
        Self {
            relay: OpenAIToAnthropicRelay::new(model, message_id, input_tokens),
            out: Vec::new(),
        }
    }

    /// Consume OpenAI-format bytes; return Anthropic SSE bytes ready to send.
    #[pyo3(signature = (data, /))]
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
        self.out.clear();
        let Self { relay, out } = self;
        if data.len() >= DETACH_BYTES {
            py.detach(|| relay.feed(data, out));
        } else {
            relay.feed(data, out);
        }
        PyBytes::new(py, &self.out)
    }

    /// End of stream: flush, close an open content block, and when a finish reason was
    /// seen without ``[DONE]`` also send ``message_delta`` and ``message_stop``.
    fn finish<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.out.clear();
        self.relay.finish(&mut self.out);
        PyBytes::new(py, &self.out)
    }

    /// True once ``message_stop`` was sent.
    #[getter]
    fn done(&self) -> bool {
        self.relay.state().done
    }
    /// JSON text of the error event that ended the stream, when one arrived.
    #[getter]
    fn error(&self) -> Option<&str> {
        self.relay.state().error.as_deref()
    }
    /// (prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) from the usage chunk.
    #[getter]
    fn usage(&self) -> Option<(u64, u64, u64, u64)> {
        usage_tuple(self.relay.state().usage)
    }
    /// The Anthropic ``stop_reason`` for the finish reason seen so far.
    #[getter]
    fn stop_reason(&self) -> Option<&'static str> {
        self.relay.state().stop_reason()
    }
    /// Anthropic events sent so far.
    #[getter]
    fn events(&self) -> u64 {
        self.relay.state().events
    }
    /// Events that could not be understood (skipped, not fatal).
    #[getter]
    fn malformed(&self) -> u64 {
        self.relay.state().malformed
    }
}
