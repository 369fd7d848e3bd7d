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
    /// Tokens of the row's model family per counted (`o200k_base`) prompt token, finite and
    /// at least 1 (see [`scaled_prompt_tokens`]); empty means 1.0 for every row.
    pub token_ratio: Vec<f64>,
}

/// Live health figures of one row, replaced as attempts complete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health {
    pub ttft_ms: f64,
    pub throughput_tps: f64,
    pub success_rate: f64,
    pub circuit_open: bool,
}

/// One row's scoring inputs, gathered together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRow {
    pub price_input: f64,
    pub price_output: f64,
    pub ttft_ms: f64,
    pub throughput_tps: f64,
    pub success_rate: f64,
    /// The row's [`Columns::token_ratio`].
    pub token_ratio: f64,
}

/// Prompt tokens a row's model is assumed to see for `prompt_tokens` counted tokens:
/// `prompt_tokens` itself at ratio 1, else `⌈prompt_tokens × ratio⌉` (never fewer than
/// `prompt_tokens`, saturating at `u64::MAX`). The context-window constraint adds the
/// requested output to this.
#[inline]
#[allow(clippy::float_cmp)] // exactly 1.0: the count as it is, whatever its size
pub fn scaled_prompt_tokens(prompt_tokens: u64, ratio: f64) -> u64 {
    if ratio == 1.0 {
        prompt_tokens
    } else {
        // `as` saturates: an infinite product is u64::MAX.
        prompt_tokens.max((prompt_tokens as f64 * ratio).ceil() as u64)
    }
}

/// Validated candidate table.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateTable {
    cols: Columns,
    /// Derived at build: [`CandidateTable::blended_price`] of every row.
    blended: Vec<f64>,
    /// Derived at build: `quality` transposed to task-major, so one task's column is a slice.
    quality_by_task: Vec<f64>,
    /// Derived: the per-row inputs of scoring side by side (one cache line per row when
    /// gathering the viable rows), kept in step with `cols` by `update_health`.
    score_rows: Vec<ScoreRow>,
    /// Derived at build: each row's position in the order (blended price, row), so one
    /// integer decides both ranking tie-breaks.
    price_rank: Vec<u32>,
    /// Rows whose circuit is open; the circuit constraint is skipped while this is zero.
    open_circuits: usize,
    /// Derived at build: the distinct token ratios, ascending (`[1.0]` when uniform).
    ratio_values: Vec<f64>,
    /// Derived at build: each row's index into `ratio_values`, so one call scales the prompt
    /// once per distinct ratio rather than once per row.
    ratio_class: Vec<u32>,
}

