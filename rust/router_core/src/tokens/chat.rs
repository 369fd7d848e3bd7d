//! `OpenAI` chat framing: what `prompt_tokens` bills for messages, images and tools.
//!
//! Messages (the `OpenAI` cookbook's `num_tokens_from_messages`, which matches billed
//! `prompt_tokens` for text messages): 3 per message, every string field of the message
//! encoded (`role`, `content`, `name`, `tool_call_id` …), +1 per `name`, +3 priming the reply.
//! Content parts: `text` (and `refusal`) encoded, `image_url` by the tile formula
//! ([`image_tokens`]), others (audio, files) 0. Assistant `tool_calls` / `function_call`:
//! the function name and arguments text encoded (an approximation: `OpenAI` does not publish
//! how calls are rendered). Tools: the cookbook's `num_tokens_for_tools` formula.

use serde_json::{Map, Value};

use super::{estimate_tokens, Encoding, Family};
use crate::error::CoreError;

/// Tokens framing every message.
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// Extra token for a message's `name`.
pub const TOKENS_PER_NAME: u64 = 1;
/// Tokens priming the assistant's reply (`<|start|>assistant<|message|>`).
pub const TOKENS_REPLY_PRIMING: u64 = 3;

/// How text is counted: exactly with an encoding, or bounded for a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextCounter {
    Exact(Encoding),
    Bound(Family),
}

impl Default for TextCounter {
    fn default() -> Self {
        Self::Exact(Encoding::O200kBase)
    }
}

impl TextCounter {
    pub fn count(self, text: &str) -> u64 {
        match self {
            Self::Exact(encoding) => encoding.count(text) as u64,
            Self::Bound(family) => estimate_tokens(text, family),
        }
    }

    /// The cookbook's function-definition constants: (`func_init`, `prop_init`, `prop_key`,
    /// `enum_init`, `enum_item`, `func_end`). gpt-4o-era models (`o200k_base`) start a
    /// function with 7 tokens, gpt-4/3.5 (`cl100k_base`) with 10; bounds use the larger.
    fn tool_constants(self) -> [i64; 6] {
        match self {
            Self::Exact(Encoding::O200kBase) => [7, 3, 3, -3, 3, 12],
            _ => [10, 3, 3, -3, 3, 12],
        }
    }
}

/// Image detail level of an `image_url` part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageDetail {
    Low,
    /// `high` or `auto` (and absent): counted as high.
    High,
}

/// The published tile formula: low → 85; high → 85 + 170 per 512-px tile after scaling to
/// fit 2048×2048 and then (only down) to a shortest side of 768; unknown size → the
/// 1024×1024 case, 765.
pub fn image_tokens(detail: ImageDetail, size: Option<(u64, u64)>) -> u64 {
    if detail == ImageDetail::Low {
        return 85;
    }
    let Some((w, h)) = size.filter(|&(w, h)| w > 0 && h > 0) else {
        return 765;
    };
    let (mut w, mut h) = (w as f64, h as f64);
    let longest = w.max(h);
    if longest > 2048.0 {
        w *= 2048.0 / longest;
        h *= 2048.0 / longest;
    }
    let shortest = w.min(h);
    if shortest > 768.0 {
        w *= 768.0 / shortest;
        h *= 768.0 / shortest;
    }
    let tiles = (w / 512.0).ceil() as u64 * (h / 512.0).ceil() as u64;
    85 + 170 * tiles
}

fn positive_int(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_u64)
}

/// Tokens of an `image_url` content part. Accepted hints: `detail` in `image_url` (or in the
/// part); `width`/`height` (positive integers) in the part or in `image_url`.
fn image_part_tokens(part: &Map<String, Value>) -> u64 {
    let inner = part.get("image_url").and_then(Value::as_object);
    let field = |key: &str| inner.and_then(|i| i.get(key)).or_else(|| part.get(key));
    let detail = match field("detail").and_then(Value::as_str) {
        Some("low") => ImageDetail::Low,
        _ => ImageDetail::High,
    };
    let size = positive_int(field("width")).zip(positive_int(field("height")));
    image_tokens(detail, size)
}

/// Tokens of one content part.
pub fn part_tokens(part: &Map<String, Value>, counter: TextCounter) -> u64 {
    let text = |key: &str| {
        part.get(key)
            .and_then(Value::as_str)
            .map_or(0, |t| counter.count(t))
    };
    match part.get("type").and_then(Value::as_str) {
        Some("text") => text("text"),
        Some("refusal") => text("refusal"),
        Some("image_url") => image_part_tokens(part),
        _ => 0,
    }
}

