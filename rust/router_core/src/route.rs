//! One routing decision: filter the table by the request's constraints, then score and rank.

use crate::candidates::{select, CandidateTable, Constraints};
use crate::codes::{CONSTRAINT_NAMES, DATA_POLICY_ZDR, FIRST_HEALTH_CONSTRAINT, KEY_SOURCE_BYOK};
use crate::error::CoreError;
use crate::scoring::{rank_top, ScoreInputs, Weights};

/// Constraints and scoring inputs for one decision; check with [`RouteRequest::validate`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteRequest {
    pub constraints: Constraints,
    /// Output tokens assumed when estimating cost.
    pub expected_output_tokens: u64,
    pub weights: Weights,
    /// Rank by expected cost alone.
    pub cheapest: bool,
}

impl RouteRequest {
    /// Reject values that no table could interpret (unknown codes, NaN limits).
    pub fn validate(&self) -> Result<(), CoreError> {
        let c = &self.constraints;
        if c.min_data_policy > DATA_POLICY_ZDR {
            return Err(CoreError::argument(
                "min_data_policy",
                format!(
                    "must be 0 (none), 1 (no_training) or 2 (zdr), got {}",
                    c.min_data_policy
                ),
            ));
        }
        if c.key_source > KEY_SOURCE_BYOK {
            return Err(CoreError::argument(
                "key_source",
                format!(
                    "must be 0 (any), 1 (platform) or 2 (byok), got {}",
                    c.key_source
                ),
            ));
        }
        for (name, limit) in [
            ("max_price_per_1m", c.max_price_per_1m),
            ("max_ttft_ms", c.max_ttft_ms),
            ("min_throughput_tps", c.min_throughput_tps),
            ("min_success_rate", c.min_success_rate),
            ("quality_floor", c.quality_floor),
        ] {
            if limit.is_some_and(f64::is_nan) {
                return Err(CoreError::argument(
                    name,
                    "must be a number or None, not NaN",
                ));
            }
        }
        Ok(())
    }
}

/// A ranked routing decision with the counts `routing_metadata` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteResult {
    /// Viable rows, best first (the fallback order); with a `limit`, only the best `limit`.
    pub ranked: Vec<usize>,
    /// Score of each row in `ranked`, non-increasing.
    pub scores: Vec<f64>,
    /// Rows whose model passed the model mask.
    pub candidates_total: usize,
    /// Rows passing every constraint.
    pub candidates_viable: usize,
    /// Constraint at which the surviving set first became empty.
    pub emptied_by: Option<&'static str>,
    /// Static constraints left candidates; only health/latency emptied the set.
    pub health_only: bool,
    /// Only from [`route_explained`] with `explain`: one entry per table row, `-1` when the
    /// row is viable, else the index in [`CONSTRAINT_NAMES`] of the first constraint it fails.
    pub rejected_by: Option<Vec<i8>>,
}

/// Per-call options of [`route_with`]; the default routes exactly as [`route`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouteOptions {
    /// Overrides the request's `prompt_tokens` for this call.
    pub prompt_tokens: Option<u64>,
    /// Overrides the request's `max_output_tokens` for this call.
    pub max_output_tokens: Option<u64>,
    /// Overrides the request's `expected_output_tokens` for this call.
    pub expected_output_tokens: Option<u64>,
    /// Rank only the best `limit` viable rows: `ranked` is the first `limit` entries of the
    /// full ranking. Counts and normalisation still cover every viable row.
    pub limit: Option<usize>,
    /// Also report [`RouteResult::rejected_by`].
    pub explain: bool,
    /// Overrides the request's `quality_floor` for this call (a floor that depends on the
    /// prompt, such as `auto`'s, then costs no request of its own).
    pub quality_floor: Option<f64>,
}

/// Filter, score and rank.
pub fn route(table: &CandidateTable, request: &RouteRequest) -> Result<RouteResult, CoreError> {
    route_with(table, request, &RouteOptions::default())
}

/// [`route`], and with `explain` also the per-row [`RouteResult::rejected_by`]. Without
/// `explain` nothing per row is allocated.
pub fn route_explained(
    table: &CandidateTable,
    request: &RouteRequest,
    explain: bool,
) -> Result<RouteResult, CoreError> {
    route_with(
        table,
        request,
        &RouteOptions {
            explain,
            ..RouteOptions::default()
        },
    )
}

/// [`route`] with per-call [`RouteOptions`]: token-count overrides (so one cached request can
/// serve every request of a query shape), a ranking `limit`, and `explain`.
pub fn route_with(
    table: &CandidateTable,
    request: &RouteRequest,
    options: &RouteOptions,
) -> Result<RouteResult, CoreError> {
    request.validate()?;
    if options.quality_floor.is_some_and(f64::is_nan) {
        return Err(CoreError::argument(
            "quality_floor",
            "must be a number or None, not NaN",
        ));
    }
    let c = &request.constraints;
    let task = c.task;
    if table.task_count() > 0 && task >= table.task_count() {
        return Err(CoreError::argument(
            "task",
            format!(
                "is {task} but the table has {} task columns",
                table.task_count()
            ),
        ));
    }
    let prompt_tokens = options.prompt_tokens.unwrap_or(c.prompt_tokens);
    let max_output_tokens = options.max_output_tokens.unwrap_or(c.max_output_tokens);
    let mut rejected_by = options.explain.then(|| vec![-1; table.len()]);
    let selection = select(
        table,
        c,
        prompt_tokens,
        max_output_tokens,
        options.quality_floor.or(c.quality_floor),
        rejected_by.as_deref_mut(),
    );
    let emptied_at = selection.emptied_at();
    let ranking = rank_top(
        table,
        &selection.rows,
        &ScoreInputs {
            prompt_tokens,
            expected_output_tokens: options
                .expected_output_tokens
                .unwrap_or(request.expected_output_tokens),
            task,
            weights: request.weights,
            cheapest: request.cheapest,
        },
        options.limit,
    );
    Ok(RouteResult {
        ranked: ranking.rows,
        scores: ranking.scores,
        candidates_total: selection.survivors[0],
        candidates_viable: selection.rows.len(),
        emptied_by: emptied_at.map(|k| CONSTRAINT_NAMES[k]),
        health_only: emptied_at.is_some_and(|k| k >= FIRST_HEALTH_CONSTRAINT),
        rejected_by,
    })
}
