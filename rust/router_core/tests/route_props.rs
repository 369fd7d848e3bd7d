//! Properties of filtering and ranking against an independent reference filter.

use proptest::prelude::*;
use router_core::candidates::first_failed;
use router_core::route::{route_with, RouteOptions};
use router_core::{
    filter_explained, route, route_explained, CandidateTable, Columns, Constraints, RouteRequest,
    Weights, CONSTRAINT_NAMES,
};

const IDS: i32 = 4;

/// Per-row token ratios: none (1.0 everywhere), the catalog's family ratios, or any in [1, 3].
fn ratios(rows: usize) -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(
            prop_oneof![Just(1.0), Just(1.15), Just(1.25), Just(1.3), 1.0..3.0f64],
            rows,
        ),
    ]
}

fn table_strategy() -> impl Strategy<Value = CandidateTable> {
    (0usize..24, 1usize..3).prop_flat_map(|(rows, tasks)| {
        let ids = move || proptest::collection::vec(-1..IDS + 1, rows);
        let price = move || proptest::collection::vec(prop_oneof![Just(1.0), 0.0..20.0f64], rows);
        (
            (ids(), ids(), ids(), price(), price()),
            (
                proptest::collection::vec(0i64..4000, rows),
                proptest::collection::vec(0i64..2000, rows),
                proptest::collection::vec(0u32..8, rows),
                proptest::collection::vec(0u8..3, rows),
                proptest::collection::vec(1u8..3, rows),
            ),
            (
                proptest::collection::vec(prop_oneof![Just(100.0), 1.0..1000.0f64], rows),
                proptest::collection::vec(1.0..200.0f64, rows),
                proptest::collection::vec(0.0..=1.0f64, rows),
                proptest::collection::vec(any::<bool>(), rows),
                proptest::collection::vec(0.0..=1.0f64, rows * tasks),
            ),
            ratios(rows),
        )
            .prop_map(
                move |(
                    (model, provider, region, pi, po),
                    (cw, mo, caps, dp, ks),
                    (ttft, tps, sr, co, q),
                    token_ratio,
                )| {
                    CandidateTable::new(Columns {
                        model,
                        provider,
                        region,
                        price_cached: vec![0.0; pi.len()],
                        price_input: pi,
                        price_output: po,
                        context_window: cw,
                        max_output: mo,
                        capabilities: caps,
                        data_policy: dp,
                        key_source: ks,
                        ttft_ms: ttft,
                        throughput_tps: tps,
                        success_rate: sr,
                        circuit_open: co,
                        quality: q,
                        task_count: tasks,
                        token_ratio,
                    })
                    .expect("generated table is valid")
                },
            )
    })
}

fn mask() -> impl Strategy<Value = Option<Vec<bool>>> {
    proptest::option::of(proptest::collection::vec(
        prop_oneof![3 => Just(true), 1 => Just(false)],
        0..(IDS as usize + 1),
    ))
}

fn request_strategy() -> impl Strategy<Value = RouteRequest> {
    (
        (mask(), mask(), mask(), 0u32..8, 0u64..3000, 0u64..1500),
        (
            0u8..3,
            0u8..3,
            proptest::option::of(0.0..20.0f64),
            proptest::option::of(0.0..1.0f64),
        ),
        (
            proptest::option::of(0.0..1000.0f64),
            proptest::option::of(0.0..200.0f64),
            proptest::option::of(0.0..1.0f64),
        ),
        (
            [0.0..1.0f64, 0.0..1.0, 0.0..1.0, 0.0..1.0, 0.1..1.0],
            any::<bool>(),
            0u64..2000,
        ),
    )
        .prop_map(
            |(
                (mm, pm, rm, caps, pt, mot),
                (dp, ks, price, qf),
                (ttft, tps, sr),
                (w, cheapest, eot),
            )| {
                RouteRequest {
                    constraints: Constraints {
                        model_mask: mm,
                        provider_mask: pm,
                        region_mask: rm,
                        required_capabilities: caps,
                        prompt_tokens: pt,
                        max_output_tokens: mot,
                        min_data_policy: dp,
                        key_source: ks,
                        max_price_per_1m: price,
                        quality_floor: qf,
                        max_ttft_ms: ttft,
                        min_throughput_tps: tps,
                        min_success_rate: sr,
                        task: 0,
                    },
                    expected_output_tokens: eot,
                    weights: Weights::new(w).expect("positive weights"),
                    cheapest,
                }
            },
        )
}

