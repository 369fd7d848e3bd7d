//! Properties of the prompt classifier: total on any text, bounded, monotone difficulty.

use proptest::prelude::*;
use router_core::task::{TaskSignals, SYSTEM_WINDOW, USER_WINDOW};
use router_core::{analyze, classify_text, TASKS};

/// Text mixing signal words, punctuation, digits and arbitrary Unicode.
fn prompt() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-z ]{0,12}",
        1 => any::<String>(),
        1 => "[0-9+*/=^ -]{1,8}",
        1 => prop::sample::select(vec![
            "```", "def ", "prove ", "extract ", "summarize ", "write a poem ", "\n- ",
            "must ", "why ", "step by step ", "\\frac", "$$", "tl;dr", "\n1. ",
        ]).prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn classification_is_total_and_bounded(text in prompt(), raw in any::<Vec<u8>>()) {
        let c = classify_text(&text);
        prop_assert!(c.task < TASKS.len());
        prop_assert!((0.0..=1.0).contains(&c.difficulty), "{}", c.difficulty);

        // Raw bytes (cut UTF-8 sequences included) and any flags.
        let mut signals = TaskSignals::default();
        signals.scan(&raw);
        for (image, json, tokens) in [(false, false, 0), (true, true, u64::MAX), (false, true, 7000)] {
            let c = signals.classify(image, json, tokens);
            prop_assert!(c.task < TASKS.len());
            prop_assert!((0.0..=1.0).contains(&c.difficulty));
        }
    }

    #[test]
    fn windows_never_panic(text in prompt(), budget in 0usize..64) {
        let mut signals = TaskSignals::default();
        prop_assert!(signals.scan_tail(&text, budget) <= budget);
        prop_assert!(signals.scan_head(&text, budget) <= budget);
        prop_assert!(signals.scan_tail(&text, USER_WINDOW) <= USER_WINDOW);
        prop_assert!(signals.scan_head(&text, SYSTEM_WINDOW) <= SYSTEM_WINDOW);
    }

    #[test]
    fn reasoning_markers_never_lower_difficulty(
        text in prompt(),
        marker in prop::sample::select(vec!["step by step", "prove", "optimize", "edge cases", "complexity", "why"]),
        system in prompt(),
    ) {
        let body = |user: &str| {
            serde_json::json!({"messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ]})
            .to_string()
        };
        let before = analyze(body(&text).as_bytes()).expect("valid body");
        let edited = format!("{text} {marker}");
        let after = analyze(body(&edited).as_bytes()).expect("valid body");
        prop_assert!(after.difficulty >= before.difficulty, "{} < {}", after.difficulty, before.difficulty);
        prop_assert!((0.0..=1.0).contains(&after.difficulty));

        let plain = classify_text(&text).difficulty;
        let appended = format!("{text} {marker}");
        prop_assert!(classify_text(&appended).difficulty >= plain);
    }
}
