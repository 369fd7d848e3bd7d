//! The raw-byte depth scan agrees with a real parse: the depth of any JSON value, however
//! its strings are spelled, and `serde_json` accepts every body the limit lets through.

use proptest::prelude::*;
use router_core::{json_depth_exceeds, MAX_JSON_DEPTH};
use serde_json::Value;

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn json() -> impl Strategy<Value = Value> {
    // Strings full of brackets, quotes and backslashes: what the scan must skip.
    let text = "[\\[\\]{}\"\\\\a-z ]{0,8}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(12, 64, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text, inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn scan_matches_the_parsed_depth(value in json(), slack in 0usize..3) {
        let body = serde_json::to_vec(&value).unwrap();
        let d = depth(&value);
        prop_assert!(!json_depth_exceeds(&body, d));
        if d > 0 {
            prop_assert!(json_depth_exceeds(&body, d - 1));
        }
        prop_assert_eq!(json_depth_exceeds(&body, d + slack), false);
    }

    #[test]
    fn serde_parses_every_body_within_the_limit(levels in 1usize..=MAX_JSON_DEPTH) {
        let body = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        prop_assert!(!json_depth_exceeds(body.as_bytes(), MAX_JSON_DEPTH));
        prop_assert!(serde_json::from_str::<Value>(&body).is_ok());
    }

    #[test]
    fn any_bytes_are_scanned_without_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = json_depth_exceeds(&body, 4);
    }
}

#[test]
fn one_past_the_limit_is_refused() {
    let body = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH + 1),
        "]".repeat(MAX_JSON_DEPTH + 1)
    );
    assert!(json_depth_exceeds(body.as_bytes(), MAX_JSON_DEPTH));
}
