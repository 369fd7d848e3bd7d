//! The columnar candidate table (one row per deployment) and hard-constraint filtering.
//!
//! Columns are plain vectors so one filtering pass touches memory sequentially; the table is
//! built once from the catalog and only its health columns change afterwards.

use crate::codes::{CONSTRAINT_NAMES, KEY_SOURCE_ANY};
use crate::error::CoreError;

/// Number of hard constraints, in [`CONSTRAINT_NAMES`] order.
pub const CONSTRAINT_COUNT: usize = CONSTRAINT_NAMES.len();

/// The table's columns as handed in by the caller; validated by [`CandidateTable::new`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    pub model: Vec<i32>,
    pub provider: Vec<i32>,
    pub region: Vec<i32>,
    /// USD per million input tokens.
    pub price_input: Vec<f64>,
    /// USD per million output tokens.
    pub price_output: Vec<f64>,
    /// USD per million cached input tokens.
    pub price_cached: Vec<f64>,
    pub context_window: Vec<i64>,
    pub max_output: Vec<i64>,
    /// Bitmask of `CAP_*`.
    pub capabilities: Vec<u32>,
    /// `DATA_POLICY_*` level.
    pub data_policy: Vec<u8>,
    /// `KEY_SOURCE_PLATFORM` or `KEY_SOURCE_BYOK`.
    pub key_source: Vec<u8>,
    pub ttft_ms: Vec<f64>,
    pub throughput_tps: Vec<f64>,
    pub success_rate: Vec<f64>,
    pub circuit_open: Vec<bool>,
    /// Row-major `(rows, task_count)` expected quality per task.
    pub quality: Vec<f64>,
    pub task_count: usize,
}

/// Live health figures of one row, replaced as attempts complete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health {
    pub ttft_ms: f64,
    pub throughput_tps: f64,
    pub success_rate: f64,
    pub circuit_open: bool,
}

/// Validated candidate table.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateTable {
    cols: Columns,
}

