//! Upstream Gemini `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk` SSE.
//!
//! Every event is one `GenerateContentResponse`. The first chunk carries `delta.role`; text
//! parts become `content` deltas (`reasoning_content` when the part is a `thought`), and each
//! `functionCall` part becomes one complete tool call (Gemini sends calls whole, never in
//! fragments) with the upstream `id` or a generated `call_<n>`. `finishReason` becomes the
//! OpenAI `finish_reason` (`tool_calls` when the answer called a tool). Usage is taken from
//! the last `usageMetadata` and kept, never emitted, like [`crate::StreamRelay`].
//!
//! Gemini has no `[DONE]`: `done` is set by [`GeminiStreamRelay::finish`] at the end of the
//! stream when a `finishReason` was seen. An `{"error": …}` event is kept, not forwarded.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::CowStr;
use super::openai::{ChunkWriter, DeltaOut, Str};
use crate::relay::{RelayState, Usage};
use crate::sse::{SseEventRef, SseParser};

/// Gemini `finishReason` → OpenAI `finish_reason`; `None` for "not finished yet".
pub fn gemini_finish_reason(reason: &str, called_tool: bool) -> Option<&'static str> {
    Some(match reason {
        "" | "FINISH_REASON_UNSPECIFIED" => return None,
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called_tool => "tool_calls",
        // STOP, MALFORMED_FUNCTION_CALL, OTHER, LANGUAGE and anything newer
        _ => "stop",
    })
}

type Text<'a> = Option<CowStr<'a>>;

#[derive(Deserialize)]
struct RawCall<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    name: Text<'a>,
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPart<'a> {
    #[serde(borrow, default)]
    text: Text<'a>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(borrow, default)]
    function_call: Option<RawCall<'a>>,
}

#[derive(Deserialize)]
struct RawContent<'a> {
    #[serde(borrow, default)]
    parts: Option<Vec<RawPart<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCandidate<'a> {
    #[serde(borrow, default)]
    content: Option<RawContent<'a>>,
    #[serde(borrow, default)]
    finish_reason: Text<'a>,
}

// Field names follow Gemini's `usageMetadata`.
#[allow(clippy::struct_field_names)]
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFeedback<'a> {
    #[serde(borrow, default)]
    block_reason: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResponse<'a> {
    #[serde(borrow, default)]
    candidates: Option<Vec<RawCandidate<'a>>>,
    #[serde(default)]
    usage_metadata: Option<RawUsage>,
    #[serde(borrow, default)]
    prompt_feedback: Option<RawFeedback<'a>>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Upstream Gemini SSE bytes in, OpenAI chunk bytes out.
#[derive(Debug, Clone)]
pub struct GeminiStreamRelay {
    parser: SseParser,
    inner: Translator,
}

#[derive(Debug, Clone)]
struct Translator {
    writer: ChunkWriter,
    state: RelayState,
    role_sent: bool,
    next_tool: u64,
    /// Reused buffer for generated tool-call ids.
    id_buf: String,
}

impl GeminiStreamRelay {
    /// Chunks are emitted with this `id`, `created` and `model`.
    pub fn new(model: &str, chunk_id: &str, created: i64) -> Self {
        Self {
            parser: SseParser::new(),
            inner: Translator {
                writer: ChunkWriter::new(chunk_id, created, model),
                state: RelayState {
                    chunk_id: Some(chunk_id.to_owned()),
                    created: Some(created),
                    ..RelayState::default()
                },
                role_sent: false,
                next_tool: 0,
                id_buf: String::new(),
            },
        }
    }

    /// What was learned so far; `done` is only set by [`Self::finish`].
    pub fn state(&self) -> &RelayState {
        &self.inner.state
    }

    /// Consume one upstream read, appending the client bytes it completes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Self { parser, inner } = self;
        parser.feed_with(input, |event| inner.event(&event, out));
    }

    /// End of stream: flush a final event that lacked its blank line, and mark the stream
    /// done when a `finishReason` was seen (Gemini sends no terminator of its own).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let Self { parser, inner } = self;
        parser.finish_with(|event| inner.event(&event, out));
        if inner.state.finish_reason.is_some() && inner.state.error.is_none() {
            inner.state.done = true;
        }
    }
}

