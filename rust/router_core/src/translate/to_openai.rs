//! Upstream Anthropic Messages SSE → OpenAI `chat.completion.chunk` SSE for the client.
//!
//! The first chunk carries `delta.role`; text, thinking and tool-use blocks become
//! `content`, `reasoning_content` and `tool_calls` deltas (tool calls numbered 0, 1, … in
//! the order their blocks start); `message_delta.stop_reason` becomes `finish_reason`.
//! Usage is kept, never emitted: like [`crate::StreamRelay`], the gateway closes the stream
//! with its own usage chunk and `[DONE]`. `error` events are kept and not forwarded.

use super::anthropic::{
    AnthropicUsage, Block, CompactDelta, CompactKind, Delta, Event, ParseError,
};
use super::finish_reason_for;
use super::openai::{ChunkWriter, DeltaOut, Str};
use crate::relay::{RelayState, Usage};
use crate::sse::{SseEventRef, SseParser};

/// What a content block index was opened as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    /// A tool call, with its 0-based index among the stream's tool calls.
    Tool(u64),
    Other,
}

/// Translation state, everything except the SSE parser.
#[derive(Debug, Clone)]
struct Translator {
    writer: ChunkWriter,
    state: RelayState,
    role_sent: bool,
    /// (Anthropic block index, kind), in start order; streams have a handful of blocks.
    blocks: Vec<(u64, BlockKind)>,
    next_tool: u64,
    /// Every usage field seen so far, later events overriding earlier ones.
    seen_usage: AnthropicUsage,
}

/// Upstream Anthropic SSE bytes in, OpenAI chunk bytes out.
#[derive(Debug, Clone)]
pub struct AnthropicStreamRelay {
    parser: SseParser,
    inner: Translator,
}

impl AnthropicStreamRelay {
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
                blocks: Vec::new(),
                next_tool: 0,
                seen_usage: AnthropicUsage::default(),
            },
        }
    }

    /// What was learned so far; `done` means `message_stop` was seen.
    pub fn state(&self) -> &RelayState {
        &self.inner.state
    }

    /// Consume one upstream read, appending the client bytes it completes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Self { parser, inner } = self;
        parser.feed_with(input, |event| inner.event(&event, out));
    }

    /// End of stream: flush a final event that lacked its blank line.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let Self { parser, inner } = self;
        parser.finish_with(|event| inner.event(&event, out));
    }
}

fn merge(into: &mut AnthropicUsage, new: &AnthropicUsage) {
    let fields = [
        (&mut into.input_tokens, new.input_tokens),
        (&mut into.output_tokens, new.output_tokens),
        (
            &mut into.cache_read_input_tokens,
            new.cache_read_input_tokens,
        ),
        (
            &mut into.cache_creation_input_tokens,
            new.cache_creation_input_tokens,
        ),
    ];
    for (slot, value) in fields {
        if value.is_some() {
            *slot = value;
        }
    }
}

impl Translator {
    fn event(&mut self, sse: &SseEventRef<'_>, out: &mut Vec<u8>) {
        if self.state.halted() || sse.data.trim().is_empty() {
            return; // see `RelayState::halted`; an empty event is a keep-alive
        }
        if let Some(delta) = CompactDelta::parse(sse.data) {
            self.compact_delta(&delta, out);
            return;
        }
        let is_error_event = sse.event == Some("error");
        let event = match Event::parse(sse.data, sse.event) {
            Ok(event) => event,
            Err(err) => {
                self.state.malformed += 1;
                if is_error_event {
                    let text = match err {
                        ParseError::Json => {
                            serde_json::json!({ "error": { "message": sse.data } }).to_string()
                        }
                        ParseError::Missing(_) => sse.data.trim().to_owned(),
                    };
                    self.state.error.get_or_insert(text);
                }
                return;
            }
        };
        match event {
            Event::MessageStart(message) => {
                self.usage(&message.usage);
                self.role(out);
            }
            Event::ContentBlockStart { index, block } => self.block_start(index, &block, out),
            Event::ContentBlockDelta { index, delta } => self.delta(index, &delta, out),
            Event::MessageDelta {
                stop_reason, usage, ..
            } => {
                self.usage(&usage);
                if let Some(reason) = stop_reason {
                    let finish = finish_reason_for(&reason);
                    self.state.finish_reason = Some(finish.to_owned());
                    self.emit(out, DeltaOut::Empty, Some(finish));
                }
            }
            Event::MessageStop => self.state.done = true,
            Event::Error { .. } => {
                self.state
                    .error
                    .get_or_insert_with(|| sse.data.trim().to_owned());
            }
            Event::ContentBlockStop { .. } | Event::Ping | Event::Other => {}
        }
    }

