//! Continuing a broken stream on another attempt: what the client already has, and the
//! continuation's chunks rewritten so that the client sees one answer.
//!
//! Both work on the gateway's own client-bound `OpenAI` chunks (the output of any relay), so
//! one implementation serves every upstream wire format, and nothing here runs unless a stream
//! actually broke: the relays' hot path is untouched.
//!
//! - [`delivered`] reads the chunks the client received and returns the answer text so far,
//!   or why it cannot be continued from a prefill (a tool call, a refusal, reasoning with no
//!   answer text yet, several choices).
//! - [`Stitch`] rewrites a continuation attempt's chunks: the first attempt's `id` and
//!   `created`, no second `role`, no reasoning once answer text was delivered, and the text the
//!   continuation repeats (a prefill echoed back, or whitespace held back from it) skipped;
//!   chunks left with nothing to say are dropped.

use serde_json::{Map, Value};

use crate::sse::SseParser;
use crate::translate::openai::Chunk;

/// What the client has of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivered {
    /// Concatenated `delta.content` of every chunk.
    pub text: String,
    /// Why a prefill cannot continue it, if it cannot.
    pub obstacle: Option<&'static str>,
}

/// Read the client-bound chunk bytes of a stream (complete `data:` events).
pub fn delivered(client_bytes: &[u8]) -> Delivered {
    let mut out = Delivered::default();
    let mut reasoning = false;
    let mut parser = SseParser::new();
    let mut events = parser.feed(client_bytes);
    events.extend(parser.finish());
    for event in events {
        let Some(chunk) = Chunk::parse(event.data.trim()) else {
            continue;
        };
        let Some(choice) = chunk.choice else {
            continue;
        };
        if !choice.tool_calls.is_empty() {
            out.obstacle
                .get_or_insert("the answer broke during a tool call");
        }
        if choice.refusal.as_deref().is_some_and(|r| !r.is_empty()) {
            out.obstacle.get_or_insert("the answer was a refusal");
        }
        if choice.reasoning.as_deref().is_some_and(|r| !r.is_empty()) {
            reasoning = true;
        }
        if let Some(content) = choice.content {
            out.text.push_str(&content);
        }
    }
    if reasoning && out.text.is_empty() {
        out.obstacle
            .get_or_insert("the answer broke during the model's reasoning");
    }
    out
}

/// Rewrites a continuation attempt's client chunks into the first attempt's stream.
#[derive(Debug, Clone)]
pub struct Stitch {
    chunk_id: String,
    created: i64,
    /// Text the continuation is expected to start with, still to be skipped.
    skip: String,
    /// Drop `reasoning_content`: answer text was already delivered.
    drop_reasoning: bool,
    parser: SseParser,
}

impl Stitch {
    /// Chunks get `chunk_id` and `created`; content starting with `skip` has it removed.
    pub fn new(chunk_id: &str, created: i64, skip: &str, drop_reasoning: bool) -> Self {
        Self {
            chunk_id: chunk_id.to_owned(),
            created,
            skip: skip.to_owned(),
            drop_reasoning,
            parser: SseParser::new(),
        }
    }

    /// Text still expected (and to be skipped) at the start of the continuation.
    pub fn pending_skip(&self) -> &str {
        &self.skip
    }

    /// Consume client bytes of the continuation's relay; append the stitched bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for event in self.parser.feed(input) {
            self.event(&event.data, out);
        }
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(data.trim()) else {
            return; // the relays only emit chunk objects
        };
        chunk.insert("id".to_owned(), Value::from(self.chunk_id.as_str()));
        chunk.insert("created".to_owned(), Value::from(self.created));
        let keep = match chunk.get_mut("choices") {
            Some(Value::Array(choices)) => {
                choices.retain_mut(|choice| self.choice(choice));
                !choices.is_empty() || chunk.get("usage").is_some_and(|u| !u.is_null())
            }
            _ => true,
        };
        if keep {
            out.extend_from_slice(b"data: ");
            // Writing a `Value` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &Value::Object(chunk));
            out.extend_from_slice(b"\n\n");
        }
    }

    /// Rewrite one choice; false when nothing is left in it.
    fn choice(&mut self, choice: &mut Value) -> bool {
        let Some(choice) = choice.as_object_mut() else {
            return true;
        };
        let finished = choice
            .get("finish_reason")
            .is_some_and(|reason| !reason.is_null());
        let Some(Value::Object(delta)) = choice.get_mut("delta") else {
            return true;
        };
        delta.remove("role");
        if self.drop_reasoning {
            delta.remove("reasoning_content");
            delta.remove("reasoning");
        }
        if let Some(Value::String(content)) = delta.get_mut("content") {
            let rest = skip_prefix(&mut self.skip, content);
            if rest.is_empty() {
                delta.remove("content");
            } else {
                *content = rest;
            }
        } else if !delta_is_empty(delta) {
            self.skip.clear(); // something else came first: nothing is being repeated
        }
        finished || !delta_is_empty(delta)
    }
}