impl Translator {
    fn event(&mut self, sse: &SseEventRef<'_>, out: &mut Vec<u8>) {
        let data = sse.data.trim();
        if self.state.halted() || data.is_empty() {
            return; // see `RelayState::halted`; an empty event is a keep-alive
        }
        if data == "[DONE]" {
            return; // not Gemini's, but harmless from OpenAI-style proxies
        }
        let parsed = if data.starts_with('{') {
            serde_json::from_str::<RawResponse<'_>>(data).ok()
        } else {
            None
        };
        let Some(response) = parsed else {
            self.state.malformed += 1;
            if sse.event == Some("error") {
                let text = serde_json::json!({ "error": { "message": data } }).to_string();
                self.state.error.get_or_insert(text);
            }
            return;
        };
        if response.error.is_some() {
            self.state.error.get_or_insert_with(|| data.to_owned());
            return;
        }
        if let Some(usage) = &response.usage_metadata {
            self.usage(usage);
        }
        let mut finish: Option<&'static str> = None;
        if let Some(candidate) = response.candidates.and_then(|c| c.into_iter().next()) {
            let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
            for part in parts {
                self.part(part, out);
            }
            if let Some(reason) = candidate.finish_reason {
                finish = gemini_finish_reason(&reason.0, self.next_tool > 0);
            }
        } else if let Some(reason) = response.prompt_feedback.and_then(|f| f.block_reason) {
            if reason.0 != "BLOCK_REASON_UNSPECIFIED" {
                finish = Some("content_filter");
            }
        }
        if let Some(finish) = finish {
            if self.state.finish_reason.is_none() {
                self.state.finish_reason = Some(finish.to_owned());
                self.emit(out, DeltaOut::Empty, Some(finish));
            }
        }
    }

    fn usage(&mut self, usage: &RawUsage) {
        let thoughts = usage.thoughts_token_count.unwrap_or(0);
        self.state.usage = Some(Usage {
            prompt_tokens: usage.prompt_token_count.unwrap_or(0),
            completion_tokens: usage
                .candidates_token_count
                .unwrap_or(0)
                .saturating_add(thoughts),
            cached_tokens: usage.cached_content_token_count.unwrap_or(0),
            reasoning_tokens: thoughts,
        });
    }

