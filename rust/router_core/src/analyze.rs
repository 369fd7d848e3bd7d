//! One pass over a raw chat-completions body: size, needed capabilities, output budget,
//! and the prompt's task and difficulty (see [`crate::task`]).
//!
//! Python validates field types with msgspec; this pass only needs to be robust (odd shapes
//! are counted as far as they make sense) and to never make Python touch message text.

use serde_json::{Map, Value};

use crate::codes::{
    CAP_AUDIO, CAP_JSON_OBJECT, CAP_JSON_SCHEMA, CAP_REASONING, CAP_TOOLS, CAP_VISION,
};
use crate::error::CoreError;
use crate::task::{TaskSignals, SYSTEM_WINDOW, USER_WINDOW};
use crate::tokens::chat::{message_tokens, tools_tokens, TOKENS_REPLY_PRIMING};
use crate::tokens::{Encoding, Family, TextCounter};

/// Bodies up to this size are counted exactly (`o200k_base`, a few µs per KB); larger ones
/// get the byte-class upper bound so that one huge request cannot cost milliseconds here.
pub const EXACT_BODY_LIMIT: usize = 256 * 1024;

/// What [`analyze`] found in one request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Prompt tokens as `OpenAI` bills them with `o200k_base` (messages, images, tools; see
    /// [`crate::tokens::chat`]); exact when `prompt_tokens_exact`, else an upper bound.
    pub prompt_tokens: u64,
    /// Whether `prompt_tokens` is the exact `o200k_base` count (bodies up to
    /// [`EXACT_BODY_LIMIT`]) rather than the estimator's upper bound.
    pub prompt_tokens_exact: bool,
    /// Characters (Unicode scalar values) of all counted prompt text.
    pub prompt_chars: u64,
    /// Entries of the `messages` array.
    pub message_count: u64,
    /// Bitmask of `CAP_*` the request needs.
    pub required_capabilities: u32,
    /// `max_completion_tokens`, else `max_tokens`, when set.
    pub max_output_tokens: Option<u64>,
    /// `stream == true`.
    pub stream: bool,
    /// Index into [`crate::TASKS`] of the prompt's task.
    pub task: usize,
    /// Prompt difficulty in [0, 1].
    pub difficulty: f64,
}

/// Raw size figures gathered in the pass; the token estimate is computed from these.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PromptSize {
    /// UTF-8 bytes of all counted text (content, names, tool calls, tool definitions).
    pub text_bytes: u64,
    /// Unicode scalar values of the same text.
    pub text_chars: u64,
    /// Entries of `messages`.
    pub messages: u64,
    /// Image parts.
    pub images: u64,
}

/// Tokens charged per message for role and framing.
const TOKENS_PER_MESSAGE: u64 = 4;
/// Tokens that prime the assistant's reply.
const TOKENS_PER_REPLY: u64 = 3;
/// Tokens per image (a low-detail tile); images are priced by the provider, this only sizes.
const TOKENS_PER_IMAGE: u64 = 85;

/// Crude upper-bound token estimate from sizes alone: no BPE vocabulary packs fewer than 3 UTF-8 bytes per token on
/// average text, so `ceil(bytes / 3)` overestimates; framing overhead as `OpenAI` documents it.
///
/// Kept separate so exact BPE counting can replace it without touching the pass.
pub fn estimate_prompt_tokens(size: &PromptSize) -> u64 {
    size.text_bytes.div_ceil(3)
        + TOKENS_PER_MESSAGE * size.messages
        + TOKENS_PER_REPLY
        + TOKENS_PER_IMAGE * size.images
}

