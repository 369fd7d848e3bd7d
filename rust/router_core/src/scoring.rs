//! Scoring of viable candidates: min-max normalised features, weighted sum, stable ranking.

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

/// Min-max normalise to [0, 1], 1 = best. All-equal features give everyone 1.0. Infinite
/// values (e.g. unknown TTFT) sit at their end of the scale without stretching it.
fn normalise(values: &[f64], better: Better) -> Vec<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let range = hi - lo;
    values
        .iter()
        .map(|&v| {
            let position = if v.is_nan() {
                return 0.0;
            } else if v == f64::INFINITY {
                1.0
            } else if v == f64::NEG_INFINITY {
                0.0
            } else if range > 0.0 && range.is_finite() {
                (v - lo) / range
            } else {
                return 1.0;
            };
            match better {
                Better::Higher => position,
                Better::Lower => 1.0 - position,
            }
        })
        .collect()
}

/// Score and rank `viable` rows. Ties break by lower blended price, then lower row index.
pub fn rank(table: &CandidateTable, viable: &[usize], inputs: &ScoreInputs) -> Ranking {
    let cols = table.columns();
    let cost: Vec<f64> = viable
        .iter()
        .map(|&r| table.expected_cost(r, inputs.prompt_tokens, inputs.expected_output_tokens))
        .collect();
    let cost_score = normalise(&cost, Better::Lower);

    let scores: Vec<f64> = if inputs.cheapest {
        cost_score
    } else {
        let pick = |column: &[f64]| viable.iter().map(|&r| column[r]).collect::<Vec<f64>>();
        let quality: Vec<f64> = viable
            .iter()
            .map(|&r| table.quality(r, inputs.task))
            .collect();
        let features = [
            cost_score,
            normalise(&pick(&cols.ttft_ms), Better::Lower),
            normalise(&pick(&cols.throughput_tps), Better::Higher),
            normalise(&pick(&cols.success_rate), Better::Higher),
            normalise(&quality, Better::Higher),
        ];
        let w = inputs.weights.get();
        (0..viable.len())
            .map(|i| features.iter().zip(w).map(|(f, w)| w * f[i]).sum())
            .collect()
    };

    let mut order: Vec<usize> = (0..viable.len()).collect();
    let primary = |a: usize, b: usize| -> Ordering {
        if inputs.cheapest {
            cost[a].total_cmp(&cost[b])
        } else {
            scores[b].total_cmp(&scores[a])
        }
    };
    order.sort_by(|&a, &b| {
        primary(a, b)
            .then_with(|| {
                table
                    .blended_price(viable[a])
                    .total_cmp(&table.blended_price(viable[b]))
            })
            .then_with(|| viable[a].cmp(&viable[b]))
    });
    Ranking {
        rows: order.iter().map(|&i| viable[i]).collect(),
        scores: order.iter().map(|&i| scores[i]).collect(),
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
