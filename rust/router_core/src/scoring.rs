//! Scoring of viable candidates: min-max normalised features, weighted sum, deterministic
//! ranking.

use std::cmp::Ordering;

use crate::candidates::CandidateTable;
use crate::error::CoreError;

/// Feature order of [`Weights`]: cost, ttft, throughput, reliability, quality.
pub const FEATURE_NAMES: [&str; 5] = ["cost", "ttft", "throughput", "reliability", "quality"];

/// Feature weights, normalised to sum to 1 so presets and custom weights compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights([f64; 5]);

impl Weights {
    /// Normalise raw weights; fails on negative, non-finite or all-zero weights.
    pub fn new(raw: [f64; 5]) -> Result<Self, CoreError> {
        for (name, w) in FEATURE_NAMES.iter().zip(raw) {
            if !w.is_finite() || w < 0.0 {
                return Err(CoreError::argument(
                    "weights",
                    format!("must be finite and non-negative; the {name} weight is {w}"),
                ));
            }
        }
        let sum: f64 = raw.iter().sum();
        if sum <= 0.0 || !sum.is_finite() {
            return Err(CoreError::argument(
                "weights",
                "must have at least one positive entry (cost, ttft, throughput, reliability, quality)",
            ));
        }
        Ok(Self(raw.map(|w| w / sum)))
    }

    /// The normalised weights.
    pub fn get(&self) -> [f64; 5] {
        self.0
    }
}

impl Default for Weights {
    /// The `balanced` preset.
    fn default() -> Self {
        Self([0.35, 0.25, 0.1, 0.2, 0.1])
    }
}

/// Per-request inputs to scoring beyond the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreInputs {
    pub prompt_tokens: u64,
    pub expected_output_tokens: u64,
    pub task: usize,
    pub weights: Weights,
    /// Rank by expected cost alone (the `cheapest` strategy).
    pub cheapest: bool,
}

/// Viable rows best first, with their scores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ranking {
    pub rows: Vec<usize>,
    pub scores: Vec<f64>,
}

/// Direction in which a feature improves.
#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

/// Min-max scale of one feature over the viable rows: finite values set the range.
#[derive(Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    better: Better,
}

impl Scale {
    fn new(better: Better) -> Self {
        Self {
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
            better,
        }
    }

    #[inline]
    fn see(&mut self, v: f64) {
        if v.is_finite() {
            self.lo = self.lo.min(v);
            self.hi = self.hi.max(v);
        }
    }

    /// [`Scale::see`] every value, branch-free in four independent lanes.
    #[inline]
    fn see_all(&mut self, values: &[f64]) {
        let mut lo = [self.lo; 4];
        let mut hi = [self.hi; 4];
        let mut chunks = values.chunks_exact(4);
        for chunk in &mut chunks {
            for lane in 0..4 {
                let v = chunk[lane];
                // Infinite (and NaN) values must not move the range: map them to a no-op.
                let low = if v > f64::NEG_INFINITY {
                    v
                } else {
                    f64::INFINITY
                };
                let high = if v < f64::INFINITY {
                    v
                } else {
                    f64::NEG_INFINITY
                };
                lo[lane] = if low < lo[lane] { low } else { lo[lane] };
                hi[lane] = if high > hi[lane] { high } else { hi[lane] };
            }
        }
        for lane in 0..4 {
            self.see_limits(lo[lane], hi[lane]);
        }
        for &v in chunks.remainder() {
            self.see(v);
        }
    }

    #[inline]
    fn see_limits(&mut self, lo: f64, hi: f64) {
        if lo < self.lo {
            self.lo = lo;
        }
        if hi > self.hi {
            self.hi = hi;
        }
    }

    /// To [0, 1], 1 = best. All-equal features give everyone 1.0. Infinite values (e.g.
    /// unknown TTFT) sit at their end of the scale without stretching it.
    #[inline]
    fn apply(&self, v: f64) -> f64 {
        let range = self.hi - self.lo;
        let position = if v.is_nan() {
            return 0.0;
        } else if v == f64::INFINITY {
            1.0
        } else if v == f64::NEG_INFINITY {
            0.0
        } else if range > 0.0 && range.is_finite() {
            (v - self.lo) / range
        } else {
            return 1.0;
        };
        match self.better {
            Better::Higher => position,
            Better::Lower => 1.0 - position,
        }
    }