fn call_tokens(call: &Value, counter: TextCounter) -> u64 {
    let function = call.get("function").unwrap_or(call);
    ["name", "arguments"]
        .iter()
        .filter_map(|k| function.get(k).and_then(Value::as_str))
        .map(|t| counter.count(t))
        .sum()
}

/// Tokens of one message, framing included (reply priming excluded).
pub fn message_tokens(message: &Map<String, Value>, counter: TextCounter) -> u64 {
    let mut n = TOKENS_PER_MESSAGE;
    for (key, value) in message {
        n += match (key.as_str(), value) {
            ("name", Value::String(name)) => counter.count(name) + TOKENS_PER_NAME,
            ("content", Value::Array(parts)) => parts
                .iter()
                .filter_map(Value::as_object)
                .map(|p| part_tokens(p, counter))
                .sum(),
            ("tool_calls", Value::Array(calls)) => {
                calls.iter().map(|c| call_tokens(c, counter)).sum()
            }
            ("function_call", call @ Value::Object(_)) => call_tokens(call, counter),
            (_, Value::String(text)) => counter.count(text),
            _ => 0,
        };
    }
    n
}

/// Text of a JSON value for the tool formula: strings as is, anything else as compact JSON.
fn value_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn without_period(text: &str) -> &str {
    text.strip_suffix('.').unwrap_or(text)
}

/// Tokens of tool (or legacy `functions`) definitions: per function `func_init` +
/// tokens(`name:description`); when it has properties, `prop_init` + per property
/// `prop_key` + tokens(`key:type:description`) (+ `enum_init` + per item `enum_item` +
/// tokens(item) when it has an `enum`); `func_end` once when any function is present.
/// Trailing periods of descriptions are dropped, as the formula does.
pub fn tools_tokens(tools: &[Value], counter: TextCounter) -> u64 {
    if tools.is_empty() {
        return 0;
    }
    let [func_init, prop_init, prop_key, enum_init, enum_item, func_end] = counter.tool_constants();
    let count = |t: &str| counter.count(t) as i64;
    let mut n: i64 = 0;
    for tool in tools {
        let function = tool
            .get("function")
            .filter(|f| f.is_object())
            .unwrap_or(tool);
        n += func_init;
        let name = value_text(function.get("name"));
        let description = value_text(function.get("description"));
        n += count(&format!("{name}:{}", without_period(&description)));
        let properties = function
            .get("parameters")
            .and_then(|p| p.get("properties"))
            .and_then(Value::as_object);
        if let Some(properties) = properties.filter(|p| !p.is_empty()) {
            n += prop_init;
            for (key, property) in properties {
                n += prop_key;
                if let Some(Value::Array(items)) = property.get("enum") {
                    n += enum_init;
                    for item in items {
                        n += enum_item + count(&value_text(Some(item)));
                    }
                }
                let kind = value_text(property.get("type"));
                let description = value_text(property.get("description"));
                n += count(&format!("{key}:{kind}:{}", without_period(&description)));
            }
        }
    }
    (n + func_end).max(0) as u64
}

/// Tokens `OpenAI` bills as `prompt_tokens` for `messages` (a JSON array of message objects)
/// and optional `tools` (a JSON array of tool definitions).
pub fn count_chat(
    messages_json: &[u8],
    tools_json: Option<&[u8]>,
    encoding: Encoding,
) -> Result<u64, CoreError> {
    let messages: Value =
        serde_json::from_slice(messages_json).map_err(|e| json_error(messages_json, &e))?;
    let Value::Array(messages) = messages else {
        return Err(CoreError::argument(
            "messages_json",
            "must be a JSON array of message objects",
        ));
    };
    let counter = TextCounter::Exact(encoding);
    let mut n = TOKENS_REPLY_PRIMING;
    for (i, message) in messages.iter().enumerate() {
        let Value::Object(message) = message else {
            return Err(CoreError::argument(
                "messages_json",
                format!("item {i} must be a JSON object"),
            ));
        };
        n += message_tokens(message, counter);
    }
    if let Some(tools_json) = tools_json {
        let tools: Value =
            serde_json::from_slice(tools_json).map_err(|e| json_error(tools_json, &e))?;
        let Value::Array(tools) = tools else {
            return Err(CoreError::argument(
                "tools_json",
                "must be a JSON array of tool definitions",
            ));
        };
        n += tools_tokens(&tools, counter);
    }
    Ok(n)
}

fn json_error(body: &[u8], error: &serde_json::Error) -> CoreError {
    crate::analyze::json_error(body, error)
}
