//! `CandidateTable`, `RouteRequest` and `RouteResult`.

use std::sync::{PoisonError, RwLock};

use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::arrays::{column, mask, matrix};
use crate::route::{route_with, RouteOptions};
use crate::{
    CandidateTable, Columns, Constraints, CoreError, Health, RouteRequest, RouteResult, Weights,
};

/// Columnar table of deployments; built once from the catalog, shared by all requests.
///
/// Every column has one entry per deployment (row). ``quality`` is shaped (rows, tasks).
/// ``token_ratio`` (optional, 1.0 everywhere when ``None``) is each row's model-family tokens
/// per counted prompt token: the context-window constraint needs
/// ``ceil(prompt_tokens * token_ratio) + max_output_tokens`` and the cost feature uses
/// ``prompt_tokens * token_ratio`` at the input price.
/// Routing takes a read lock, ``update_health`` a short write lock. Both keep the GIL when the
/// lock is free and the work short (a table of up to ``INLINE_ROWS`` rows): releasing it for a
/// few microseconds lets another Python thread take it, and the event loop then waits for that
/// thread instead. Neither ever takes the GIL while holding the lock, so waiting is safe.
#[pyclass(frozen, name = "CandidateTable", module = "gateway._router_core")]
pub struct PyCandidateTable(RwLock<CandidateTable>);

/// Above this many rows a route call releases the GIL while it scores.
const INLINE_ROWS: usize = 2048;

impl PyCandidateTable {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, CandidateTable> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl PyCandidateTable {
    /// Copy the columns in. Raises ``ValueError`` when lengths, shapes or dtypes disagree, or
    /// when a ``token_ratio`` is not finite and at least 1.0.
    #[new]
    #[pyo3(signature = (
        *, model, provider, region, price_input, price_output, price_cached, context_window,
        max_output, capabilities, data_policy, key_source, ttft_ms, throughput_tps,
        success_rate, circuit_open, quality, token_ratio = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        model: &Bound<'_, PyAny>,
        provider: &Bound<'_, PyAny>,
        region: &Bound<'_, PyAny>,
        price_input: &Bound<'_, PyAny>,
        price_output: &Bound<'_, PyAny>,
        price_cached: &Bound<'_, PyAny>,
        context_window: &Bound<'_, PyAny>,
        max_output: &Bound<'_, PyAny>,
        capabilities: &Bound<'_, PyAny>,
        data_policy: &Bound<'_, PyAny>,
        key_source: &Bound<'_, PyAny>,
        ttft_ms: &Bound<'_, PyAny>,
        throughput_tps: &Bound<'_, PyAny>,
        success_rate: &Bound<'_, PyAny>,
        circuit_open: &Bound<'_, PyAny>,
        quality: &Bound<'_, PyAny>,
        token_ratio: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let (quality, quality_rows, task_count) = matrix::<f64>(quality, "quality")?;
        let columns = Columns {
            model: column(model, "model")?,
            provider: column(provider, "provider")?,
            region: column(region, "region")?,
            price_input: column(price_input, "price_input")?,
            price_output: column(price_output, "price_output")?,
            price_cached: column(price_cached, "price_cached")?,
            context_window: column(context_window, "context_window")?,
            max_output: column(max_output, "max_output")?,
            capabilities: column(capabilities, "capabilities")?,
            data_policy: column(data_policy, "data_policy")?,
            key_source: column(key_source, "key_source")?,
            ttft_ms: column(ttft_ms, "ttft_ms")?,
            throughput_tps: column(throughput_tps, "throughput_tps")?,
            success_rate: column(success_rate, "success_rate")?,
            circuit_open: column(circuit_open, "circuit_open")?,
            quality,
            task_count,
            // Empty: 1.0 for every row.
            token_ratio: match token_ratio.filter(|r| !r.is_none()) {
                Some(ratio) => column(ratio, "token_ratio")?,
                None => Vec::new(),
            },
        };
        if quality_rows != columns.model.len() {
            return Err(CoreError::ColumnMismatch {
                column: "quality",
                expected: format!("shape ({}, tasks)", columns.model.len()),
                found: format!("shape ({quality_rows}, {task_count})"),
            }
            .into());
        }
        Ok(Self(RwLock::new(CandidateTable::new(columns)?)))
    }

    fn __len__(&self) -> usize {
        self.read().len()
    }

    #[getter]
    fn task_count(&self) -> usize {
        self.read().task_count()
    }

