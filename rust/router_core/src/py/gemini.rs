//! `GeminiStreamRelay`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::GeminiStreamRelay;

/// Reads at least this large are translated with the GIL released.
const DETACH_BYTES: usize = 64 * 1024;

/// Translates an upstream Gemini ``streamGenerateContent?alt=sse`` byte stream into OpenAI
/// chunk bytes.
///
/// Same surface as ``AnthropicStreamRelay``: every output chunk is
/// ``data: {chat.completion.chunk}\n\n`` with the given ``chunk_id``, ``created`` and
/// ``model``; usage (from the last ``usageMetadata``) is kept, not emitted; an ``error``
/// object is kept (``error``), not forwarded. Gemini sends no terminator, so ``done``
/// becomes true in ``finish()`` when a ``finishReason`` was seen.
///
/// >>> relay = GeminiStreamRelay(model="gemini-x", chunk_id="chatcmpl-1", created=0)
/// >>> out = relay.feed(b'data: {"candidates":[{"finishReason":"STOP"}]}\r\n\r\n')
/// >>> (out.count(b"data: "), relay.finish_reason, relay.done)
/// (2, 'stop', False)
/// >>> (relay.finish(), relay.done)
/// (b'', True)
#[pyclass(name = "GeminiStreamRelay", module = "gateway._router_core")]
pub struct PyGeminiStreamRelay {
    relay: GeminiStreamRelay,
    /// Reused output buffer: one allocation for the life of the stream.
    out: Vec<u8>,
}

#[pymethods]
impl PyGeminiStreamRelay {
    #[new]
    #[pyo3(signature = (*, model, chunk_id, created))]
    fn new(model: &str, chunk_id: &str, created: i64) -> Self {
        Self {
            relay: GeminiStreamRelay::new(model, chunk_id, created),
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

    /// End of stream: flush a pending final event; sets ``done`` when a ``finishReason``
    /// was seen. Returns bytes to send.
    fn finish<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.out.clear();
        self.relay.finish(&mut self.out);
        PyBytes::new(py, &self.out)
    }

    /// True after ``finish()`` when the stream carried a ``finishReason`` and no error.
    #[getter]
    fn done(&self) -> bool {
        self.relay.state().done
    }
    /// JSON text of an upstream ``{"error": …}`` event, when one arrived (not forwarded).
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
    /// (prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) from the last
    /// ``usageMetadata``; completion = candidates + thoughts tokens, reasoning = thoughts.
    #[getter]
    fn usage(&self) -> Option<(u64, u64, u64, u64)> {
        self.relay.state().usage.map(|u| {
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.cached_tokens,
                u.reasoning_tokens,
            )
        })
    }
    /// Chunks sent so far.
    #[getter]
    fn chunks(&self) -> u64 {
        self.relay.state().chunks
    }
    /// Characters of delta content (text, thoughts, tool arguments) sent.
    #[getter]
    fn content_chars(&self) -> u64 {
        self.relay.state().content_chars
    }
    /// The OpenAI ``finish_reason`` mapped from ``finishReason`` (set as soon as it is seen).
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
