//! The one JSON nesting limit every request body must respect, checked on the raw bytes.
//!
//! Python's decoders and the passthrough merge recurse once (or twice) per level and end in
//! `RecursionError` near 1000 levels; `serde_json` refuses more than 127. A byte scan before
//! any of them runs turns a too-deep body into a 400 instead (docs/behaviour.md, "Request
//! limits").

use memchr::memchr2;

/// Deepest nesting of arrays and objects a request body may have (the top-level object is
/// level 1). Below `serde_json`'s own limit, so the analyser parses every accepted body.
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether `body` opens more than `limit` arrays or objects at once, counting `[` and `{`
/// outside strings only. Not a validator: malformed JSON is left to the decoder, and the
/// scan stops at the first level past `limit`.
pub fn json_depth_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < body.len() {
        match body[i] {
            b'"' => i = string_end(body, i + 1),
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Index of the `"` closing the string whose contents start at `start` (or the body's end).
fn string_end(body: &[u8], mut start: usize) -> usize {
    while let Some(offset) = memchr2(b'"', b'\\', &body[start.min(body.len())..]) {
        let at = start + offset;
        if body[at] == b'"' {
            return at;
        }
        start = at + 2; // skip the escaped byte
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_containers_outside_strings() {
        assert!(!json_depth_exceeds(br#"{"a": [1, {"b": 2}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a": [1, {"b": 2}]}"#, 2));
        assert!(!json_depth_exceeds(br#"{"a": "[[[[{{{{"}"#, 1));
        assert!(!json_depth_exceeds(br#"{"a": "\"[[[["}"#, 1));
        assert!(!json_depth_exceeds(br#"{"a\\": 1}"#, 1));
        assert!(json_depth_exceeds(br#"{"a\\": [[1]]}"#, 2));
        assert!(!json_depth_exceeds(b"", 0));
        assert!(!json_depth_exceeds(b"\"\\", 0));
    }
}
