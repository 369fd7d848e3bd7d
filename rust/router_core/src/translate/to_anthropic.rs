//! The gateway's OpenAI-format stream → Anthropic Messages SSE for `/v1/messages` clients.
//!
//! Input is what the gateway sends a chat-completions client: chunks, possibly a usage-only
//! chunk, then `[DONE]` (or an `error` event). Output is `message_start`, one
//! `content_block_start`/`_delta`/`_stop` run per text, thinking (`reasoning_content`) and
//! tool call (`tool_calls`, arguments as `input_json_delta`), then `message_delta` with the
//! stop reason and usage, and `message_stop`. Blocks never overlap: a new kind of delta
//! closes the open block.

use std::borrow::Cow;

use super::anthropic::{AnthropicUsage, Block, Delta, Event, MessageStart};
use super::openai::{Chunk, ToolCallDelta};
use super::{anthropic_error_type, stop_reason_for};
use crate::relay::Usage;
use crate::sse::{SseEventRef, SseParser};

/// What the relay learned and sent so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReverseState {
    /// `message_stop` was sent.
    pub done: bool,
    /// JSON text of the error event that ended the stream (sent on as an Anthropic `error`).
    pub error: Option<String>,
    /// Usage from the stream's usage chunk.
    pub usage: Option<Usage>,
    /// The last OpenAI `finish_reason` seen.
    pub finish_reason: Option<String>,
    /// Anthropic events written.
    pub events: u64,
    /// Events whose data could not be understood (skipped).
    pub malformed: u64,
}

impl ReverseState {
    /// The Anthropic `stop_reason` for the finish reason seen so far.
    pub fn stop_reason(&self) -> Option<&'static str> {
        self.finish_reason.as_deref().map(stop_reason_for)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    Thinking,
    /// A tool call, by its OpenAI index.
    Tool(u64),
}

#[derive(Debug, Clone)]
struct Converter {
    message_id: String,
    model: String,
    input_tokens: u64,
    started: bool,
    /// The open content block: (Anthropic index, kind).
    open: Option<(u64, OpenKind)>,
    next_block: u64,
    /// (OpenAI tool-call index, Anthropic block index) of every tool call started.
    tools: Vec<(u64, u64)>,
    state: ReverseState,
}

/// OpenAI-format SSE bytes in, Anthropic SSE bytes out.
#[derive(Debug, Clone)]
pub struct OpenAIToAnthropicRelay {
    parser: SseParser,
    inner: Converter,
}

impl OpenAIToAnthropicRelay {
    /// `input_tokens` is what `message_start` reports (the gateway's prompt estimate); the
    /// usage chunk's figures are reported in `message_delta`.
    pub fn new(model: &str, message_id: &str, input_tokens: u64) -> Self {
        Self {
            parser: SseParser::new(),
            inner: Converter {
                message_id: message_id.to_owned(),
                model: model.to_owned(),
                input_tokens,
                started: false,
                open: None,
                next_block: 0,
                tools: Vec::new(),
                state: ReverseState::default(),
            },
        }
    }

    pub fn state(&self) -> &ReverseState {
        &self.inner.state
    }

    /// Consume one read of the OpenAI-format stream, appending the Anthropic bytes it
    /// completes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Self { parser, inner } = self;
        parser.feed_with(input, |event| inner.event(&event, out));
    }

    /// End of stream: flush a pending event, then close the open block. When a
    /// `finish_reason` was seen but no `[DONE]`, also send `message_delta` and
    /// `message_stop`; a stream cut before its finish reason is left for the caller to end
    /// with an error event.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let Self { parser, inner } = self;
        parser.finish_with(|event| inner.event(&event, out));
        if inner.started && !inner.state.done && inner.state.error.is_none() {
            if inner.state.finish_reason.is_some() {
                inner.end_message(out);
            } else {
                inner.close_block(out);
            }
        }
    }
}

impl Converter {
    fn write(&mut self, out: &mut Vec<u8>, event: &Event<'_>) {
        self.state.events += 1;
        event.write_sse(out);
    }

    fn event(&mut self, sse: &SseEventRef<'_>, out: &mut Vec<u8>) {
        if self.state.done || self.state.error.is_some() {
            return;
        }
        let data = sse.data.trim();
        if data == "[DONE]" {
            self.end_message(out);
            return;
        }
        let is_error_event = sse.event == Some("error");
        let Some(chunk) = Chunk::parse(data) else {
            self.state.malformed += 1;
            if is_error_event {
                let text = serde_json::json!({ "error": { "message": sse.data } }).to_string();
                self.fail(out, text, "api_error", sse.data);
            }
            return;
        };
        if let Some(error) = &chunk.error {
            let kind = anthropic_error_type(&error.kind, error.code.as_deref());
            self.fail(out, data.to_owned(), kind, &error.message);
            return;
        }
        if is_error_event {
            self.fail(out, data.to_owned(), "api_error", data);
            return;
        }
        self.start(out);
        if let Some(usage) = chunk.usage {
            self.state.usage = Some(usage);
        }
        let Some(choice) = chunk.choice else { return };
        for (text, kind) in [
            (&choice.reasoning, OpenKind::Thinking),
            (&choice.content, OpenKind::Text),
            (&choice.refusal, OpenKind::Text),
        ] {
            if let Some(text) = text.as_deref().filter(|t| !t.is_empty()) {
                self.text(out, kind, text);
            }
        }
        for call in &choice.tool_calls {
            self.tool_call(out, call);
        }
        if let Some(reason) = choice.finish_reason {
            self.state.finish_reason = Some(reason.into_owned());
        }
    }