    /// `scores[i] += weight * self.apply(values[i])` for every `i`; the common case (a finite,
    /// positive range) is branch-free so that it vectorises.
    #[inline]
    fn accumulate(&self, weight: f64, values: &[f64], scores: &mut [f64]) {
        let (lo, range) = (self.lo, self.hi - self.lo);
        if !(range > 0.0 && range.is_finite()) {
            for (score, &v) in scores.iter_mut().zip(values) {
                *score += weight * self.apply(v);
            }
            return;
        }
        let position = |v: f64| {
            let p = (v - lo) / range;
            let p = if v == f64::INFINITY { 1.0 } else { p };
            if v == f64::NEG_INFINITY {
                0.0
            } else {
                p
            }
        };
        match self.better {
            Better::Higher => {
                for (score, &v) in scores.iter_mut().zip(values) {
                    let f = if v.is_nan() { 0.0 } else { position(v) };
                    *score += weight * f;
                }
            }
            Better::Lower => {
                for (score, &v) in scores.iter_mut().zip(values) {
                    let f = if v.is_nan() { 0.0 } else { 1.0 - position(v) };
                    *score += weight * f;
                }
            }
        }
    }
}

/// Min-max normalise to [0, 1] (see [`Scale::apply`]).
#[cfg(test)]
fn normalise(values: &[f64], better: Better) -> Vec<f64> {
    let mut scale = Scale::new(better);
    for &v in values {
        scale.see(v);
    }
    values.iter().map(|&v| scale.apply(v)).collect()
}

/// Score and rank `viable` rows. Ties break by lower blended price, then lower row index.
pub fn rank(table: &CandidateTable, viable: &[usize], inputs: &ScoreInputs) -> Ranking {
    let rows: Vec<u32> = viable.iter().map(|&r| r as u32).collect();
    rank_top(table, &rows, inputs, None)
}

/// Rows per block of feature values gathered into a buffer.
const BLOCK: usize = 64;

/// One row's sort key: `primary` (expected cost, or the negated score) then the row's
/// position by (blended price, row), which is unique, so an unstable sort is deterministic.
#[derive(Clone, Copy)]
struct Key {
    primary: f64,
    price_rank: u32,
    row: u32,
}

#[inline]
fn by_key(a: &Key, b: &Key) -> Ordering {
    a.primary
        .total_cmp(&b.primary)
        .then(a.price_rank.cmp(&b.price_rank))
}

/// `x`'s bits as an integer that orders like [`f64::total_cmp`].
#[inline]
fn total_order_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Indices of the best `limit` keys, in [`by_key`] order.
///
/// Each key is packed into one `u64`: the high bits of its primary in total order, the low
/// bits its index. Sorting those integers orders by the primary's high bits; keys whose high
/// bits are equal (exact ties, or primaries a few ulps apart) are then put in [`by_key`] order
/// among themselves, so the result is exactly that of sorting by [`by_key`]. With a `limit`
/// below the count, `select_nth_unstable` first sets the best `limit` apart.
fn best_first(keys: &[Key], limit: usize) -> Vec<usize> {
    let n = keys.len();
    let index_bits = u64::BITS - (n.saturating_sub(1) as u64).leading_zeros();
    let index_mask = (1u64 << index_bits) - 1;
    let mut packed: Vec<u64> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| total_order_bits(key.primary) & !index_mask | i as u64)
        .collect();
    let k = limit.min(n);
    if k == 0 {
        return Vec::new();
    }
    if k < n {
        packed.select_nth_unstable(k - 1);
        // Keys beyond the cut that share its high bits may still belong in the best `k`.
        let cut = packed[k - 1] & !index_mask;
        let mut end = k;
        for i in k..n {
            if packed[i] & !index_mask == cut {
                packed.swap(end, i);
                end += 1;
            }
        }
        packed.truncate(end);
    }
    packed.sort_unstable();
    let mut order: Vec<usize> = packed.iter().map(|&p| (p & index_mask) as usize).collect();
    let mut start = 0;
    while start < order.len() {
        let high = packed[start] & !index_mask;
        let mut end = start + 1;
        while end < packed.len() && packed[end] & !index_mask == high {
            end += 1;
        }
        if end - start > 1 {
            order[start..end].sort_unstable_by(|&a, &b| by_key(&keys[a], &keys[b]));
        }
        start = end;
    }
    order.truncate(k);
    order
}

/// [`rank`] of `viable` (any order) keeping only the best `limit` rows, which come out as the
/// first `limit` of the full ranking. Normalisation always uses every viable row.
///
/// The cost feature is [`CandidateTable::expected_cost`]: the prompt scaled by each row's
/// token ratio. When every ratio is 1.0 the scaling is left out (multiplying by 1.0 changes
/// nothing), so that table ranks exactly as fast as before ratios existed.
pub(crate) fn rank_top(
    table: &CandidateTable,
    viable: &[u32],
    inputs: &ScoreInputs,
    limit: Option<usize>,
) -> Ranking {
    let features = table.score_rows();
    let (pt, eot) = (
        inputs.prompt_tokens as f64,
        inputs.expected_output_tokens as f64,
    );
    if table.uniform_token_ratio() {
        rank_by(table, viable, inputs, limit, |r| {
            pt * features[r].price_input + eot * features[r].price_output
        })
    } else {
        rank_by(table, viable, inputs, limit, |r| {
            pt * features[r].token_ratio * features[r].price_input + eot * features[r].price_output
        })
    }
}