    /// Replace one row's live health figures in place (``IndexError`` when out of range).
    #[pyo3(signature = (row, /, *, ttft_ms, throughput_tps, success_rate, circuit_open))]
    fn update_health(
        &self,
        py: Python<'_>,
        row: i64,
        ttft_ms: f64,
        throughput_tps: f64,
        success_rate: f64,
        circuit_open: bool,
    ) -> PyResult<()> {
        let health = Health {
            ttft_ms,
            throughput_tps,
            success_rate,
            circuit_open,
        };
        if let Ok(mut table) = self.0.try_write() {
            return Ok(table.update_health(row, health)?);
        }
        // Waiting for routers to finish must not hold the GIL they may need afterwards.
        py.detach(|| {
            let mut table = self.0.write().unwrap_or_else(PoisonError::into_inner);
            table.update_health(row, health)
        })?;
        Ok(())
    }

    /// Enumerate, filter and score in one call (the GIL released for a large table).
    ///
    /// ``prompt_tokens``, ``max_output_tokens`` and ``expected_output_tokens``, when given,
    /// replace the request's values for this call only (so one request can be cached per
    /// query shape). With ``limit`` only the best ``limit`` viable rows are ranked: the same
    /// rows and scores as the first ``limit`` of the full ranking (``candidates_viable`` still
    /// counts every viable row). With ``explain=True`` the result's ``rejected_by`` says, for
    /// every row, which constraint (if any) removed it. ``quality_floor``, when given,
    /// replaces the request's floor for this call (``auto``'s floor follows each prompt).
    #[pyo3(signature = (
        request, /, *, prompt_tokens = None, max_output_tokens = None,
        expected_output_tokens = None, limit = None, explain = false, quality_floor = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn route(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyRouteRequest>,
        prompt_tokens: Option<i64>,
        max_output_tokens: Option<i64>,
        expected_output_tokens: Option<i64>,
        limit: Option<i64>,
        explain: bool,
        quality_floor: Option<f64>,
    ) -> PyResult<PyRouteResult> {
        let optional =
            |value: Option<i64>, name: &str| value.map(|v| non_negative(v, name)).transpose();
        let options = RouteOptions {
            prompt_tokens: optional(prompt_tokens, "prompt_tokens")?,
            max_output_tokens: optional(max_output_tokens, "max_output_tokens")?,
            expected_output_tokens: optional(expected_output_tokens, "expected_output_tokens")?,
            limit: optional(limit, "limit")?.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            explain,
            quality_floor,
        };
        let request = &request.get().0;
        let inline = match self.0.try_read() {
            Ok(table) if table.len() <= INLINE_ROWS => Some(route_with(&table, request, &options)),
            _ => None,
        };
        let result = match inline {
            Some(result) => result,
            None => py.detach(|| route_with(&self.read(), request, &options)),
        }?;
        Ok(PyRouteResult(result))
    }
}

/// Constraints and weights for one routing decision (built per request by routing.py).
///
/// Masks are indexed by id (model, provider or region number), not by row; ``None`` allows
/// every id. ``weights`` is (cost, ttft, throughput, reliability, quality) and is normalised.
#[pyclass(frozen, name = "RouteRequest", module = "gateway._router_core")]
pub struct PyRouteRequest(RouteRequest);

fn non_negative(value: i64, name: &str) -> PyResult<u64> {
    u64::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("`{name}` must be >= 0, got {value}")))
}

fn small_code(value: i64, name: &str, max: u8) -> PyResult<u8> {
    u8::try_from(value)
        .ok()
        .filter(|&v| v <= max)
        .ok_or_else(|| {
            PyValueError::new_err(format!("`{name}` must be between 0 and {max}, got {value}"))
        })
}