    fn part(&mut self, part: RawPart<'_>, out: &mut Vec<u8>) {
        if let Some(call) = part.function_call {
            let Some(name) = call.name else {
                self.state.malformed += 1;
                return;
            };
            let index = self.next_tool;
            self.next_tool += 1;
            self.id_buf.clear();
            match call.id {
                Some(id) if !id.0.is_empty() => self.id_buf.push_str(&id.0),
                _ => {
                    self.id_buf.push_str("call_");
                    self.id_buf.push_str(&index.to_string());
                }
            }
            let arguments = call.args.map_or("{}", RawValue::get);
            self.state.content_chars += arguments.chars().count() as u64;
            let id = std::mem::take(&mut self.id_buf);
            self.emit(
                out,
                DeltaOut::ToolStart {
                    index,
                    id: &id,
                    name: &name.0,
                    arguments,
                },
                None,
            );
            self.id_buf = id;
            return;
        }
        if let Some(text) = part.text {
            let chars = text.0.chars().count() as u64;
            if chars == 0 {
                return;
            }
            self.state.content_chars += chars;
            let text = Str::Plain(&text.0);
            let delta = if part.thought == Some(true) {
                DeltaOut::Reasoning(text)
            } else {
                DeltaOut::Content(text)
            };
            self.emit(out, delta, None);
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, delta: DeltaOut<'_>, finish: Option<&str>) {
        if !self.role_sent {
            self.role_sent = true;
            self.state.chunks += 1;
            self.writer.write(out, DeltaOut::Role, None);
        }
        self.state.chunks += 1;
        self.writer.write(out, delta, finish);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_parts(parts: &[&str]) -> (GeminiStreamRelay, Vec<serde_json::Value>) {
        let mut relay = GeminiStreamRelay::new("served", "chatcmpl-g", 7);
        let mut out = Vec::new();
        for p in parts {
            relay.feed(p.as_bytes(), &mut out);
        }
        relay.finish(&mut out);
        let text = String::from_utf8(out).unwrap();
        let chunks = text
            .split("\n\n")
            .filter(|s| !s.is_empty())
            .map(|s| serde_json::from_str(s.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        (relay, chunks)
    }

    fn run(input: &str) -> (GeminiStreamRelay, Vec<serde_json::Value>) {
        run_parts(&[input])
    }

    fn ev(data: &str) -> String {
        format!("data: {data}\r\n\r\n")
    }

    fn delta(chunk: &serde_json::Value) -> &serde_json::Value {
        &chunk["choices"][0]["delta"]
    }

    const USAGE: &str = r#""usageMetadata":{"promptTokenCount":11,"candidatesTokenCount":5,"totalTokenCount":20,"cachedContentTokenCount":3,"thoughtsTokenCount":4}"#;

    #[test]
    fn text_stream_with_finish_and_usage() {
        let input = ev(
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hé"}]}}],"usageMetadata":{"promptTokenCount":11}}"#,
        ) + &ev(&format!(
            r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"text":" there\n"}}]}},"finishReason":"STOP"}}],{USAGE}}}"#
        ));
        let (r, chunks) = run(&input);
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0]["id"], "chatcmpl-g");
        assert_eq!(chunks[0]["created"], 7);
        assert_eq!(chunks[0]["model"], "served");
        assert_eq!(delta(&chunks[0])["role"], "assistant");
        assert_eq!(delta(&chunks[1]), &serde_json::json!({"content": "Hé"}));
        assert_eq!(
            delta(&chunks[2]),
            &serde_json::json!({"content": " there\n"})
        );
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        let s = r.state();
        assert!(s.done);
        assert_eq!(s.finish_reason.as_deref(), Some("stop"));
        let u = s.usage.unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.cached_tokens,
                u.reasoning_tokens
            ),
            (11, 9, 3, 4)
        );
        assert_eq!(s.content_chars, 9);
        assert_eq!(s.malformed, 0);
    }

    #[test]
    fn split_anywhere_gives_same_output() {
        let input = ev(
            r#"{"candidates":[{"content":{"parts":[{"text":"abc"}]},"finishReason":"MAX_TOKENS"}]}"#,
        );
        let (_, whole) = run(&input);
        for cut in 1..input.len() {
            let (a, b) = input.split_at(cut);
            let (r, parts) = run_parts(&[a, b]);
            assert_eq!(parts, whole, "cut at {cut}");
            assert_eq!(r.state().finish_reason.as_deref(), Some("length"));
        }
    }

    #[test]
    fn thoughts_become_reasoning_content() {
        let input = ev(
            r#"{"candidates":[{"content":{"parts":[{"text":"hmm","thought":true},{"text":"ok"}]}}]}"#,
        );
        let (r, chunks) = run(&input);
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            delta(&chunks[1]),
            &serde_json::json!({"reasoning_content": "hmm"})
        );
        assert_eq!(delta(&chunks[2]), &serde_json::json!({"content": "ok"}));
        assert!(!r.state().done, "no finishReason: not done");
    }

    #[test]
    fn function_calls_become_numbered_tool_calls() {
        let input = ev(
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"get","args":{"q":"a \"b\""}}},{"functionCall":{"id":"up_1","name":"put","args":{}}}]},"finishReason":"STOP"}]}"#,
        );
        let (r, chunks) = run(&input);
        assert_eq!(chunks.len(), 4);
        assert_eq!(
            delta(&chunks[1]),
            &serde_json::json!({"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
                "function": {"name": "get", "arguments": "{\"q\":\"a \\\"b\\\"\"}"}}]})
        );
        let second = &delta(&chunks[2])["tool_calls"][0];
        assert_eq!(
            (&second["index"], &second["id"]),
            (&serde_json::json!(1), &serde_json::json!("up_1"))
        );
        assert_eq!(second["function"]["arguments"], "{}");
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(r.state().finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn finish_reason_mapping() {
        let cases = [
            ("STOP", false, Some("stop")),
            ("STOP", true, Some("tool_calls")),
            ("MAX_TOKENS", true, Some("length")),
            ("SAFETY", false, Some("content_filter")),
            ("RECITATION", false, Some("content_filter")),
            ("OTHER", false, Some("stop")),
            ("FINISH_REASON_UNSPECIFIED", false, None),
        ];
        for (reason, tool, expected) in cases {
            assert_eq!(gemini_finish_reason(reason, tool), expected, "{reason}");
        }
    }

    #[test]
    fn blocked_prompt_is_content_filter() {
        let (r, chunks) = run(&ev(
            r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":4}}"#,
        ));
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "content_filter");
        assert!(r.state().done);
        assert_eq!(r.state().usage.unwrap().prompt_tokens, 4);
    }

    #[test]
    fn error_kept() {
        let input = ev(r#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#)
            + &ev(r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#)
            + &ev(r#"{"candidates":[{"content":{"parts":[{"text":"after"}]}}]}"#);
        let (r, chunks) = run(&input);
        assert_eq!(chunks.len(), 2); // role, "x"; nothing after the error
        let s = r.state();
        assert_eq!(
            s.error.as_deref(),
            Some(r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#)
        );
        assert!(!s.done);
    }

    #[test]
    fn a_malformed_event_halts_the_stream() {
        for bad in [
            String::from("data: {not json\n\n"),
            String::from("data: [1]\n\n"),
            ev(r#"{"candidates":[{"content":{"parts":[{"functionCall":{"args":{}}}]}}]}"#),
        ] {
            let input = ev(r#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#)
                + &bad
                + "data:\n\n"
                + &ev(r#"{"candidates":[{"content":{"parts":[{"text":"y"}]}}]}"#);
            let (r, chunks) = run(&input);
            assert_eq!(chunks.len(), 2, "{bad}"); // role, "x"; the hole ends it
            assert_eq!(r.state().malformed, 1);
            assert!(r.state().halted());
        }
    }

    #[test]
    fn end_without_finish_is_not_done() {
        let (r, _) = run(&ev(
            r#"{"candidates":[{"content":{"parts":[{"text":"cut"}]}}]}"#,
        ));
        assert!(!r.state().done);
        assert_eq!(r.state().finish_reason, None);
    }
}