    fn usage(&mut self, usage: &AnthropicUsage) {
        merge(&mut self.seen_usage, usage);
        let u = &self.seen_usage;
        let cached = u.cache_read_input_tokens.unwrap_or(0);
        self.state.usage = Some(Usage {
            prompt_tokens: u
                .input_tokens
                .unwrap_or(0)
                .saturating_add(cached)
                .saturating_add(u.cache_creation_input_tokens.unwrap_or(0)),
            completion_tokens: u.output_tokens.unwrap_or(0),
            cached_tokens: cached,
            reasoning_tokens: 0,
        });
    }

    fn role(&mut self, out: &mut Vec<u8>) {
        if !self.role_sent {
            self.role_sent = true;
            self.state.chunks += 1;
            self.writer.write(out, DeltaOut::Role, None);
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, delta: DeltaOut<'_>, finish: Option<&str>) {
        self.role(out);
        self.state.chunks += 1;
        self.writer.write(out, delta, finish);
    }

    /// Emit a delta of `chars` characters of text, unless it is empty.
    fn emit_text(&mut self, out: &mut Vec<u8>, delta: DeltaOut<'_>, chars: u64) {
        if chars > 0 {
            self.state.content_chars += chars;
            self.emit(out, delta, None);
        }
    }

    fn plain_text(&mut self, out: &mut Vec<u8>, reasoning: bool, text: &str) {
        let delta = if reasoning {
            DeltaOut::Reasoning(Str::Plain(text))
        } else {
            DeltaOut::Content(Str::Plain(text))
        };
        self.emit_text(out, delta, text.chars().count() as u64);
    }

    /// Tool-call arguments for block `index`, counted as malformed when that block did not
    /// start as a tool call (there is nothing to attach them to).
    fn arguments(&mut self, out: &mut Vec<u8>, index: u64, arguments: Str<'_>, chars: u64) {
        match self.kind_of(index) {
            Some(BlockKind::Tool(tool)) => {
                let fragment = DeltaOut::ToolArguments {
                    index: tool,
                    arguments,
                };
                self.emit_text(out, fragment, chars);
            }
            _ => self.state.malformed += 1,
        }
    }

    /// The fast path: same output as the full parser gives for the same event.
    fn compact_delta(&mut self, delta: &CompactDelta<'_>, out: &mut Vec<u8>) {
        let text = Str::Escaped(delta.escaped);
        match delta.kind {
            CompactKind::Text => self.emit_text(out, DeltaOut::Content(text), delta.chars),
            CompactKind::Thinking => self.emit_text(out, DeltaOut::Reasoning(text), delta.chars),
            CompactKind::InputJson => self.arguments(out, delta.index, text, delta.chars),
        }
    }

    fn kind_of(&self, index: u64) -> Option<BlockKind> {
        self.blocks
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, kind)| *kind)
    }

    fn block_start(&mut self, index: u64, block: &Block<'_>, out: &mut Vec<u8>) {
        let kind = match block {
            Block::Text(text) => {
                self.plain_text(out, false, text);
                BlockKind::Text
            }
            Block::Thinking(text) => {
                self.plain_text(out, true, text);
                BlockKind::Thinking
            }
            Block::ToolUse { id, name, input } => {
                let tool = self.next_tool;
                self.next_tool += 1;
                // Streams start tool blocks with `input: {}` and send it as deltas; a
                // non-empty initial input is sent as the first arguments fragment.
                let arguments = input
                    .map(str::trim)
                    .filter(|i| !i.chars().filter(|c| !c.is_whitespace()).eq("{}".chars()))
                    .unwrap_or("");
                self.state.content_chars += arguments.chars().count() as u64;
                self.emit(
                    out,
                    DeltaOut::ToolStart {
                        index: tool,
                        id,
                        name,
                        arguments,
                    },
                    None,
                );
                BlockKind::Tool(tool)
            }
            Block::Other => BlockKind::Other,
        };
        self.blocks.push((index, kind));
    }

    fn delta(&mut self, index: u64, delta: &Delta<'_>, out: &mut Vec<u8>) {
        match delta {
            Delta::Text(text) => self.plain_text(out, false, text),
            Delta::Thinking(text) => self.plain_text(out, true, text),
            Delta::InputJson(json) => {
                let chars = json.chars().count() as u64;
                self.arguments(out, index, Str::Plain(json), chars);
            }
            Delta::Signature(_) | Delta::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> (AnthropicStreamRelay, Vec<serde_json::Value>) {
        let mut relay = AnthropicStreamRelay::new("served", "chatcmpl-x", 42);
        let mut out = Vec::new();
        relay.feed(input.as_bytes(), &mut out);
        relay.finish(&mut out);
        let text = String::from_utf8(out).unwrap();
        let chunks = text
            .split("\n\n")
            .filter(|s| !s.is_empty())
            .map(|s| serde_json::from_str(s.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        (relay, chunks)
    }

    fn ev(name: &str, data: &str) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    fn delta(chunk: &serde_json::Value) -> &serde_json::Value {
        &chunk["choices"][0]["delta"]
    }

    const START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"cache_creation_input_tokens":2,"output_tokens":1}}}"#;

    #[test]
    fn message_start_sends_role_and_usage() {
        let (r, chunks) = run(&ev("message_start", START));
        assert_eq!(chunks.len(), 1);
        let c = &chunks[0];
        assert_eq!(c["id"], "chatcmpl-x");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["created"], 42);
        assert_eq!(c["model"], "served");
        assert_eq!(delta(c)["role"], "assistant");
        assert!(c["choices"][0]["finish_reason"].is_null());
        let u = r.state().usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.completion_tokens),
            (17, 5, 1)
        );
        assert_eq!(r.state().chunks, 1);
    }

    #[test]
    fn text_block_becomes_content() {
        let input = ev("message_start", START)
            + &ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            )
            + &ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hé\n"}}"#,
            )
            + &ev(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            );
        let (r, chunks) = run(&input);
        assert_eq!(chunks.len(), 2);
        assert_eq!(delta(&chunks[1]), &serde_json::json!({"content": "Hé\n"}));
        assert_eq!(r.state().content_chars, 3);
    }

    #[test]
    fn thinking_block_becomes_reasoning_content() {
        let input = ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        ) + &ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
        ) + &ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}"#,
        );
        let (_, chunks) = run(&input);
        // The role chunk is sent before the first content even without message_start.
        assert_eq!(chunks.len(), 2);
        assert_eq!(delta(&chunks[0])["role"], "assistant");
        assert_eq!(
            delta(&chunks[1]),
            &serde_json::json!({"reasoning_content": "hmm"})
        );
    }

    #[test]
    fn tool_use_blocks_become_numbered_tool_calls() {
        let mut input = ev("message_start", START);
        for (block, id) in [(1, "toolu_a"), (2, "toolu_b")] {
            input += &ev(
                "content_block_start",
                &format!(
                    r#"{{"type":"content_block_start","index":{block},"content_block":{{"type":"tool_use","id":"{id}","name":"get","input":{{}}}}}}"#
                ),
            );
            for part in ["", r#"{\"q\": "#, r"1}"] {
                input += &ev(
                    "content_block_delta",
                    &format!(
                        r#"{{"type":"content_block_delta","index":{block},"delta":{{"type":"input_json_delta","partial_json":"{part}"}}}}"#
                    ),
                );
            }
        }
        let (r, chunks) = run(&input);
        assert_eq!(chunks.len(), 7);
        assert_eq!(
            delta(&chunks[1]),
            &serde_json::json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function",
                "function": {"name": "get", "arguments": ""}}]})
        );
        assert_eq!(
            delta(&chunks[2]),
            &serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\": "}}]})
        );
        assert_eq!(delta(&chunks[4])["tool_calls"][0]["id"], "toolu_b");
        assert_eq!(delta(&chunks[6])["tool_calls"][0]["index"], 1);
        assert_eq!(r.state().malformed, 0);
    }

    #[test]
    fn message_delta_maps_stop_reason_and_usage() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
        ] {
            let input = ev("message_start", START)
                + &ev(
                    "message_delta",
                    &format!(
                        r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop}","stop_sequence":null}},"usage":{{"output_tokens":33}}}}"#
                    ),
                )
                + &ev("message_stop", r#"{"type":"message_stop"}"#);
            let (r, chunks) = run(&input);
            assert_eq!(chunks.len(), 2);
            assert_eq!(delta(&chunks[1]), &serde_json::json!({}));
            assert_eq!(chunks[1]["choices"][0]["finish_reason"], finish);
            let s = r.state();
            assert_eq!(s.finish_reason.as_deref(), Some(finish));
            assert!(s.done);
            let u = s.usage.unwrap();
            assert_eq!((u.prompt_tokens, u.completion_tokens), (17, 33));
        }
    }

    #[test]
    fn message_delta_input_usage_overrides_start() {
        let input = ev("message_start", START)
            + &ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"input_tokens":20,"output_tokens":4}}"#,
            );
        let (r, chunks) = run(&input);
        assert_eq!(chunks.len(), 1, "no finish chunk without a stop_reason");
        let u = r.state().usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.completion_tokens),
            (27, 5, 4)
        );
        assert_eq!(r.state().finish_reason, None);
    }

    #[test]
    fn ping_ignored_error_kept() {
        let input = ev("ping", r#"{"type": "ping"}"#)
            + &ev(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            );
        let (r, chunks) = run(&input);
        assert!(chunks.is_empty());
        let s = r.state();
        assert_eq!(
            s.error.as_deref(),
            Some(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        );
        assert_eq!((s.chunks, s.malformed), (0, 0));
    }

    #[test]
    fn a_malformed_event_halts_the_stream() {
        let text = |t: &str| {
            format!("data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}\n\n")
        };
        let start = "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
        for bad in [
            "event: content_block_delta\ndata: {not json\n\n",
            "data: [1, 2]\n\n",
            "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":9,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
        ] {
            let input = String::from(start) + &text("a") + bad + "data:\n\n" + &text("b");
            let (r, chunks) = run(&input);
            assert_eq!(chunks.len(), 2, "{bad}"); // role, "a"; the hole ends it
            assert_eq!(r.state().malformed, 1);
            assert!(r.state().halted());
        }
        let input = String::from(start)
            + "data: {\"type\":\"brand_new_event\"}\n\n"
            + "event: error\ndata: upstream exploded\n\n"
            + &text("late");
        let (r, chunks) = run(&input);
        assert_eq!(chunks.len(), 0); // an unknown event type is tolerated; nothing after an error
        assert_eq!(
            r.state().error.as_deref(),
            Some(r#"{"error":{"message":"upstream exploded"}}"#)
        );
    }
}
