//! One routing decision: filter the table by the request's constraints, then score and rank.

use crate::candidates::{filter, filter_explained, CandidateTable, Constraints};
use crate::codes::{CONSTRAINT_NAMES, DATA_POLICY_ZDR, FIRST_HEALTH_CONSTRAINT, KEY_SOURCE_BYOK};
use crate::error::CoreError;
use crate::scoring::{rank, ScoreInputs, Weights};

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
    /// Viable rows, best first (the fallback order).
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

/// Filter, score and rank.
pub fn route(table: &CandidateTable, request: &RouteRequest) -> Result<RouteResult, CoreError> {
    route_explained(table, request, false)
}

/// [`route`], and with `explain` also the per-row [`RouteResult::rejected_by`]. Without
/// `explain` nothing per row is allocated.
pub fn route_explained(
    table: &CandidateTable,
    request: &RouteRequest,
    explain: bool,
) -> Result<RouteResult, CoreError> {
    request.validate()?;
    let task = request.constraints.task;
    if table.task_count() > 0 && task >= table.task_count() {
        return Err(CoreError::argument(
            "task",
            format!(
                "is {task} but the table has {} task columns",
                table.task_count()
            ),
        ));
    }
    let (outcome, rejected_by) = if explain {
        let (outcome, rejected_by) = filter_explained(table, &request.constraints);
        (outcome, Some(rejected_by))
    } else {
        (filter(table, &request.constraints), None)
    };
    let emptied_at = outcome.emptied_at();
    let ranking = rank(
        table,
        &outcome.viable,
        &ScoreInputs {
            prompt_tokens: request.constraints.prompt_tokens,
            expected_output_tokens: request.expected_output_tokens,
            task,
            weights: request.weights,
            cheapest: request.cheapest,
        },
    );
    Ok(RouteResult {
        ranked: ranking.rows,
        scores: ranking.scores,
        candidates_total: outcome.survivors[0],
        candidates_viable: outcome.viable.len(),
        emptied_by: emptied_at.map(|k| CONSTRAINT_NAMES[k]),
        health_only: emptied_at.is_some_and(|k| k >= FIRST_HEALTH_CONSTRAINT),
        rejected_by,
    })
}
