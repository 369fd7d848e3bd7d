//! `analyze()` and its frozen result class.

use pyo3::prelude::*;

use crate::Analysis;

/// What one pass over a chat-completions body found, without Python touching text.
#[pyclass(frozen, name = "Analysis", module = "gateway._router_core")]
pub struct PyAnalysis(Analysis);

#[pymethods]
impl PyAnalysis {
    /// Prompt tokens as OpenAI bills them (``o200k_base``: messages, images, tools); exact
    /// unless ``prompt_tokens_exact`` is False, then an upper bound.
    #[getter]
    fn prompt_tokens(&self) -> u64 {
        self.0.prompt_tokens
    }
    /// True when ``prompt_tokens`` is the exact ``o200k_base`` chat count (bodies up to
    /// 256 KiB); False when it is the estimator's upper bound.
    #[getter]
    fn prompt_tokens_exact(&self) -> bool {
        self.0.prompt_tokens_exact
    }
    #[getter]
    fn prompt_chars(&self) -> u64 {
        self.0.prompt_chars
    }
    #[getter]
    fn message_count(&self) -> u64 {
        self.0.message_count
    }
    /// Bitmask of ``CAP_*`` the request needs (images → vision, tools, response_format …).
    #[getter]
    fn required_capabilities(&self) -> u32 {
        self.0.required_capabilities
    }
    /// ``max_completion_tokens`` or else ``max_tokens``, when the request sets one.
    #[getter]
    fn max_output_tokens(&self) -> Option<u64> {
        self.0.max_output_tokens
    }
    #[getter]
    fn stream(&self) -> bool {
        self.0.stream
    }
    /// Index into ``TASKS`` of the prompt's task (chat, code, math, extraction,
    /// summarization, creative, vision), from cheap lexical features.
    #[getter]
    fn task(&self) -> usize {
        self.0.task
    }
    /// Prompt difficulty in [0, 1] (length, reasoning markers, requirements, code/math).
    #[getter]
    fn difficulty(&self) -> f64 {
        self.0.difficulty
    }
    fn __repr__(&self) -> String {
        let a = &self.0;
        format!(
            "Analysis(prompt_tokens={}, prompt_chars={}, message_count={}, \
             required_capabilities={}, max_output_tokens={}, stream={}, task={}, \
             difficulty={:.3})",
            a.prompt_tokens,
            a.prompt_chars,
            a.message_count,
            a.required_capabilities,
            a.max_output_tokens
                .map_or_else(|| "None".to_owned(), |n| n.to_string()),
            if a.stream { "True" } else { "False" },
            a.task,
            a.difficulty,
        )
    }
}

/// Analyse a raw chat-completions JSON body in one pass.
///
/// Raises ``ValueError`` naming the byte position when the body is not valid JSON or not an
/// object.
///
/// >>> analyze(b'{"messages": [{"role": "user", "content": "hi"}]}').message_count
/// 1
#[pyfunction]
#[pyo3(signature = (body, /))]
pub fn analyze(py: Python<'_>, body: &[u8]) -> PyResult<PyAnalysis> {
    let analysis = if body.len() > 64 * 1024 {
        py.detach(|| crate::analyze(body))
    } else {
        crate::analyze(body)
    }?;
    Ok(PyAnalysis(analysis))
}

/// Whether ``body`` nests arrays and objects more than ``limit`` levels deep (``[`` and
/// ``{`` outside strings; the top-level object is level 1). A byte scan that never
/// recurses, so it is safe on any input; malformed JSON is left to the decoder.
///
/// >>> json_depth_exceeds(b'{"a": [[1]]}', limit=2)
/// True
#[pyfunction]
#[pyo3(signature = (body, /, *, limit = crate::MAX_JSON_DEPTH))]
pub fn json_depth_exceeds(py: Python<'_>, body: &[u8], limit: usize) -> bool {
    if body.len() > 64 * 1024 {
        py.detach(|| crate::json_depth_exceeds(body, limit))
    } else {
        crate::json_depth_exceeds(body, limit)
    }
}