#[pymethods]
impl PyRouteRequest {
    /// Raises ``ValueError`` for negative weights, all-zero weights or out-of-range values.
    #[new]
    #[pyo3(signature = (
        *, model_mask=None, provider_mask=None, region_mask=None, required_capabilities=0,
        prompt_tokens=0, max_output_tokens=0, expected_output_tokens=256, min_data_policy=0,
        key_source=0, max_price_per_1m=None, max_ttft_ms=None, min_throughput_tps=None,
        min_success_rate=None, weights=(0.35, 0.25, 0.1, 0.2, 0.1), task=0, quality_floor=None,
        cheapest=false
    ))]
    // Spelled out because the generated signature renders the tuple default as `...`.
    #[pyo3(
        text_signature = "(*, model_mask=None, provider_mask=None, region_mask=None, \
        required_capabilities=0, prompt_tokens=0, max_output_tokens=0, \
        expected_output_tokens=256, min_data_policy=0, key_source=0, max_price_per_1m=None, \
        max_ttft_ms=None, min_throughput_tps=None, min_success_rate=None, \
        weights=(0.35, 0.25, 0.1, 0.2, 0.1), task=0, quality_floor=None, cheapest=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        model_mask: Option<&Bound<'_, PyAny>>,
        provider_mask: Option<&Bound<'_, PyAny>>,
        region_mask: Option<&Bound<'_, PyAny>>,
        required_capabilities: i64,
        prompt_tokens: i64,
        max_output_tokens: i64,
        expected_output_tokens: i64,
        min_data_policy: i64,
        key_source: i64,
        max_price_per_1m: Option<f64>,
        max_ttft_ms: Option<f64>,
        min_throughput_tps: Option<f64>,
        min_success_rate: Option<f64>,
        weights: (f64, f64, f64, f64, f64),
        task: i64,
        quality_floor: Option<f64>,
        cheapest: bool,
    ) -> PyResult<Self> {
        let required_capabilities = u32::try_from(required_capabilities).map_err(|_| {
            PyValueError::new_err(format!(
                "`required_capabilities` must be a CAP_* bitmask, got {required_capabilities}"
            ))
        })?;
        let (w0, w1, w2, w3, w4) = weights;
        let request = RouteRequest {
            constraints: Constraints {
                model_mask: mask(model_mask, "model_mask")?,
                provider_mask: mask(provider_mask, "provider_mask")?,
                region_mask: mask(region_mask, "region_mask")?,
                required_capabilities,
                prompt_tokens: non_negative(prompt_tokens, "prompt_tokens")?,
                max_output_tokens: non_negative(max_output_tokens, "max_output_tokens")?,
                min_data_policy: small_code(
                    min_data_policy,
                    "min_data_policy",
                    crate::DATA_POLICY_ZDR,
                )?,
                key_source: small_code(key_source, "key_source", crate::KEY_SOURCE_BYOK)?,
                max_price_per_1m,
                quality_floor,
                max_ttft_ms,
                min_throughput_tps,
                min_success_rate,
                task: non_negative(task, "task")? as usize,
            },
            expected_output_tokens: non_negative(expected_output_tokens, "expected_output_tokens")?,
            weights: Weights::new([w0, w1, w2, w3, w4])?,
            cheapest,
        };
        request.validate()?;
        Ok(Self(request))
    }
}

/// A ranked routing decision.
#[pyclass(frozen, name = "RouteResult", module = "gateway._router_core")]
pub struct PyRouteResult(RouteResult);

#[pymethods]
impl PyRouteResult {
    /// Viable rows, best first (the fallback order); with ``limit``, only the best ``limit``.
    #[getter]
    fn ranked<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_iter(py, self.0.ranked.iter().map(|&r| r as i64))
    }
    /// Score of each row in ``ranked`` (higher is better), same order.
    #[getter]
    fn scores<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.0.scores)
    }
    /// Rows whose model passed ``model_mask`` (the enumeration step).
    #[getter]
    fn candidates_total(&self) -> usize {
        self.0.candidates_total
    }
    #[getter]
    fn candidates_viable(&self) -> usize {
        self.0.candidates_viable
    }
    /// When nothing is viable: the first constraint (in ``CONSTRAINT_NAMES`` order) that
    /// removed the last remaining candidate(s); ``None`` when something is viable.
    #[getter]
    fn emptied_by(&self) -> Option<&'static str> {
        self.0.emptied_by
    }
    /// True when static constraints left candidates and only health/latency emptied them.
    #[getter]
    fn health_only(&self) -> bool {
        self.0.health_only
    }
    /// Only when routed with ``explain=True`` (else ``None``): one int8 per table row, -1
    /// when the row is viable, else the index in ``CONSTRAINT_NAMES`` of the first
    /// constraint the row fails.
    #[getter]
    fn rejected_by<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArray1<i8>>> {
        self.0
            .rejected_by
            .as_deref()
            .map(|rows| PyArray1::from_slice(py, rows))
    }
    fn __repr__(&self) -> String {
        let r = &self.0;
        format!(
            "RouteResult(ranked={:?}, candidates_total={}, candidates_viable={}, emptied_by={}, \
             health_only={})",
            r.ranked,
            r.candidates_total,
            r.candidates_viable,
            r.emptied_by
                .map_or_else(|| "None".to_owned(), |n| format!("'{n}'")),
            if r.health_only { "True" } else { "False" },
        )
    }
}