impl CandidateTable {
    /// Validate lengths (every column one entry per row, quality `rows × task_count`) and
    /// values (no NaN; prices finite and non-negative).
    pub fn new(cols: Columns) -> Result<Self, CoreError> {
        let rows = cols.model.len();
        let lengths: [(&'static str, usize); 15] = [
            ("provider", cols.provider.len()),
            ("region", cols.region.len()),
            ("price_input", cols.price_input.len()),
            ("price_output", cols.price_output.len()),
            ("price_cached", cols.price_cached.len()),
            ("context_window", cols.context_window.len()),
            ("max_output", cols.max_output.len()),
            ("capabilities", cols.capabilities.len()),
            ("data_policy", cols.data_policy.len()),
            ("key_source", cols.key_source.len()),
            ("ttft_ms", cols.ttft_ms.len()),
            ("throughput_tps", cols.throughput_tps.len()),
            ("success_rate", cols.success_rate.len()),
            ("circuit_open", cols.circuit_open.len()),
            ("quality", cols.quality.len() / cols.task_count.max(1)),
        ];
        for (column, len) in lengths {
            if len != rows {
                return Err(CoreError::ColumnMismatch {
                    column,
                    expected: format!("{rows} rows (the length of `model`)"),
                    found: format!("{len} rows"),
                });
            }
        }
        if cols.quality.len() != rows * cols.task_count {
            return Err(CoreError::ColumnMismatch {
                column: "quality",
                expected: format!("shape ({rows}, {})", cols.task_count),
                found: format!("{} values", cols.quality.len()),
            });
        }
        for (column, values) in [
            ("price_input", &cols.price_input),
            ("price_output", &cols.price_output),
            ("price_cached", &cols.price_cached),
        ] {
            if let Some(row) = values.iter().position(|p| !(p.is_finite() && *p >= 0.0)) {
                return Err(CoreError::argument(
                    column,
                    format!(
                        "must be finite and non-negative (row {row} is {})",
                        values[row]
                    ),
                ));
            }
        }
        for (column, values) in [
            ("ttft_ms", &cols.ttft_ms),
            ("throughput_tps", &cols.throughput_tps),
            ("success_rate", &cols.success_rate),
            ("quality", &cols.quality),
        ] {
            if let Some(index) = values.iter().position(|v| v.is_nan()) {
                return Err(CoreError::argument(
                    column,
                    format!("has NaN at index {index}"),
                ));
            }
        }
        if let Some(row) = cols
            .key_source
            .iter()
            .position(|&k| k == KEY_SOURCE_ANY || k > 2)
        {
            return Err(CoreError::argument(
                "key_source",
                format!(
                    "values must be 1 (platform) or 2 (byok); row {row} is {}",
                    cols.key_source[row]
                ),
            ));
        }
        Ok(Self { cols })
    }

    /// Number of rows (deployments).
    pub fn len(&self) -> usize {
        self.cols.model.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cols.model.is_empty()
    }

    /// Number of task columns in `quality`.
    pub fn task_count(&self) -> usize {
        self.cols.task_count
    }

    /// Read access to the columns.
    pub fn columns(&self) -> &Columns {
        &self.cols
    }

    /// Replace one row's live health figures.
    pub fn update_health(&mut self, row: i64, health: Health) -> Result<(), CoreError> {
        let index = usize::try_from(row)
            .ok()
            .filter(|&r| r < self.len())
            .ok_or(CoreError::RowOutOfRange {
                row,
                rows: self.len(),
            })?;
        for (name, value) in [
            ("ttft_ms", health.ttft_ms),
            ("throughput_tps", health.throughput_tps),
            ("success_rate", health.success_rate),
        ] {
            if value.is_nan() {
                return Err(CoreError::argument(name, "must not be NaN"));
            }
        }
        self.cols.ttft_ms[index] = health.ttft_ms;
        self.cols.throughput_tps[index] = health.throughput_tps;
        self.cols.success_rate[index] = health.success_rate;
        self.cols.circuit_open[index] = health.circuit_open;
        Ok(())
    }

    /// Expected quality of `row` for `task`; a task without a column rates everyone 0.
    pub fn quality(&self, row: usize, task: usize) -> f64 {
        if task >= self.cols.task_count {
            return 0.0;
        }
        self.cols.quality[row * self.cols.task_count + task]
    }

    /// Mean of input and output price per million tokens: the price ceiling's and the
    /// tie-break's notion of "price".
    pub fn blended_price(&self, row: usize) -> f64 {
        f64::midpoint(self.cols.price_input[row], self.cols.price_output[row])
    }

    /// Expected cost in USD-per-million units of one request's token counts.
    pub fn expected_cost(&self, row: usize, prompt_tokens: u64, output_tokens: u64) -> f64 {
        prompt_tokens as f64 * self.cols.price_input[row]
            + output_tokens as f64 * self.cols.price_output[row]
    }
}

/// Hard constraints of one routing decision. Masks are indexed by id; `None` allows every id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    pub model_mask: Option<Vec<bool>>,
    pub provider_mask: Option<Vec<bool>>,
    pub region_mask: Option<Vec<bool>>,
    pub required_capabilities: u32,
    pub prompt_tokens: u64,
    pub max_output_tokens: u64,
    pub min_data_policy: u8,
    pub key_source: u8,
    pub max_price_per_1m: Option<f64>,
    pub quality_floor: Option<f64>,
    pub max_ttft_ms: Option<f64>,
    pub min_throughput_tps: Option<f64>,
    pub min_success_rate: Option<f64>,
    /// Task column used by `quality_floor` (and by scoring).
    pub task: usize,
}

/// Rows that passed every constraint and how many survived each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterOutcome {
    /// Viable row indices, ascending.
    pub viable: Vec<usize>,
    /// `survivors[k]` = rows passing constraints `0..=k`.
    pub survivors: [usize; CONSTRAINT_COUNT],
}