/// Analyse a raw chat-completions JSON body.
///
/// Fails when the body is not a JSON object, or when an output-token limit is not a
/// non-negative integer.
pub fn analyze(body: &[u8]) -> Result<Analysis, CoreError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| json_error(body, &e))?;
    let Value::Object(request) = value else {
        return Err(CoreError::NotAnObject {
            found: kind_name(&value),
        });
    };

    let exact = body.len() <= EXACT_BODY_LIMIT;
    let mut pass = Pass {
        counter: if exact {
            TextCounter::Exact(Encoding::O200kBase)
        } else {
            TextCounter::Bound(Family::Gpt4o)
        },
        tokens: TOKENS_REPLY_PRIMING,
        ..Pass::default()
    };
    if let Some(Value::Array(messages)) = request.get("messages") {
        pass.size.messages = messages.len() as u64;
        for message in messages {
            if let Value::Object(message) = message {
                pass.message(message);
            }
        }
    }
    pass.tool_definitions(&request);
    pass.response_format(request.get("response_format"));
    if thinking_enabled(&request) {
        pass.capabilities |= CAP_REASONING;
    }

    let prompt_tokens = pass.tokens;
    let classification = pass.task_signals().classify(
        pass.capabilities & CAP_VISION != 0,
        pass.capabilities & (CAP_JSON_OBJECT | CAP_JSON_SCHEMA) != 0,
        prompt_tokens,
    );
    Ok(Analysis {
        prompt_tokens,
        prompt_tokens_exact: exact,
        prompt_chars: pass.size.text_chars,
        message_count: pass.size.messages,
        required_capabilities: pass.capabilities,
        max_output_tokens: max_output_tokens(&request)?,
        stream: request.get("stream") == Some(&Value::Bool(true)),
        task: classification.task,
        difficulty: classification.difficulty,
    })
}

/// Prompt tokens of a chat-completions body for a model family: the exact count with the
/// family's encoding for `OpenAI` families, the exact `o200k_base` count times the family's
/// ratio for others ([`Family::ratio`]); above [`EXACT_BODY_LIMIT`] the estimator's bound.
/// Returns (tokens, exact).
pub fn count_body_tokens(body: &[u8], family: Family) -> Result<(u64, bool), CoreError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| json_error(body, &e))?;
    let Value::Object(request) = value else {
        return Err(CoreError::NotAnObject {
            found: kind_name(&value),
        });
    };
    if body.len() > EXACT_BODY_LIMIT {
        return Ok((request_tokens(&request, TextCounter::Bound(family)), false));
    }
    if let Some(encoding) = family.encoding() {
        return Ok((request_tokens(&request, TextCounter::Exact(encoding)), true));
    }
    let o200k = request_tokens(&request, TextCounter::Exact(Encoding::O200kBase));
    Ok(((o200k as f64 * family.ratio()).ceil() as u64, false))
}

/// Messages, reply priming and tool definitions of a request, counted with `counter`.
fn request_tokens(request: &Map<String, Value>, counter: TextCounter) -> u64 {
    let mut n = TOKENS_REPLY_PRIMING;
    if let Some(Value::Array(messages)) = request.get("messages") {
        n += messages
            .iter()
            .filter_map(Value::as_object)
            .map(|m| message_tokens(m, counter))
            .sum::<u64>();
    }
    for key in ["tools", "functions"] {
        if let Some(Value::Array(defs)) = request.get(key) {
            n += tools_tokens(defs, counter);
        }
    }
    n
}

/// Accumulators of the single pass.
#[derive(Default)]
struct Pass<'a> {
    size: PromptSize,
    /// How message text is counted.
    counter: TextCounter,
    /// Prompt tokens so far (see [`crate::tokens::chat`]).
    tokens: u64,
    capabilities: u32,
    /// Content of the first `system`/`developer` message, for the classifier.
    system: Option<&'a Value>,
    /// Content of the last `user` message, for the classifier.
    last_user: Option<&'a Value>,
}

/// Text of a `text` content part.
fn part_text(part: &Value) -> Option<&str> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => part.get("text").and_then(Value::as_str),
        _ => None,
    }
}

impl<'a> Pass<'a> {
    /// Scan the classifier's bounded windows: the head of the system prompt and the tail of
    /// the last user message (multi-part content: parts in order for the head, in reverse
    /// for the tail, until the window's byte budget is spent).
    fn task_signals(&self) -> TaskSignals {
        let mut signals = TaskSignals::default();
        match self.system {
            Some(Value::String(text)) => {
                signals.scan_head(text, SYSTEM_WINDOW);
            }
            Some(Value::Array(parts)) => {
                let mut budget = SYSTEM_WINDOW;
                for text in parts.iter().filter_map(part_text) {
                    if budget == 0 {
                        break;
                    }
                    budget = signals.scan_head(text, budget);
                }
            }
            _ => {}
        }
        match self.last_user {
            Some(Value::String(text)) => {
                signals.scan_tail(text, USER_WINDOW);
            }
            Some(Value::Array(parts)) => {
                let mut budget = USER_WINDOW;
                for text in parts.iter().rev().filter_map(part_text) {
                    if budget == 0 {
                        break;
                    }
                    budget = signals.scan_tail(text, budget);
                }
            }
            _ => {}
        }
        signals
    }