/// [`rank_top`] with the expected cost of a row given by `cost` (monomorphised per rule).
#[inline]
fn rank_by(
    table: &CandidateTable,
    viable: &[u32],
    inputs: &ScoreInputs,
    limit: Option<usize>,
    cost: impl Fn(usize) -> f64,
) -> Ranking {
    let features = table.score_rows();
    let quality = table.quality_column(inputs.task);
    let quality_of = |r: usize| quality.map_or(0.0, |q| q[r]);
    let price_rank = table.price_ranks();

    // Pass 1: the range of each feature over the viable rows.
    let mut scales = [
        Scale::new(Better::Lower),
        Scale::new(Better::Lower),
        Scale::new(Better::Higher),
        Scale::new(Better::Higher),
        Scale::new(Better::Higher),
    ];
    // In blocks: gather a feature's values into a small buffer, then work on the buffer
    // (branch-free, so it vectorises).
    let mut values = [0.0; BLOCK];
    // A macro, not a closure, so that each gather is inlined with its column.
    macro_rules! gather {
        ($block:expr, |$r:ident| $value:expr) => {{
            for (value, &row) in values.iter_mut().zip($block) {
                let $r = row as usize;
                *value = $value;
            }
            &values[..$block.len()]
        }};
    }
    for block in viable.chunks(BLOCK) {
        scales[0].see_all(gather!(block, |r| cost(r)));
        if !inputs.cheapest {
            scales[1].see_all(gather!(block, |r| features[r].ttft_ms));
            scales[2].see_all(gather!(block, |r| features[r].throughput_tps));
            scales[3].see_all(gather!(block, |r| features[r].success_rate));
            scales[4].see_all(gather!(block, |r| quality_of(r)));
        }
    }

    // Pass 2: one packed key per row, the score computed in place.
    let weights = inputs.weights.get();
    let mut keys: Vec<Key> = Vec::with_capacity(viable.len());
    if inputs.cheapest {
        keys.extend(viable.iter().map(|&row| Key {
            primary: cost(row as usize),
            price_rank: price_rank[row as usize],
            row,
        }));
    } else {
        // Feature by feature, the order of a plain sum (which starts at -0.0).
        let [cost_scale, ttft, throughput, success, quality_scale] = scales;
        for block in viable.chunks(BLOCK) {
            let mut scores = [-0.0; BLOCK];
            let scores = &mut scores[..block.len()];
            cost_scale.accumulate(weights[0], gather!(block, |r| cost(r)), scores);
            ttft.accumulate(weights[1], gather!(block, |r| features[r].ttft_ms), scores);
            throughput.accumulate(
                weights[2],
                gather!(block, |r| features[r].throughput_tps),
                scores,
            );
            success.accumulate(
                weights[3],
                gather!(block, |r| features[r].success_rate),
                scores,
            );
            quality_scale.accumulate(weights[4], gather!(block, |r| quality_of(r)), scores);
            keys.extend(block.iter().zip(scores.iter()).map(|(&row, &score)| Key {
                primary: -score,
                price_rank: price_rank[row as usize],
                row,
            }));
        }
    }

    let order = best_first(&keys, limit.unwrap_or(usize::MAX));
    let keys: Vec<Key> = order.iter().map(|&i| keys[i]).collect();

    let cost_scale = scales[0];
    Ranking {
        rows: keys.iter().map(|key| key.row as usize).collect(),
        scores: keys
            .iter()
            .map(|key| {
                if inputs.cheapest {
                    cost_scale.apply(key.primary)
                } else {
                    -key.primary
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_normalised_and_validated() {
        let w = Weights::new([2.0, 2.0, 0.0, 0.0, 0.0]).unwrap().get();
        assert!((w[0] - 0.5).abs() < 1e-12 && (w[1] - 0.5).abs() < 1e-12);
        assert!(Weights::new([0.0; 5]).is_err());
        assert!(Weights::new([-1.0, 1.0, 0.0, 0.0, 0.0]).is_err());
        assert!(Weights::new([f64::NAN, 1.0, 0.0, 0.0, 0.0]).is_err());
        assert!(Weights::new([f64::INFINITY, 1.0, 0.0, 0.0, 0.0]).is_err());
    }

    #[test]
    fn normalise_handles_equal_and_infinite() {
        assert_eq!(normalise(&[3.0, 3.0], Better::Lower), vec![1.0, 1.0]);
        assert_eq!(
            normalise(&[1.0, 3.0, 2.0], Better::Lower),
            vec![1.0, 0.0, 0.5]
        );
        assert_eq!(normalise(&[1.0, 3.0], Better::Higher), vec![0.0, 1.0]);
        assert_eq!(
            normalise(&[1.0, f64::INFINITY, 3.0], Better::Lower),
            vec![1.0, 0.0, 0.0]
        );
        assert!(normalise(&[], Better::Higher).is_empty());
    }
}