impl CandidateTable {
    /// Validate lengths (every column one entry per row, quality `rows × task_count`) and
    /// values (no NaN; prices finite and non-negative).
    #[allow(clippy::too_many_lines)] // one validation per column, then the derived columns
    pub fn new(mut cols: Columns) -> Result<Self, CoreError> {
        let rows = cols.model.len();
        if u32::try_from(rows).is_err() {
            return Err(CoreError::argument(
                "model",
                format!("has {rows} rows; a table holds at most {} rows", u32::MAX),
            ));
        }
        if cols.token_ratio.is_empty() {
            cols.token_ratio = vec![1.0; rows];
        }
        let lengths: [(&'static str, usize); 16] = [
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
            ("token_ratio", cols.token_ratio.len()),
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
            .token_ratio
            .iter()
            .position(|r| !(r.is_finite() && *r >= 1.0))
        {
            return Err(CoreError::argument(
                "token_ratio",
                format!(
                    "must be finite and at least 1.0 (row {row} is {})",
                    cols.token_ratio[row]
                ),
            ));
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
        let blended = cols
            .price_input
            .iter()
            .zip(&cols.price_output)
            .map(|(&i, &o)| f64::midpoint(i, o))
            .collect();
        let mut quality_by_task = vec![0.0; cols.quality.len()];
        if cols.task_count > 0 {
            for (row, qualities) in cols.quality.chunks_exact(cols.task_count).enumerate() {
                for (task, &q) in qualities.iter().enumerate() {
                    quality_by_task[task * rows + row] = q;
                }
            }
        }
        let blended: Vec<f64> = blended;
        let mut by_price: Vec<u32> = (0..rows as u32).collect();
        by_price.sort_unstable_by(|&a, &b| {
            blended[a as usize]
                .total_cmp(&blended[b as usize])
                .then(a.cmp(&b))
        });
        let mut price_rank = vec![0; rows];
        for (rank, &row) in by_price.iter().enumerate() {
            price_rank[row as usize] = rank as u32;
        }
        let open_circuits = cols.circuit_open.iter().filter(|&&open| open).count();
        let score_rows = (0..rows)
            .map(|r| ScoreRow {
                price_input: cols.price_input[r],
                price_output: cols.price_output[r],
                ttft_ms: cols.ttft_ms[r],
                throughput_tps: cols.throughput_tps[r],
                success_rate: cols.success_rate[r],
                token_ratio: cols.token_ratio[r],
            })
            .collect();
        let mut ratio_values = cols.token_ratio.clone();
        ratio_values.push(1.0);
        ratio_values.sort_unstable_by(f64::total_cmp);
        ratio_values.dedup();
        let ratio_class = cols
            .token_ratio
            .iter()
            .map(|r| ratio_values.partition_point(|v| v < r) as u32)
            .collect();
        Ok(Self {
            cols,
            blended,
            quality_by_task,
            score_rows,
            price_rank,
            open_circuits,
            ratio_values,
            ratio_class,
        })
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
        let score_row = &mut self.score_rows[index];
        score_row.ttft_ms = health.ttft_ms;
        score_row.throughput_tps = health.throughput_tps;
        score_row.success_rate = health.success_rate;
        self.cols.ttft_ms[index] = health.ttft_ms;
        self.cols.throughput_tps[index] = health.throughput_tps;
        self.cols.success_rate[index] = health.success_rate;
        let was_open = std::mem::replace(&mut self.cols.circuit_open[index], health.circuit_open);
        self.open_circuits =
            self.open_circuits + usize::from(health.circuit_open) - usize::from(was_open);
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
        self.blended[row]
    }

    /// [`CandidateTable::blended_price`] of every row (precomputed at build).
    pub fn blended_prices(&self) -> &[f64] {
        &self.blended
    }

    /// Every row's scoring inputs (prices and live health), one struct per row.
    pub fn score_rows(&self) -> &[ScoreRow] {
        &self.score_rows
    }

    /// Each row's position in the order (blended price, then row index): comparing two rows'
    /// ranks is comparing them by the ranking's tie-breaks.
    pub fn price_ranks(&self) -> &[u32] {
        &self.price_rank
    }

    /// Expected quality of every row for `task`, or `None` when the table has no column for
    /// it (every row then rates 0).
    pub fn quality_column(&self, task: usize) -> Option<&[f64]> {
        let rows = self.len();
        (task < self.cols.task_count).then(|| &self.quality_by_task[task * rows..(task + 1) * rows])
    }

    /// True when every row's token ratio is 1.0: routing then uses the request's prompt
    /// tokens as they are (the fast path of filtering and scoring).
    pub fn uniform_token_ratio(&self) -> bool {
        self.ratio_values.len() == 1
    }

    /// Expected cost in USD-per-million units of one request's token counts: the prompt
    /// scaled by the row's token ratio (unrounded) at the input price, plus the output.
    pub fn expected_cost(&self, row: usize, prompt_tokens: u64, output_tokens: u64) -> f64 {
        prompt_tokens as f64 * self.cols.token_ratio[row] * self.cols.price_input[row]
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
    mask.is_none_or(|m| allowed_by(m, id))
}

/// `id` is in `mask`; negative ids are never allowed (they wrap beyond any mask's length).
#[inline]
fn allowed_by(mask: &[bool], id: i32) -> bool {
    mask.get(id as usize).copied().unwrap_or(false)
}

fn at_most(value: f64, limit: Option<f64>) -> bool {
    limit.is_none_or(|l| value <= l)
}

fn at_least(value: f64, limit: Option<f64>) -> bool {
    limit.is_none_or(|l| value >= l)
}

/// A row's capacity column (context window, max output) as tokens; negative means none.
#[inline]
fn tokens(capacity: i64) -> u64 {
    capacity.max(0) as u64
}

/// Index (in [`CONSTRAINT_NAMES`]) of the first constraint `row` fails, `None` when viable.
///
/// The row-at-a-time definition of the filter; [`filter`] gives the same verdicts column by
/// column.
pub fn first_failed(table: &CandidateTable, c: &Constraints, row: usize) -> Option<usize> {
    let t = table.columns();
    let needed_context = scaled_prompt_tokens(c.prompt_tokens, t.token_ratio[row])
        .saturating_add(c.max_output_tokens);
    let passes = [
        allowed(c.model_mask.as_ref(), t.model[row]),
        allowed(c.provider_mask.as_ref(), t.provider[row]),
        c.key_source == KEY_SOURCE_ANY || t.key_source[row] == c.key_source,
        t.capabilities[row] & c.required_capabilities == c.required_capabilities,
        tokens(t.context_window[row]) >= needed_context,
        c.max_output_tokens == 0 || tokens(t.max_output[row]) >= c.max_output_tokens,
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

/// Apply every constraint to every row, counting survivors per step.
pub fn filter(table: &CandidateTable, c: &Constraints) -> FilterOutcome {
    let selection = select(
        table,
        c,
        c.prompt_tokens,
        c.max_output_tokens,
        c.quality_floor,
        None,
    );
    selection.into_outcome()
}

/// [`filter`], plus one entry per row: `-1` when viable, else the index in
/// [`CONSTRAINT_NAMES`] of the first constraint the row fails (see [`first_failed`]).
pub fn filter_explained(table: &CandidateTable, c: &Constraints) -> (FilterOutcome, Vec<i8>) {
    let mut rejected_by = vec![-1; table.len()];
    let selection = select(
        table,
        c,
        c.prompt_tokens,
        c.max_output_tokens,
        c.quality_floor,
        Some(&mut rejected_by),
    );
    (selection.into_outcome(), rejected_by)
}

/// The viable rows (ascending, as `u32`) and the survivor counts of one filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    pub rows: Vec<u32>,
    pub survivors: [usize; CONSTRAINT_COUNT],
}

impl Selection {
    /// Index of the constraint after which nothing survived, if any.
    pub fn emptied_at(&self) -> Option<usize> {
        self.survivors.iter().position(|&n| n == 0)
    }

    fn into_outcome(self) -> FilterOutcome {
        FilterOutcome {
            viable: self.rows.iter().map(|&r| r as usize).collect(),
            survivors: self.survivors,
        }
    }
}

/// Column-at-a-time filtering over a bitmap of surviving rows (bit `i` of `words[b]` is row
/// `64 b + i`): each set constraint, in [`CONSTRAINT_NAMES`] order, clears the bits of the
/// rows it fails, so `survivors` is the running popcount and a row is rejected by the first
/// constraint that clears it. An unset constraint touches no row; a 64-row block with no
/// survivors is skipped, and nothing is evaluated once the set is empty.
struct Sieve<'a> {
    words: Vec<u64>,
    rows: usize,
    /// Surviving rows.
    len: usize,
    /// Per-row first failed constraint, when explaining.
    rejected_by: Option<&'a mut [i8]>,
    survivors: [usize; CONSTRAINT_COUNT],
}

impl Sieve<'_> {
    /// Record constraint `k`; when `active`, keep only the rows for which `pass` holds.
    #[inline]
    fn step(&mut self, k: usize, active: bool, pass: impl Fn(usize) -> bool) {
        if active && self.len > 0 {
            let mut len = 0;
            for (block, word) in self.words.iter_mut().enumerate() {
                let old = *word;
                if old == 0 {
                    continue;
                }
                let base = block * 64;
                let mut bits = 0u64;
                if base + 64 <= self.rows {
                    for i in 0..64 {
                        bits |= u64::from(pass(base + i)) << i;
                    }
                } else {
                    for i in 0..self.rows - base {
                        bits |= u64::from(pass(base + i)) << i;
                    }
                }
                let new = old & bits;
                if let Some(rejected_by) = self.rejected_by.as_deref_mut() {
                    let mut dropped = old & !new;
                    while dropped != 0 {
                        // CONSTRAINT_COUNT (14) fits in i8.
                        rejected_by[base + dropped.trailing_zeros() as usize] = k as i8;
                        dropped &= dropped - 1;
                    }
                }
                *word = new;
                len += new.count_ones() as usize;
            }
            self.len = len;
        }
        self.survivors[k] = self.len;
    }

    fn finish(self) -> Selection {
        let mut rows = Vec::with_capacity(self.len);
        for (block, &word) in self.words.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                rows.push((block * 64) as u32 + word.trailing_zeros());
                word &= word - 1;
            }
        }
        Selection {
            rows,
            survivors: self.survivors,
        }
    }
}

/// Filter with explicit token counts (the request's, or a per-call override). With
/// `rejected_by` (one `-1` per row on entry), each rejected row gets its constraint index.
pub(crate) fn select(
    table: &CandidateTable,
    c: &Constraints,
    prompt_tokens: u64,
    max_output_tokens: u64,
    quality_floor: Option<f64>,
    rejected_by: Option<&mut [i8]>,
) -> Selection {
    let t = table.columns();
    let rows = table.len();
    let mut words = vec![u64::MAX; rows.div_ceil(64)];
    if rows % 64 != 0 {
        if let Some(last) = words.last_mut() {
            *last = (1 << (rows % 64)) - 1;
        }
    }
    let mut sieve = Sieve {
        words,
        rows,
        len: rows,
        rejected_by,
        survivors: [0; CONSTRAINT_COUNT],
    };
    let model = c.model_mask.as_deref().unwrap_or(&[]);
    sieve.step(0, c.model_mask.is_some(), |r| allowed_by(model, t.model[r]));
    let provider = c.provider_mask.as_deref().unwrap_or(&[]);
    sieve.step(1, c.provider_mask.is_some(), |r| {
        allowed_by(provider, t.provider[r])
    });
    let key_source = c.key_source;
    sieve.step(2, key_source != KEY_SOURCE_ANY, |r| {
        t.key_source[r] == key_source
    });
    let caps = c.required_capabilities;
    sieve.step(3, caps != 0, |r| t.capabilities[r] & caps == caps);
    let needed_context = prompt_tokens.saturating_add(max_output_tokens);
    if table.uniform_token_ratio() || prompt_tokens == 0 {
        sieve.step(4, needed_context > 0, |r| {
            tokens(t.context_window[r]) >= needed_context
        });
    } else {
        // The context needed per distinct ratio (a handful), then one lookup per row.
        let mut small = [0u64; 16];
        let mut large = Vec::new();
        let needed: &mut [u64] = if table.ratio_values.len() <= small.len() {
            &mut small[..table.ratio_values.len()]
        } else {
            large.resize(table.ratio_values.len(), 0);
            &mut large
        };
        for (need, &ratio) in needed.iter_mut().zip(&table.ratio_values) {
            *need = scaled_prompt_tokens(prompt_tokens, ratio).saturating_add(max_output_tokens);
        }
        let needed: &[u64] = needed;
        let class = &table.ratio_class;
        sieve.step(4, true, |r| {
            tokens(t.context_window[r]) >= needed[class[r] as usize]
        });
    }
    sieve.step(5, max_output_tokens > 0, |r| {
        tokens(t.max_output[r]) >= max_output_tokens
    });
    let region = c.region_mask.as_deref().unwrap_or(&[]);
    sieve.step(6, c.region_mask.is_some(), |r| {
        allowed_by(region, t.region[r])
    });
    let policy = c.min_data_policy;
    sieve.step(7, policy > 0, |r| t.data_policy[r] >= policy);
    let blended = table.blended_prices();
    if let Some(limit) = c.max_price_per_1m {
        sieve.step(8, true, |r| blended[r] <= limit);
    } else {
        sieve.step(8, false, |_| true);
    }
    match (quality_floor, table.quality_column(c.task)) {
        (Some(floor), Some(quality)) => sieve.step(9, true, |r| quality[r] >= floor),
        // No column for the task: every row rates 0.
        (Some(floor), None) => sieve.step(9, 0.0 < floor, |_| false),
        (None, _) => sieve.step(9, false, |_| true),
    }
    let floats = [
        (10, c.max_ttft_ms.map(|l| (l, true)), &t.ttft_ms),
        (
            11,
            c.min_throughput_tps.map(|l| (l, false)),
            &t.throughput_tps,
        ),
        (12, c.min_success_rate.map(|l| (l, false)), &t.success_rate),
    ];
    for (k, limit, column) in floats {
        match limit {
            Some((l, true)) => sieve.step(k, true, |r| column[r] <= l),
            Some((l, false)) => sieve.step(k, true, |r| column[r] >= l),
            None => sieve.step(k, false, |_| true),
        }
    }
    sieve.step(13, table.open_circuits > 0, |r| !t.circuit_open[r]);
    sieve.finish()
}