impl FilterOutcome {
    /// Index of the constraint after which nothing survived, if any.
    pub fn emptied_at(&self) -> Option<usize> {
        self.survivors.iter().position(|&n| n == 0)
    }
}

fn allowed(mask: Option<&Vec<bool>>, id: i32) -> bool {
    mask.is_none_or(|m| {
        usize::try_from(id)
            .ok()
            .and_then(|i| m.get(i))
            .copied()
            .unwrap_or(false)
    })
}

fn at_most(value: f64, limit: Option<f64>) -> bool {
    limit.is_none_or(|l| value <= l)
}

fn at_least(value: f64, limit: Option<f64>) -> bool {
    limit.is_none_or(|l| value >= l)
}

/// Index (in [`CONSTRAINT_NAMES`]) of the first constraint `row` fails, `None` when viable.
pub fn first_failed(table: &CandidateTable, c: &Constraints, row: usize) -> Option<usize> {
    let t = table.columns();
    let needed_context = c.prompt_tokens.saturating_add(c.max_output_tokens);
    // Evaluated eagerly: fourteen comparisons are cheaper than branching on each.
    let passes = [
        allowed(c.model_mask.as_ref(), t.model[row]),
        allowed(c.provider_mask.as_ref(), t.provider[row]),
        c.key_source == KEY_SOURCE_ANY || t.key_source[row] == c.key_source,
        t.capabilities[row] & c.required_capabilities == c.required_capabilities,
        u64::try_from(t.context_window[row]).unwrap_or(0) >= needed_context,
        c.max_output_tokens == 0
            || u64::try_from(t.max_output[row]).unwrap_or(0) >= c.max_output_tokens,
        allowed(c.region_mask.as_ref(), t.region[row]),
        t.data_policy[row] >= c.min_data_policy,
        at_most(table.blended_price(row), c.max_price_per_1m),
        at_least(table.quality(row, c.task), c.quality_floor),
        at_most(t.ttft_ms[row], c.max_ttft_ms),
        at_least(t.throughput_tps[row], c.min_throughput_tps),
        at_least(t.success_rate[row], c.min_success_rate),
        !t.circuit_open[row],
    ];
    passes.iter().position(|&pass| !pass)
}

/// Apply every constraint to every row in one pass, counting survivors per step.
pub fn filter(table: &CandidateTable, c: &Constraints) -> FilterOutcome {
    filter_with(table, c, |_| {})
}

/// [`filter`], plus one entry per row: `-1` when viable, else the index in
/// [`CONSTRAINT_NAMES`] of the first constraint the row fails (see [`first_failed`]).
pub fn filter_explained(table: &CandidateTable, c: &Constraints) -> (FilterOutcome, Vec<i8>) {
    let mut rejected_by = Vec::with_capacity(table.len());
    let outcome = filter_with(table, c, |failed| {
        // CONSTRAINT_COUNT (14) fits in i8.
        rejected_by.push(failed.map_or(-1, |k| k as i8));
    });
    (outcome, rejected_by)
}

/// The filtering loop; `on_row` sees each row's verdict in row order. Monomorphised, so the
/// plain [`filter`] pays nothing for the hook.
fn filter_with(
    table: &CandidateTable,
    c: &Constraints,
    mut on_row: impl FnMut(Option<usize>),
) -> FilterOutcome {
    let mut failed_at = [0usize; CONSTRAINT_COUNT];
    let mut viable = Vec::new();
    for row in 0..table.len() {
        let failed = first_failed(table, c, row);
        on_row(failed);
        match failed {
            Some(k) => failed_at[k] += 1,
            None => viable.push(row),
        }
    }
    let mut survivors = [0usize; CONSTRAINT_COUNT];
    let mut remaining = table.len();
    for (k, failed) in failed_at.iter().enumerate() {
        remaining -= failed;
        survivors[k] = remaining;
    }
    FilterOutcome { viable, survivors }
}
