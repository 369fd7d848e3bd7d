//! `delivered_answer` and `StreamStitch`: continuing a broken stream (see `crate::stitch`).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::stitch::{delivered, Stitch};

/// What the client has of a stream's answer, read from the client-bound chunk bytes sent so
/// far: ``(text, obstacle)``, the concatenated ``delta.content`` and, when a prefill cannot
/// continue the answer (a tool call or refusal was sent, or only reasoning), why not.
#[pyfunction]
#[pyo3(signature = (client_bytes, /))]
pub fn delivered_answer(py: Python<'_>, client_bytes: &[u8]) -> (String, Option<&'static str>) {
    let d = py.detach(|| delivered(client_bytes));
    (d.text, d.obstacle)
}

/// Rewrites a continuation attempt's client chunks into the stream the client is reading.
///
/// Every chunk gets ``chunk_id`` and ``created`` (the first attempt's), ``delta.role`` is
/// dropped (the client has it), ``reasoning_content`` too when ``drop_reasoning`` (answer
/// text was already delivered), and content that repeats ``skip`` (a prefill the provider
/// echoes, or whitespace held back from it) is removed until the text differs; chunks left
/// with nothing to say are dropped.
#[pyclass(name = "StreamStitch", module = "gateway._router_core")]
pub struct PyStreamStitch {
    stitch: Stitch,
    out: Vec<u8>,
}

#[pymethods]
impl PyStreamStitch {
    #[new]
    #[pyo3(signature = (*, chunk_id, created, skip, drop_reasoning))]
    fn new(chunk_id: &str, created: i64, skip: &str, drop_reasoning: bool) -> Self {
        Self {
            stitch: Stitch::new(chunk_id, created, skip, drop_reasoning),
            out: Vec::new(),
        }
    }

    /// Consume a relay's client bytes; return the stitched bytes (possibly empty).
    #[pyo3(signature = (data, /))]
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
        self.out.clear();
        self.stitch.feed(data, &mut self.out);
        PyBytes::new(py, &self.out)
    }

    /// Text still expected (and to be skipped) at the start of the continuation.
    #[getter]
    fn pending_skip(&self) -> &str {
        self.stitch.pending_skip()
    }
}