    fn text(&mut self, text: &str) {
        self.size.text_bytes += text.len() as u64;
        self.size.text_chars += text.chars().count() as u64;
    }

    fn message(&mut self, message: &'a Map<String, Value>) {
        self.tokens += message_tokens(message, self.counter);
        match message.get("role").and_then(Value::as_str) {
            Some("user") => self.last_user = message.get("content"),
            Some("system" | "developer") if self.system.is_none() => {
                self.system = message.get("content");
            }
            _ => {}
        }
        if let Some(Value::String(name)) = message.get("name") {
            self.text(name);
        }
        match message.get("content") {
            Some(Value::String(text)) => self.text(text),
            Some(Value::Array(parts)) => {
                for part in parts {
                    if let Value::Object(part) = part {
                        self.content_part(part);
                    }
                }
            }
            _ => {}
        }
        // Earlier assistant turns' tool calls are prompt tokens too.
        if let Some(Value::Array(calls)) = message.get("tool_calls") {
            for call in calls {
                let function = call.get("function");
                for key in ["name", "arguments"] {
                    if let Some(Value::String(s)) = function.and_then(|f| f.get(key)) {
                        self.text(s);
                    }
                }
            }
        }
    }

    fn content_part(&mut self, part: &Map<String, Value>) {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(Value::String(text)) = part.get("text") {
                    self.text(text);
                }
            }
            Some("refusal") => {
                if let Some(Value::String(text)) = part.get("refusal") {
                    self.text(text);
                }
            }
            Some("image_url") => {
                self.capabilities |= CAP_VISION;
                self.size.images += 1;
            }
            Some("input_audio") => self.capabilities |= CAP_AUDIO,
            _ => {}
        }
    }

    /// `tools` and legacy `functions` count as their compact JSON length.
    fn tool_definitions(&mut self, request: &Map<String, Value>) {
        for key in ["tools", "functions"] {
            if let Some(Value::Array(defs)) = request.get(key) {
                if !defs.is_empty() {
                    self.capabilities |= CAP_TOOLS;
                    self.tokens += tools_tokens(defs, self.counter);
                    // Serialising a `Value` cannot fail (all keys are strings).
                    let json = serde_json::to_string(defs).unwrap_or_default();
                    self.text(&json);
                }
            }
        }
    }

    fn response_format(&mut self, format: Option<&Value>) {
        match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
            Some("json_object") => self.capabilities |= CAP_JSON_OBJECT,
            Some("json_schema") => self.capabilities |= CAP_JSON_SCHEMA,
            _ => {}
        }
    }
}

fn thinking_enabled(request: &Map<String, Value>) -> bool {
    request
        .get("extensions")
        .and_then(|e| e.get("thinking"))
        .and_then(|t| t.get("enabled"))
        == Some(&Value::Bool(true))
}

/// `max_completion_tokens` wins over the legacy `max_tokens`; both must be valid when present.
fn max_output_tokens(request: &Map<String, Value>) -> Result<Option<u64>, CoreError> {
    let completion = token_limit(request, "max_completion_tokens")?;
    let legacy = token_limit(request, "max_tokens")?;
    Ok(completion.or(legacy))
}