fn id_allowed(mask: Option<&Vec<bool>>, id: i32) -> bool {
    match mask {
        None => true,
        Some(m) => id >= 0 && (id as usize) < m.len() && m[id as usize],
    }
}

/// Reference: the prompt tokens a row's family sees, ⌈counted × ratio⌉ (the count itself at
/// ratio 1).
fn family_prompt(prompt_tokens: u64, ratio: f64) -> i128 {
    if ratio > 1.0 {
        ((prompt_tokens as f64) * ratio).ceil() as i128
    } else {
        i128::from(prompt_tokens)
    }
}

/// Reference: which of the 14 constraints each row passes, written independently.
fn passes(t: &CandidateTable, c: &Constraints, row: usize) -> [bool; 14] {
    let col = t.columns();
    let blended = f64::midpoint(col.price_input[row], col.price_output[row]);
    let ratio = col.token_ratio.get(row).copied().unwrap_or(1.0);
    [
        id_allowed(c.model_mask.as_ref(), col.model[row]),
        id_allowed(c.provider_mask.as_ref(), col.provider[row]),
        c.key_source == 0 || col.key_source[row] == c.key_source,
        (col.capabilities[row] & c.required_capabilities) == c.required_capabilities,
        i128::from(col.context_window[row])
            >= family_prompt(c.prompt_tokens, ratio) + i128::from(c.max_output_tokens),
        c.max_output_tokens == 0
            || i128::from(col.max_output[row]) >= i128::from(c.max_output_tokens),
        id_allowed(c.region_mask.as_ref(), col.region[row]),
        col.data_policy[row] >= c.min_data_policy,
        c.max_price_per_1m.is_none_or(|m| blended <= m),
        c.quality_floor.is_none_or(|f| t.quality(row, c.task) >= f),
        c.max_ttft_ms.is_none_or(|m| col.ttft_ms[row] <= m),
        c.min_throughput_tps
            .is_none_or(|m| col.throughput_tps[row] >= m),
        c.min_success_rate
            .is_none_or(|m| col.success_rate[row] >= m),
        !col.circuit_open[row],
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn route_matches_reference(table in table_strategy(), req in request_strategy()) {
        let result = route(&table, &req).expect("valid request");
        let verdicts: Vec<[bool; 14]> = (0..table.len()).map(|r| passes(&table, &req.constraints, r)).collect();

        let mut viable: Vec<usize> = (0..table.len()).filter(|&r| verdicts[r].iter().all(|&p| p)).collect();
        let mut ranked = result.ranked.clone();
        ranked.sort_unstable();
        viable.sort_unstable();
        prop_assert_eq!(&ranked, &viable);
        prop_assert_eq!(result.candidates_viable, viable.len());
        prop_assert_eq!(result.candidates_total, verdicts.iter().filter(|v| v[0]).count());

        let reference_emptied = (0..14).find(|&k| verdicts.iter().all(|v| !v[..=k].iter().all(|&p| p)));
        prop_assert_eq!(result.emptied_by, reference_emptied.map(|k| CONSTRAINT_NAMES[k]));
        prop_assert_eq!(result.health_only, reference_emptied.is_some_and(|k| k >= 10));

        prop_assert_eq!(result.scores.len(), result.ranked.len());
        prop_assert!(result.scores.windows(2).all(|w| w[0] >= w[1]), "scores not sorted: {:?}", result.scores);
        prop_assert!(result.scores.iter().all(|s| (-1e-9..=1.0 + 1e-9).contains(s)));

        if req.cheapest {
            let cost = |r: usize| table.expected_cost(r, req.constraints.prompt_tokens, req.expected_output_tokens);
            if let Some(&first) = result.ranked.first() {
                prop_assert!(viable.iter().all(|&r| cost(first) <= cost(r)));
            }
        }
    }

    #[test]
    fn rejected_by_explains_every_row(table in table_strategy(), req in request_strategy()) {
        let plain = route(&table, &req).expect("valid request");
        prop_assert_eq!(plain.rejected_by.as_ref(), None);
        let explained = route_explained(&table, &req, true).expect("valid request");
        let rejected = explained.rejected_by.clone().expect("explain was asked for");
        prop_assert_eq!(rejected.len(), table.len());
        for (row, &code) in rejected.iter().enumerate() {
            let expected = first_failed(&table, &req.constraints, row).map_or(-1, |k| k as i8);
            prop_assert_eq!(code, expected, "row {}", row);
            // The reference agrees: passes everything before `code`, fails `code`.
            let verdicts = passes(&table, &req.constraints, row);
            match usize::try_from(code) {
                Ok(k) => {
                    prop_assert!(verdicts[..k].iter().all(|&p| p));
                    prop_assert!(!verdicts[k]);
                }
                Err(_) => prop_assert!(verdicts.iter().all(|&p| p)),
            }
        }
        let mut viable: Vec<usize> = (0..table.len()).filter(|&r| rejected[r] == -1).collect();
        let mut ranked = explained.ranked.clone();
        ranked.sort_unstable();
        viable.sort_unstable();
        prop_assert_eq!(ranked, viable);
        // Explaining changes nothing else.
        prop_assert_eq!(RouteResultWithout(explained), RouteResultWithout(plain));
    }

    #[test]
    fn scaling_weights_changes_nothing(
        table in table_strategy(),
        req in request_strategy(),
        raw in [0.0..1.0f64, 0.0..1.0, 0.0..1.0, 0.0..1.0, 0.1..1.0],
        exp in -3i32..4,
    ) {
        // Powers of two scale exactly, so the normalised weights must be bit-identical.
        let factor = 2f64.powi(exp);
        let base = RouteRequest { weights: Weights::new(raw).expect("positive"), ..req.clone() };
        let scaled = RouteRequest { weights: Weights::new(raw.map(|w| w * factor)).expect("positive"), ..req };
        prop_assert_eq!(base.weights, scaled.weights);
        prop_assert_eq!(route(&table, &scaled).expect("valid"), route(&table, &base).expect("valid"));
    }
}

/// Reference ranking, written independently: min-max normalised features over the viable
/// rows, the weighted sum in feature order, a stable sort by (score desc | cost asc), then
/// blended price, then row.
fn reference_ranking(t: &CandidateTable, req: &RouteRequest, viable: &[usize]) -> Vec<usize> {
    let col = t.columns();
    let c = &req.constraints;
    let cost: Vec<f64> = viable
        .iter()
        .map(|&r| {
            c.prompt_tokens as f64 * col.token_ratio[r] * col.price_input[r]
                + req.expected_output_tokens as f64 * col.price_output[r]
        })
        .collect();
    let norm = |values: &[f64], lower: bool| -> Vec<f64> {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        values
            .iter()
            .map(|&v| {
                let p = if hi > lo {
                    (v - lo) / (hi - lo)
                } else {
                    return 1.0;
                };
                if lower {
                    1.0 - p
                } else {
                    p
                }
            })
            .collect()
    };
    let pick = |f: &dyn Fn(usize) -> f64| viable.iter().map(|&r| f(r)).collect::<Vec<f64>>();
    let features = [
        norm(&cost, true),
        norm(&pick(&|r| col.ttft_ms[r]), true),
        norm(&pick(&|r| col.throughput_tps[r]), false),
        norm(&pick(&|r| col.success_rate[r]), false),
        norm(&pick(&|r| t.quality(r, c.task)), false),
    ];
    let w = req.weights.get();
    let score: Vec<f64> = (0..viable.len())
        .map(|i| (0..5).map(|f| w[f] * features[f][i]).sum())
        .collect();
    let blended = |r: usize| f64::midpoint(col.price_input[r], col.price_output[r]);
    let mut order: Vec<usize> = (0..viable.len()).collect();
    order.sort_by(|&a, &b| {
        let primary = if req.cheapest {
            cost[a].total_cmp(&cost[b])
        } else {
            score[b].total_cmp(&score[a])
        };
        primary
            .then(blended(viable[a]).total_cmp(&blended(viable[b])))
            .then(viable[a].cmp(&viable[b]))
    });
    order.iter().map(|&i| viable[i]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn ranking_matches_reference(table in table_strategy(), req in request_strategy()) {
        let result = route(&table, &req).expect("valid request");
        let mut viable = result.ranked.clone();
        viable.sort_unstable();
        prop_assert_eq!(result.ranked, reference_ranking(&table, &req, &viable));
    }

    #[test]
    fn limit_keeps_the_head_of_the_ranking(
        table in table_strategy(),
        req in request_strategy(),
        limit in 0usize..30,
        explain in any::<bool>(),
    ) {
        let full = route_explained(&table, &req, explain).expect("valid request");
        let options = RouteOptions { limit: Some(limit), explain, ..RouteOptions::default() };
        let limited = route_with(&table, &req, &options).expect("valid request");
        let k = limit.min(full.ranked.len());
        prop_assert_eq!(&limited.ranked[..], &full.ranked[..k]);
        prop_assert_eq!(&limited.scores[..], &full.scores[..k]);
        prop_assert_eq!(limited.candidates_viable, full.candidates_viable);
        prop_assert_eq!(limited.candidates_total, full.candidates_total);
        prop_assert_eq!(limited.emptied_by, full.emptied_by);
        prop_assert_eq!(limited.health_only, full.health_only);
        // The explanation does not depend on the limit.
        prop_assert_eq!(limited.rejected_by, full.rejected_by);
    }

    #[test]
    fn token_overrides_equal_a_rebuilt_request(
        table in table_strategy(),
        req in request_strategy(),
        prompt in proptest::option::of(0u64..3000),
        max_output in proptest::option::of(0u64..1500),
        expected in proptest::option::of(0u64..2000),
        explain in any::<bool>(),
    ) {
        let options = RouteOptions {
            prompt_tokens: prompt,
            max_output_tokens: max_output,
            expected_output_tokens: expected,
            explain,
            ..RouteOptions::default()
        };
        let overridden = route_with(&table, &req, &options).expect("valid request");
        let mut rebuilt = req.clone();
        rebuilt.constraints.prompt_tokens = prompt.unwrap_or(req.constraints.prompt_tokens);
        rebuilt.constraints.max_output_tokens =
            max_output.unwrap_or(req.constraints.max_output_tokens);
        rebuilt.expected_output_tokens = expected.unwrap_or(req.expected_output_tokens);
        prop_assert_eq!(overridden, route_explained(&table, &rebuilt, explain).expect("valid"));
    }

    #[test]
    fn a_quality_floor_override_equals_a_rebuilt_request(
        table in table_strategy(),
        req in request_strategy(),
        floor in proptest::option::of(0.0f64..1.0),
        explain in any::<bool>(),
    ) {
        let options = RouteOptions { quality_floor: floor, explain, ..RouteOptions::default() };
        let overridden = route_with(&table, &req, &options).expect("valid request");
        let mut rebuilt = req.clone();
        rebuilt.constraints.quality_floor = floor.or(req.constraints.quality_floor);
        prop_assert_eq!(overridden, route_explained(&table, &rebuilt, explain).expect("valid"));
    }
}

/// `table` with its token ratios replaced.
fn with_ratios(table: &CandidateTable, token_ratio: Vec<f64>) -> CandidateTable {
    CandidateTable::new(Columns {
        token_ratio,
        ..table.columns().clone()
    })
    .expect("valid ratios")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Ratio 1.0 on every row is the rule without ratios: the context window against
    /// prompt + output as counted, the cost of the prompt as counted.
    #[test]
    fn unit_ratios_are_the_unscaled_rule(table in table_strategy(), req in request_strategy()) {
        let ones = with_ratios(&table, vec![1.0; table.len()]);
        prop_assert!(ones.uniform_token_ratio());
        prop_assert_eq!(&ones, &with_ratios(&table, Vec::new()));
        let c = &req.constraints;
        let col = ones.columns();
        for row in 0..ones.len() {
            let unscaled = i128::from(col.context_window[row])
                >= i128::from(c.prompt_tokens) + i128::from(c.max_output_tokens);
            prop_assert_eq!(passes(&ones, c, row)[4], unscaled);
            let cost = c.prompt_tokens as f64 * col.price_input[row]
                + req.expected_output_tokens as f64 * col.price_output[row];
            prop_assert_eq!(
                ones.expected_cost(row, c.prompt_tokens, req.expected_output_tokens).to_bits(),
                cost.to_bits()
            );
        }
        let result = route_explained(&ones, &req, true).expect("valid request");
        let mut viable: Vec<usize> = (0..ones.len())
            .filter(|&r| passes(&ones, c, r).iter().all(|&p| p))
            .collect();
        viable.sort_unstable();
        prop_assert_eq!(&result.ranked, &reference_ranking(&ones, &req, &viable));
    }

    /// Raising one row's ratio can only make that row fail the context window sooner: no
    /// other verdict changes, and nothing becomes viable.
    #[test]
    fn a_higher_ratio_only_fails_the_context_window_sooner(
        table in table_strategy(),
        req in request_strategy(),
        pick in any::<prop::sample::Index>(),
        raise in prop_oneof![Just(0.15), Just(0.3), 0.0..2.0f64],
    ) {
        prop_assume!(!table.is_empty());
        let row = pick.index(table.len());
        let mut ratios = table.columns().token_ratio.clone();
        ratios[row] += raise;
        let raised = with_ratios(&table, ratios);
        let (before, before_by) = filter_explained(&table, &req.constraints);
        let (after, after_by) = filter_explained(&raised, &req.constraints);
        prop_assert!(after.viable.iter().all(|r| before.viable.contains(r)));
        for r in 0..table.len() {
            let (old, new) = (before_by[r], after_by[r]);
            if r != row || old == new {
                prop_assert_eq!(old, new, "row {}", r);
            } else {
                // Only the context window (index 4) may newly reject it, and only where it
                // passed every earlier constraint.
                prop_assert_eq!(new, 4, "row {} went from {} to {}", r, old, new);
                prop_assert!(old == -1 || old > 4, "row {} went from {}", r, old);
            }
            let (p_old, p_new) = (passes(&table, &req.constraints, r), passes(&raised, &req.constraints, r));
            prop_assert!(!p_new[4] || p_old[4], "context verdict improved for row {}", r);
        }
    }
}

/// A route result compared without its explanation.
#[derive(Debug)]
struct RouteResultWithout(router_core::RouteResult);

impl PartialEq for RouteResultWithout {
    fn eq(&self, other: &Self) -> bool {
        let strip = |r: &router_core::RouteResult| router_core::RouteResult {
            rejected_by: None,
            ..r.clone()
        };
        strip(&self.0) == strip(&other.0)
    }
}

#[test]
fn ties_break_by_price_then_row() {
    let rows = 3;
    let table = CandidateTable::new(Columns {
        model: vec![0; rows],
        provider: vec![0; rows],
        region: vec![0; rows],
        price_input: vec![2.0, 1.0, 1.0],
        price_output: vec![2.0, 2.0, 3.0],
        price_cached: vec![0.0; rows],
        context_window: vec![1000; rows],
        max_output: vec![100; rows],
        capabilities: vec![0; rows],
        data_policy: vec![0; rows],
        key_source: vec![1; rows],
        ttft_ms: vec![100.0; rows],
        throughput_tps: vec![50.0; rows],
        success_rate: vec![1.0; rows],
        circuit_open: vec![false; rows],
        quality: vec![0.5; rows],
        task_count: 1,
        token_ratio: Vec::new(),
    })
    .unwrap();
    // Only ttft weighted and all equal: every score is the same, so blended price (2, 1.5,
    // 2) decides, then row index.
    let req = RouteRequest {
        weights: Weights::new([0.0, 1.0, 0.0, 0.0, 0.0]).unwrap(),
        ..RouteRequest::default()
    };
    assert_eq!(route(&table, &req).unwrap().ranked, vec![1, 0, 2]);
    // Expected costs 4, 3, 4 for one prompt and one output token.
    let cheapest = RouteRequest {
        cheapest: true,
        expected_output_tokens: 1,
        constraints: Constraints {
            prompt_tokens: 1,
            ..Constraints::default()
        },
        ..RouteRequest::default()
    };
    assert_eq!(route(&table, &cheapest).unwrap().ranked, vec![1, 0, 2]);
}

#[test]
fn empty_table_is_emptied_by_model() {
    let table = CandidateTable::new(Columns {
        task_count: 1,
        ..Columns::default()
    })
    .unwrap();
    let result = route(&table, &RouteRequest::default()).unwrap();
    assert_eq!(result.emptied_by, Some("model"));
    assert!(!result.health_only);
}

#[test]
fn mismatched_columns_are_rejected() {
    let err = CandidateTable::new(Columns {
        model: vec![1],
        task_count: 1,
        ..Columns::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("provider"), "{err}");
}

fn ratio_table(context_window: Vec<i64>, token_ratio: Vec<f64>) -> Result<CandidateTable, String> {
    let rows = context_window.len();
    CandidateTable::new(Columns {
        model: vec![0; rows],
        provider: vec![0; rows],
        region: vec![0; rows],
        price_input: vec![1.0; rows],
        price_output: vec![1.0; rows],
        price_cached: vec![0.0; rows],
        context_window,
        max_output: vec![1000; rows],
        capabilities: vec![0; rows],
        data_policy: vec![0; rows],
        key_source: vec![1; rows],
        ttft_ms: vec![100.0; rows],
        throughput_tps: vec![50.0; rows],
        success_rate: vec![1.0; rows],
        circuit_open: vec![false; rows],
        quality: vec![0.5; rows],
        task_count: 1,
        token_ratio,
    })
    .map_err(|e| e.to_string())
}

#[test]
fn context_window_uses_the_rounded_up_family_prompt() {
    // 700 counted tokens are ⌈910⌉ = 910 Claude tokens, ⌈804.9999999999999⌉ = 805 at 1.15.
    assert_eq!(router_core::scaled_prompt_tokens(700, 1.3), 910);
    assert_eq!(router_core::scaled_prompt_tokens(700, 1.15), 805);
    assert_eq!(router_core::scaled_prompt_tokens(3, 1.3), 4);
    assert_eq!(router_core::scaled_prompt_tokens(700, 1.0), 700);
    assert_eq!(router_core::scaled_prompt_tokens(0, 1.3), 0);
    assert_eq!(router_core::scaled_prompt_tokens(u64::MAX, 2.0), u64::MAX);
    let table = ratio_table(vec![1000, 1000, 1000], vec![1.0, 1.15, 1.3]).unwrap();
    let request = |prompt_tokens, max_output_tokens| RouteRequest {
        constraints: Constraints {
            prompt_tokens,
            max_output_tokens,
            ..Constraints::default()
        },
        ..RouteRequest::default()
    };
    let viable = |req: &RouteRequest| {
        let mut rows = route(&table, req).unwrap().ranked;
        rows.sort_unstable();
        rows
    };
    assert_eq!(viable(&request(700, 90)), vec![0, 1, 2]);
    assert_eq!(viable(&request(700, 91)), vec![0, 1]);
    assert_eq!(viable(&request(700, 195)), vec![0, 1]);
    assert_eq!(viable(&request(700, 196)), vec![0]);
    assert_eq!(viable(&request(0, 1000)), vec![0, 1, 2]);
    let explained = route_explained(&table, &request(700, 196), true).unwrap();
    assert_eq!(explained.rejected_by, Some(vec![-1, 4, 4]));
    // Cost: the prompt scaled, unrounded.
    assert_eq!(
        table.expected_cost(2, 100, 10).to_bits(),
        (100.0 * 1.3 + 10.0f64).to_bits()
    );
}

#[test]
fn bad_token_ratios_are_rejected() {
    for bad in [0.5, 0.0, -1.0, f64::NAN, f64::INFINITY, 0.999_999] {
        let err = ratio_table(vec![1000, 1000], vec![1.0, bad]).unwrap_err();
        assert!(
            err.contains("token_ratio") && err.contains("row 1"),
            "{err}"
        );
    }
    let err = ratio_table(vec![1000, 1000], vec![1.0]).unwrap_err();
    assert!(err.contains("token_ratio"), "{err}");
    assert!(ratio_table(vec![1000], vec![1.0])
        .unwrap()
        .uniform_token_ratio());
    assert!(!ratio_table(vec![1000], vec![1.25])
        .unwrap()
        .uniform_token_ratio());
}