    fn fail(&mut self, out: &mut Vec<u8>, error_json: String, kind: &str, message: &str) {
        self.state.error = Some(error_json);
        self.write(
            out,
            &Event::Error {
                kind: Cow::Borrowed(kind),
                message: Cow::Borrowed(message),
            },
        );
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let start = Event::MessageStart(MessageStart {
            id: Cow::Owned(self.message_id.clone()),
            model: Cow::Owned(self.model.clone()),
            usage: AnthropicUsage {
                input_tokens: Some(self.input_tokens),
                output_tokens: Some(0),
                ..AnthropicUsage::default()
            },
        });
        self.write(out, &start);
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            self.write(out, &Event::ContentBlockStop { index });
        }
    }

    /// Close the open block unless it is `kind`, then open `block` as the next index.
    fn open_block(&mut self, out: &mut Vec<u8>, kind: OpenKind, block: Block<'_>) -> u64 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        self.write(out, &Event::ContentBlockStart { index, block });
        index
    }

    fn text(&mut self, out: &mut Vec<u8>, kind: OpenKind, text: &str) {
        let index = match self.open {
            Some((index, open)) if open == kind => index,
            _ => {
                let block = match kind {
                    OpenKind::Thinking => Block::Thinking(Cow::Borrowed("")),
                    _ => Block::Text(Cow::Borrowed("")),
                };
                self.open_block(out, kind, block)
            }
        };
        let delta = match kind {
            OpenKind::Thinking => Delta::Thinking(Cow::Borrowed(text)),
            _ => Delta::Text(Cow::Borrowed(text)),
        };
        self.write(out, &Event::ContentBlockDelta { index, delta });
    }

    fn tool_call(&mut self, out: &mut Vec<u8>, call: &ToolCallDelta<'_>) {
        let open_tool = match self.open {
            Some((_, OpenKind::Tool(i))) => Some(i),
            _ => None,
        };
        let tool = match (call.index, &call.id) {
            (Some(i), _) => i,
            // No index: a new id is a new call, otherwise the open call continues.
            (None, Some(_)) => self.tools.iter().map(|(i, _)| i + 1).max().unwrap_or(0),
            (None, None) => open_tool.unwrap_or(0),
        };
        let known = self.tools.iter().find(|(i, _)| *i == tool).map(|(_, b)| *b);
        let index = if let Some(block) = known {
            block
        } else {
            let id = call
                .id
                .clone()
                .unwrap_or_else(|| Cow::Owned(format!("toolu_{}_{tool}", self.message_id)));
            let block = Block::ToolUse {
                id,
                name: Cow::Borrowed(call.name.as_deref().unwrap_or("")),
                input: None,
            };
            let index = self.open_block(out, OpenKind::Tool(tool), block);
            self.tools.push((tool, index));
            index
        };
        // Fragments of an earlier, already closed call (interleaved parallel calls) still
        // go to that call's block index.
        if let Some(arguments) = call.arguments.as_deref().filter(|a| !a.is_empty()) {
            let delta = Delta::InputJson(Cow::Borrowed(arguments));
            self.write(out, &Event::ContentBlockDelta { index, delta });
        }
    }

    fn end_message(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close_block(out);
        let usage = match self.state.usage {
            Some(u) => AnthropicUsage {
                input_tokens: Some(u.prompt_tokens.saturating_sub(u.cached_tokens)),
                output_tokens: Some(u.completion_tokens),
                cache_read_input_tokens: Some(u.cached_tokens),
                cache_creation_input_tokens: None,
            },
            None => AnthropicUsage {
                output_tokens: Some(0),
                ..AnthropicUsage::default()
            },
        };
        let delta = Event::MessageDelta {
            stop_reason: Some(Cow::Borrowed(
                self.state.stop_reason().unwrap_or("end_turn"),
            )),
            stop_sequence: None,
            usage,
        };
        self.write(out, &delta);
        self.write(out, &Event::MessageStop);
        self.state.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> (OpenAIToAnthropicRelay, Vec<(String, serde_json::Value)>) {
        let mut relay = OpenAIToAnthropicRelay::new("served", "msg_1", 12);
        let mut out = Vec::new();
        relay.feed(input.as_bytes(), &mut out);
        relay.finish(&mut out);
        (relay, events(&out))
    }

    fn events(out: &[u8]) -> Vec<(String, serde_json::Value)> {
        let mut parser = SseParser::new();
        let mut events = parser.feed(out);
        events.extend(parser.finish());
        events
            .into_iter()
            .map(|e| {
                let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                assert_eq!(Some(data["type"].as_str().unwrap()), e.event.as_deref());
                (e.event.unwrap(), data)
            })
            .collect()
    }

    fn names(events: &[(String, serde_json::Value)]) -> Vec<&str> {
        events.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn chunk(delta: &str, finish: Option<&str>) -> String {
        let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    }

    const USAGE: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":10}},\"routing_metadata\":{}}\n\ndata: [DONE]\n\n";

    #[test]
    fn text_stream() {
        let input = chunk(r#"{"role":"assistant","content":""}"#, None)
            + &chunk(r#"{"content":"Hel"}"#, None)
            + &chunk(r#"{"content":"lo"}"#, None)
            + &chunk("{}", Some("stop"))
            + USAGE;
        let (r, ev) = run(&input);
        assert_eq!(
            names(&ev),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let msg = &ev[0].1["message"];
        assert_eq!(msg["id"], "msg_1");
        assert_eq!(msg["model"], "served");
        assert_eq!(msg["role"], "assistant");
        assert_eq!(msg["usage"]["input_tokens"], 12);
        assert_eq!(
            ev[1].1["content_block"],
            serde_json::json!({"type": "text", "text": ""})
        );
        assert_eq!(
            ev[2].1["delta"],
            serde_json::json!({"type": "text_delta", "text": "Hel"})
        );
        assert_eq!(ev[5].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(
            ev[5].1["usage"],
            serde_json::json!({"input_tokens": 20, "cache_read_input_tokens": 10, "output_tokens": 7})
        );
        let s = r.state();
        assert!(s.done);
        assert_eq!(s.stop_reason(), Some("end_turn"));
        assert_eq!(s.events, 7);
    }

    #[test]
    fn thinking_then_text_then_tools() {
        let input = chunk(r#"{"reasoning_content":"think"}"#, None)
            + &chunk(r#"{"content":"ok"}"#, None)
            + &chunk(
                r#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}"#,
                None,
            )
            + &chunk(
                r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}"#,
                None,
            )
            + &chunk(
                r#"{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}"#,
                None,
            )
            + &chunk(
                r#"{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"g","arguments":"{}"}}]}"#,
                None,
            )
            + &chunk("{}", Some("tool_calls"))
            + USAGE;
        let (r, ev) = run(&input);
        let starts: Vec<_> = ev
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| (d["index"].as_u64().unwrap(), d["content_block"].clone()))
            .collect();
        assert_eq!(
            starts,
            [
                (0, serde_json::json!({"type": "thinking", "thinking": ""})),
                (1, serde_json::json!({"type": "text", "text": ""})),
                (
                    2,
                    serde_json::json!({"type": "tool_use", "id": "call_a", "name": "f", "input": {}})
                ),
                (
                    3,
                    serde_json::json!({"type": "tool_use", "id": "call_b", "name": "g", "input": {}})
                ),
            ]
        );
        let json: String = ev
            .iter()
            .filter(|(_, d)| d["index"] == 2 && d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(json, "{\"a\":1}");
        let stops = ev.iter().filter(|(n, _)| n == "content_block_stop").count();
        assert_eq!(stops, 4);
        assert_eq!(r.state().stop_reason(), Some("tool_use"));
    }

    #[test]
    fn finish_closes_open_blocks() {
        let (r, ev) = run(&chunk(r#"{"content":"partial"}"#, None));
        assert_eq!(
            names(&ev),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop"
            ]
        );
        assert!(!r.state().done);

        let (r, ev) = run(&chunk(r#"{"content":"x"}"#, Some("length")));
        assert_eq!(names(&ev).last(), Some(&"message_stop"));
        assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "max_tokens");
        assert!(r.state().done);
    }

    #[test]
    fn error_event_becomes_anthropic_error() {
        let input = chunk(r#"{"content":"x"}"#, None)
            + "event: error\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"provider_error\",\"code\":\"provider_timeout\",\"param\":null},\"request_id\":\"r\"}\n\n"
            + &chunk(r#"{"content":"ignored"}"#, None);
        let (r, ev) = run(&input);
        let (name, data) = ev.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(
            data["error"],
            serde_json::json!({"type": "timeout_error", "message": "boom"})
        );
        assert!(r.state().error.as_deref().unwrap().contains("boom"));
        assert!(!r.state().done);
        assert_eq!(
            ev.iter()
                .filter(|(n, _)| n == "content_block_delta")
                .count(),
            1
        );
    }

    #[test]
    fn malformed_counted_and_empty_stream_still_well_formed() {
        let (r, ev) = run("data: {oops\n\ndata: [DONE]\n\n");
        assert_eq!(r.state().malformed, 1);
        assert_eq!(
            names(&ev),
            ["message_start", "message_delta", "message_stop"]
        );
        assert_eq!(ev[1].1["usage"], serde_json::json!({"output_tokens": 0}));
    }
}