/// Remove from `text` the part of `skip` it starts with; once they differ, stop skipping.
fn skip_prefix(skip: &mut String, text: &str) -> String {
    if skip.is_empty() {
        return text.to_owned();
    }
    let common = skip
        .char_indices()
        .zip(text.chars())
        .take_while(|((_, a), b)| a == b)
        .last()
        .map_or(0, |((i, a), _)| i + a.len_utf8());
    if common == text.len() {
        skip.drain(..common);
        return String::new();
    }
    skip.clear();
    text[common..].to_owned()
}

fn delta_is_empty(delta: &Map<String, Value>) -> bool {
    delta.values().all(|v| match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: &str, finish: Option<&str>) -> String {
        let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
        format!(
            "data: {{\"id\":\"up-2\",\"created\":9,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    }

    fn stitched(stitch: &mut Stitch, input: &str) -> Vec<Value> {
        let mut out = Vec::new();
        stitch.feed(input.as_bytes(), &mut out);
        let text = String::from_utf8(out).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn delivered_reads_content_and_obstacles() {
        let bytes = chunk(r#"{"role":"assistant","content":""}"#, None)
            + &chunk(r#"{"content":"Hel"}"#, None)
            + &chunk(r#"{"content":"lo "}"#, None);
        let d = delivered(bytes.as_bytes());
        assert_eq!((d.text.as_str(), d.obstacle), ("Hello ", None));
        let tool = chunk(
            r#"{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{"}}]}"#,
            None,
        );
        assert!(delivered(tool.as_bytes()).obstacle.is_some());
        let thinking = chunk(r#"{"reasoning_content":"hmm"}"#, None);
        assert!(delivered(thinking.as_bytes()).obstacle.is_some());
        let after = thinking + &chunk(r#"{"content":"A"}"#, None);
        assert_eq!(delivered(after.as_bytes()).obstacle, None);
    }

    #[test]
    fn stitch_rewrites_ids_drops_role_and_skips_the_echo() {
        let mut s = Stitch::new("chatcmpl-1", 7, "Hello ", false);
        let out = stitched(
            &mut s,
            &(chunk(r#"{"role":"assistant","content":""}"#, None)
                + &chunk(r#"{"content":"Hel"}"#, None)
                + &chunk(r#"{"content":"lo wor"}"#, None)
                + &chunk(r#"{"content":"ld"}"#, Some("stop"))),
        );
        assert_eq!(out.len(), 2); // the role and the wholly repeated "Hel" are gone
        assert!(out
            .iter()
            .all(|c| c["id"] == "chatcmpl-1" && c["created"] == 7));
        let text: String = out
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "world");
        assert_eq!(out[1]["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn a_continuation_that_does_not_repeat_is_kept_whole() {
        let mut s = Stitch::new("c", 1, " ", false);
        let out = stitched(&mut s, &chunk(r#"{"content":"world"}"#, None));
        assert_eq!(out[0]["choices"][0]["delta"]["content"], "world");
        assert_eq!(s.pending_skip(), "");
    }

    #[test]
    fn skip_prefix_is_char_safe() {
        let mut skip = "héllo".to_owned();
        assert_eq!(skip_prefix(&mut skip, "hé"), "");
        assert_eq!(skip, "llo");
        assert_eq!(skip_prefix(&mut skip, "lxé"), "xé");
        assert_eq!(skip, "");
        let mut skip = "é".to_owned();
        assert_eq!(skip_prefix(&mut skip, "è!"), "è!");
    }

    proptest::proptest! {
        /// However the continuation is chunked, the client gets it with exactly the repeated
        /// part (a prefix of `skip` the answer starts with) removed, under the given id.
        #[test]
        fn stitched_text_is_the_answer_minus_what_it_repeats(
            answer in "[a é🙂\n\"]{0,24}",
            skip in "[a é🙂\n]{0,12}",
            cuts in proptest::collection::vec(0usize..40, 0..6),
        ) {
            let chars: Vec<char> = answer.chars().collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
            points.extend([0, chars.len()]);
            points.sort_unstable();
            points.dedup();
            let mut input = chunk(r#"{"role":"assistant","content":""}"#, None);
            for w in points.windows(2) {
                let piece: String = chars[w[0]..w[1]].iter().collect();
                let delta = serde_json::json!({ "content": piece }).to_string();
                input.push_str(&chunk(&delta, None));
            }
            input.push_str(&chunk("{}", Some("stop")));
            let mut s = Stitch::new("one", 3, &skip, false);
            let out = stitched(&mut s, &input);
            let text: String = out
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            // What a whole-answer skip removes: the longest common prefix, if it covers the
            // answer's start up to where they differ (or all of `skip`).
            let common: usize = skip
                .chars()
                .zip(answer.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a.len_utf8())
                .sum();
            proptest::prop_assert_eq!(text, &answer[common..]);
            proptest::prop_assert!(out.iter().all(|c| c["id"] == "one" && c["created"] == 3));
            proptest::prop_assert!(out.iter().all(|c| c["choices"][0]["delta"].get("role").is_none()));
        }
    }
}
