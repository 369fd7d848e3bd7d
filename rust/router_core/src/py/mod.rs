//! Python bindings: every `#[pyclass]`, `#[pyfunction]` and the module itself.
//!
//! Thin wrappers only: conversion of arguments, GIL release around data loops, and mapping of
//! [`crate::CoreError`] to Python exceptions. Semantics live in the plain-Rust modules.

// Doc comments here become Python docstrings, written in reST (``name``), not Markdown.
#![allow(clippy::doc_markdown)]

mod analyze;
mod arrays;
mod errors;
mod fileio;
mod gemini;
mod route;
mod sse;
mod stitch;
mod tokens;
mod translate;

use pyo3::prelude::*;

/// Routegate's native core: request analysis, candidate filtering and scoring, SSE relaying.
#[pymodule(gil_used = false, name = "_router_core")]
mod router_core_module {
    use pyo3::prelude::*;
    use pyo3::types::PyTuple;

    #[pymodule_export]
    use super::analyze::{analyze, json_depth_exceeds, PyAnalysis};
    #[pymodule_export]
    use super::fileio::write_holding_gil;
    #[pymodule_export]
    use super::gemini::PyGeminiStreamRelay;
    #[pymodule_export]
    use super::route::{PyCandidateTable, PyRouteRequest, PyRouteResult};
    #[pymodule_export]
    use super::sse::{PyOpenAIStreamRelay, PySseEvent, PySseParser};
    #[pymodule_export]
    use super::stitch::{delivered_answer, PyStreamStitch};
    #[pymodule_export]
    use super::tokens::{
        count_body_tokens, count_chat, count_tokens, estimate_tokens, token_ratio, vocabulary_gz,
    };
    #[pymodule_export]
    use super::translate::{PyAnthropicStreamRelay, PyOpenAIToAnthropicRelay};

    #[pymodule_export]
    const MAX_JSON_DEPTH: usize = crate::MAX_JSON_DEPTH;
    #[pymodule_export]
    const CAP_TOOLS: u32 = crate::CAP_TOOLS;
    #[pymodule_export]
    const CAP_VISION: u32 = crate::CAP_VISION;
    #[pymodule_export]
    const CAP_JSON_OBJECT: u32 = crate::CAP_JSON_OBJECT;
    #[pymodule_export]
    const CAP_JSON_SCHEMA: u32 = crate::CAP_JSON_SCHEMA;
    #[pymodule_export]
    const CAP_AUDIO: u32 = crate::CAP_AUDIO;
    #[pymodule_export]
    const CAP_REASONING: u32 = crate::CAP_REASONING;
    #[pymodule_export]
    const CAP_EMBEDDINGS: u32 = crate::CAP_EMBEDDINGS;
    #[pymodule_export]
    const KEY_SOURCE_ANY: u8 = crate::KEY_SOURCE_ANY;
    #[pymodule_export]
    const KEY_SOURCE_PLATFORM: u8 = crate::KEY_SOURCE_PLATFORM;
    #[pymodule_export]
    const KEY_SOURCE_BYOK: u8 = crate::KEY_SOURCE_BYOK;
    #[pymodule_export]
    const DATA_POLICY_NONE: u8 = crate::DATA_POLICY_NONE;
    #[pymodule_export]
    const DATA_POLICY_NO_TRAINING: u8 = crate::DATA_POLICY_NO_TRAINING;
    #[pymodule_export]
    const DATA_POLICY_ZDR: u8 = crate::DATA_POLICY_ZDR;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add(
            "CONSTRAINT_NAMES",
            PyTuple::new(m.py(), crate::CONSTRAINT_NAMES)?,
        )?;
        m.add("TASKS", PyTuple::new(m.py(), crate::TASKS)?)?;
        m.add("ENCODINGS", PyTuple::new(m.py(), crate::Encoding::NAMES)?)?;
        m.add("FAMILIES", PyTuple::new(m.py(), crate::Family::NAMES)?)?;
        Ok(())
    }
}