fn token_limit(
    request: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<u64>, CoreError> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(_) => Err(CoreError::InvalidField {
            field,
            expected: "a non-negative integer",
        }),
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `serde_json` reports line and (byte) column; add the absolute byte offset users can seek to.
pub(crate) fn json_error(body: &[u8], error: &serde_json::Error) -> CoreError {
    let (line, column) = (error.line(), error.column());
    let line_start: usize = body
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    let byte_offset = (line_start + column.saturating_sub(1)).min(body.len());
    let reason = error.to_string();
    // serde_json appends " at line L column C"; we print our own position.
    let reason = reason
        .split(" at line ")
        .next()
        .unwrap_or(&reason)
        .to_owned();
    CoreError::InvalidJson {
        reason,
        line,
        column,
        byte_offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str) -> Analysis {
        analyze(body.as_bytes()).expect("valid body")
    }

    #[test]
    fn counts_text_and_messages() {
        let a = run(r#"{"messages":[{"role":"user","content":"héllo","name":"bob"}]}"#);
        assert_eq!(a.message_count, 1);
        assert_eq!(a.prompt_chars, 8);
        // 3 per message + "user" + "héllo" (2) + "bob" + 1 for the name + 3 reply priming.
        assert!(a.prompt_tokens_exact);
        assert_eq!(a.prompt_tokens, 3 + 1 + 2 + 1 + 1 + 3);
        assert_eq!(a.required_capabilities, 0);
        assert!(!a.stream);
        assert_eq!(a.max_output_tokens, None);
    }

    #[test]
    fn detects_capabilities() {
        let a = run(r#"{"messages":[{"role":"user","content":[
            {"type":"text","text":"hi"},
            {"type":"image_url","image_url":{"url":"x"}},
            {"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}],
            "tools":[{"type":"function","function":{"name":"f"}}],
            "response_format":{"type":"json_schema"},
            "extensions":{"thinking":{"enabled":true}},"stream":true}"#);
        assert_eq!(
            a.required_capabilities,
            CAP_VISION | CAP_AUDIO | CAP_TOOLS | CAP_JSON_SCHEMA | CAP_REASONING
        );
        assert!(a.stream);
        assert!(a.prompt_tokens >= 85);
    }

    #[test]
    fn empty_tools_need_nothing() {
        let a = run(r#"{"messages":[],"tools":[],"response_format":{"type":"text"}}"#);
        assert_eq!(a.required_capabilities, 0);
    }

    #[test]
    fn output_limit_prefers_max_completion_tokens() {
        assert_eq!(run(r#"{"max_tokens":5}"#).max_output_tokens, Some(5));
        assert_eq!(
            run(r#"{"max_tokens":5,"max_completion_tokens":7}"#).max_output_tokens,
            Some(7)
        );
        assert_eq!(run(r#"{"max_tokens":null}"#).max_output_tokens, None);
    }

    #[test]
    fn bad_output_limit_names_the_field() {
        for body in [
            r#"{"max_tokens":-1}"#,
            r#"{"max_tokens":1.5}"#,
            r#"{"max_tokens":"3"}"#,
        ] {
            let err = analyze(body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("max_tokens"), "{err}");
        }
    }

    #[test]
    fn invalid_json_names_position() {
        let err = analyze(b"{\n  \"a\": tru }").unwrap_err();
        let CoreError::InvalidJson {
            line, byte_offset, ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(line, 2);
        assert!((9..=14).contains(&byte_offset), "{byte_offset}");
        assert!(analyze(b"[1]")
            .unwrap_err()
            .to_string()
            .contains("an array"));
    }

    #[test]
    fn classifies_the_last_user_message_and_system_prompt() {
        use crate::TASKS;
        let task = |body: &str| TASKS[run(body).task];
        assert_eq!(task(r#"{"messages":[]}"#), "chat");
        // The last user message counts; earlier turns do not.
        assert_eq!(
            task(
                r#"{"messages":[{"role":"user","content":"write a poem"},
                {"role":"assistant","content":"ok"},{"role":"user","content":"fix this bug"}]}"#
            ),
            "code"
        );
        // Multi-part content and the system prompt.
        assert_eq!(
            task(
                r#"{"messages":[{"role":"system","content":[{"type":"text","text":"You summarize."}]},
                {"role":"user","content":[{"type":"text","text":"Here:"},{"type":"text","text":"key points please"}]}]}"#
            ),
            "summarization"
        );
        assert_eq!(
            task(
                r#"{"messages":[{"role":"user","content":"hello"}],"response_format":{"type":"json_object"}}"#
            ),
            "extraction"
        );
        assert_eq!(
            task(
                r#"{"messages":[{"role":"user","content":[{"type":"text","text":"```code```"},
                {"type":"image_url","image_url":{"url":"u"}}]}]}"#
            ),
            "vision"
        );
        let plain = run(r#"{"messages":[{"role":"user","content":"sort a list"}]}"#);
        let harder =
            run(r#"{"messages":[{"role":"user","content":"sort a list, step by step, why"}]}"#);
        assert!((0.0..=1.0).contains(&plain.difficulty));
        assert!(harder.difficulty > plain.difficulty);
    }

    #[test]
    fn odd_messages_are_not_errors() {
        assert_eq!(run(r#"{"messages":"nope"}"#).message_count, 0);
        assert_eq!(
            run(r#"{"messages":[1,null,{"content":3}]}"#).message_count,
            3
        );
    }
}
