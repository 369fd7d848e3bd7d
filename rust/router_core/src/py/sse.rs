//! `SseEvent`, `SseParser` and `OpenAIStreamRelay`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{Encoding, SseEvent, SseParser, StreamRelay};

/// Completion text longer than this is counted with the GIL released.
const DETACH_BYTES: usize = 16 * 1024;

/// One complete Server-Sent Event.
#[pyclass(frozen, eq, name = "SseEvent", module = "gateway._router_core")]
#[derive(PartialEq)]
pub struct PySseEvent(SseEvent);

#[pymethods]
impl PySseEvent {
    /// The ``event:`` field, ``None`` for the default (``message``) type.
    #[getter]
    fn event(&self) -> Option<&str> {
        self.0.event.as_deref()
    }
    /// The ``data:`` lines joined with ``\n``.
    #[getter]
    fn data(&self) -> &str {
        &self.0.data
    }
    /// The stream's last event ID at this event (it persists across events).
    #[getter]
    fn id(&self) -> Option<&str> {
        self.0.id.as_deref()
    }
    /// The ``retry:`` field of this event, in milliseconds.
    #[getter]
    fn retry(&self) -> Option<u64> {
        self.0.retry
    }
    fn __repr__(&self) -> String {
        format!(
            "SseEvent(event={:?}, data={:?}, id={:?}, retry={:?})",
            self.0.event, self.0.data, self.0.id, self.0.retry
        )
    }
}

fn wrap(events: Vec<SseEvent>) -> Vec<PySseEvent> {
    events.into_iter().map(PySseEvent).collect()
}

/// Incremental SSE parser (WHATWG rules): bytes in at any boundary, complete events out.
#[pyclass(name = "SseParser", module = "gateway._router_core")]
#[derive(Default)]
pub struct PySseParser(SseParser);

#[pymethods]
impl PySseParser {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Consume one read; returns the events it completed.
    #[pyo3(signature = (data, /))]
    fn feed(&mut self, data: &[u8]) -> Vec<PySseEvent> {
        wrap(self.0.feed(data))
    }

    /// Flush at end of stream: a pending event without its blank line is dispatched.
    fn finish(&mut self) -> Vec<PySseEvent> {
        wrap(self.0.finish())
    }
}

/// Turns an upstream OpenAI-format SSE byte stream into the bytes to send the client.
///
/// Each chunk is re-emitted as ``data: {json}\n\n`` with ``model`` set to the served model;
/// the upstream's usage-only chunk (``choices: []``) and ``[DONE]`` are withheld so the
/// gateway can append its own final chunk. Usage, ids and progress are kept for metering.
///
/// The chunk JSON is the upstream's own bytes with only the ``model`` value replaced (key
/// order, whitespace and escapes kept; line breaks of a multi-line ``data`` become spaces); a
/// chunk without ``model`` gets it appended as its last member.
///
/// A JSON object that breaks the ``chat.completion.chunk`` shape (``choices`` not an array,
/// ``delta: null``, ``content: 5``, …) is counted in ``malformed`` and not forwarded.
#[pyclass(name = "OpenAIStreamRelay", module = "gateway._router_core")]
pub struct PyOpenAIStreamRelay {
    relay: StreamRelay,
    /// Reused output buffer: one allocation for the life of the stream.
    out: Vec<u8>,
}

#[pymethods]
impl PyOpenAIStreamRelay {
    #[new]
    #[pyo3(signature = (*, model))]
    fn new(model: &str) -> Self {
        Self {
            relay: StreamRelay::new(model),
            out: Vec::new(),
        }
    }

    /// Consume upstream bytes; return client bytes ready to send (possibly empty).
    #[pyo3(signature = (data, /))]
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
        self.out.clear();
        self.relay.feed(data, &mut self.out);
        PyBytes::new(py, &self.out)
    }

    /// Flush a pending final event at end of stream; returns bytes to send.
    fn finish<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.out.clear();
        self.relay.finish(&mut self.out);
        PyBytes::new(py, &self.out)
    }

    /// True once ``data: [DONE]`` was seen.
    #[getter]
    fn done(&self) -> bool {
        self.relay.state().done
    }
    /// JSON text of an upstream ``{"error": …}`` event, when one arrived (not forwarded).
    #[getter]
    fn error(&self) -> Option<&str> {
        self.relay.state().error.as_deref()
    }
    /// ``id`` of the first chunk seen.
    #[getter]
    fn chunk_id(&self) -> Option<&str> {
        self.relay.state().chunk_id.as_deref()
    }
    #[getter]
    fn created(&self) -> Option<i64> {
        self.relay.state().created
    }
    /// (prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens) when reported.
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
    /// Chunks forwarded so far.
    #[getter]
    fn chunks(&self) -> u64 {
        self.relay.state().chunks
    }
    /// Characters of delta content (text, refusal, reasoning, tool arguments) forwarded.
    #[getter]
    fn content_chars(&self) -> u64 {
        self.relay.state().content_chars
    }
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
    /// Events whose data was not a JSON object or broke the chunk shape (the first one halts the stream).
    #[getter]
    fn malformed(&self) -> u64 {
        self.relay.state().malformed
    }
    /// True when the forwarded completion text passed 4 MiB and stopped being kept.
    #[getter]
    fn completion_truncated(&self) -> bool {
        self.relay.state().completion_truncated
    }

    /// Completion tokens of the forwarded text (delta content, refusal, reasoning, tool
    /// arguments), for a stream without upstream usage. With an ``encoding``: the exact count
    /// (text past the 4 MiB cap estimated); with ``None``: ``ceil(content_chars / 4)``.
    #[pyo3(signature = (*, encoding))]
    fn completion_tokens(&self, py: Python<'_>, encoding: Option<&str>) -> PyResult<u64> {
        let encoding = encoding
            .map(|name| {
                Encoding::from_name(name).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "unknown encoding {name:?}; expected one of {:?}",
                        Encoding::NAMES
                    ))
                })
            })
            .transpose()?;
        Ok(
            if encoding.is_some() && self.relay.state().completion_text.len() > DETACH_BYTES {
                py.detach(|| self.relay.completion_tokens(encoding))
            } else {
                self.relay.completion_tokens(encoding)
            },
        )
    }
}
