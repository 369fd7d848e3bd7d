//! Anthropic Messages streaming events: parsed borrowing the event's data, and written back.
//!
//! Parsing goes through one flat, all-optional serde struct (fast, borrows strings without
//! escapes) and is then checked into [`Event`]; anything that does not fit is an `Err`, which
//! the relays count as malformed. Unknown event, block and delta types are kept as `Other`
//! so newer API versions pass through harmlessly.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{cow, write_str, write_u64, CowStr};

/// Token counts as Anthropic reports them; `None` when a field was absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Whether any prompt-side count is present.
    pub fn has_input(&self) -> bool {
        self.input_tokens.is_some()
            || self.cache_read_input_tokens.is_some()
            || self.cache_creation_input_tokens.is_some()
    }
}

/// The first event's `message` (only what a relay needs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageStart<'a> {
    pub id: Cow<'a, str>,
    pub model: Cow<'a, str>,
    pub usage: AnthropicUsage,
}

/// `content_block_start.content_block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block<'a> {
    Text(Cow<'a, str>),
    Thinking(Cow<'a, str>),
    /// `input` is the raw JSON of the block's initial input (normally `{}`).
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Option<&'a str>,
    },
    /// `redacted_thinking`, server tool blocks and anything newer.
    Other,
}

/// `content_block_delta.delta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta<'a> {
    Text(Cow<'a, str>),
    Thinking(Cow<'a, str>),
    InputJson(Cow<'a, str>),
    Signature(Cow<'a, str>),
    /// `citations_delta` and anything newer.
    Other,
}

/// One Anthropic stream event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    MessageStart(MessageStart<'a>),
    ContentBlockStart {
        index: u64,
        block: Block<'a>,
    },
    ContentBlockDelta {
        index: u64,
        delta: Delta<'a>,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        stop_reason: Option<Cow<'a, str>>,
        stop_sequence: Option<Cow<'a, str>>,
        usage: AnthropicUsage,
    },
    MessageStop,
    Ping,
    Error {
        kind: Cow<'a, str>,
        message: Cow<'a, str>,
    },
    /// An event type this version does not know.
    Other,
}

/// Why an event's data could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a JSON object of the expected field types.
    Json,
    /// Valid JSON, but a field the event type requires is missing.
    Missing(&'static str),
}

type Text<'a> = Option<CowStr<'a>>;

#[derive(Deserialize, Default)]
struct RawMessage<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    model: Text<'a>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct RawBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Text<'a>,
    #[serde(borrow, default)]
    thinking: Text<'a>,
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    name: Text<'a>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Text<'a>,
    #[serde(borrow, default)]
    text: Text<'a>,
    #[serde(borrow, default)]
    thinking: Text<'a>,
    #[serde(borrow, default)]
    partial_json: Text<'a>,
    #[serde(borrow, default)]
    signature: Text<'a>,
    #[serde(borrow, default)]
    stop_reason: Text<'a>,
    #[serde(borrow, default)]
    stop_sequence: Text<'a>,
}

#[derive(Deserialize)]
struct RawError<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Text<'a>,
    #[serde(borrow, default)]
    message: Text<'a>,
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Text<'a>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    message: Option<RawMessage<'a>>,
    #[serde(borrow, default)]
    content_block: Option<RawBlock<'a>>,
    #[serde(borrow, default)]
    delta: Option<RawDelta<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(borrow, default)]
    error: Option<RawError<'a>>,
}

impl<'a> Event<'a> {
    /// Parse one event's `data`; `sse_event` (the `event:` field) names the type when the
    /// data has no `type`.
    pub fn parse(data: &'a str, sse_event: Option<&str>) -> Result<Self, ParseError> {
        if !data.trim_start().starts_with('{') {
            return Err(ParseError::Json);
        }
        let raw: RawEvent<'a> = serde_json::from_str(data).map_err(|_| ParseError::Json)?;
        let kind = raw
            .kind
            .as_ref()
            .map(|k| k.0.as_ref())
            .or(sse_event)
            .unwrap_or("");
        let index = || raw.index.ok_or(ParseError::Missing("index"));
        Ok(match kind {
            "message_start" => {
                let message = raw.message.ok_or(ParseError::Missing("message"))?;
                Event::MessageStart(MessageStart {
                    id: cow(message.id).unwrap_or_default(),
                    model: cow(message.model).unwrap_or_default(),
                    usage: message.usage.unwrap_or_default(),
                })
            }
            "content_block_start" => {
                let index = index()?;
                let block = raw
                    .content_block
                    .ok_or(ParseError::Missing("content_block"))?;
                Event::ContentBlockStart {
                    index,
                    block: Block::from_raw(block),
                }
            }
            "content_block_delta" => {
                let index = index()?;
                let delta = raw.delta.ok_or(ParseError::Missing("delta"))?;
                Event::ContentBlockDelta {
                    index,
                    delta: Delta::from_raw(delta)?,
                }
            }
            "content_block_stop" => Event::ContentBlockStop { index: index()? },
            "message_delta" => {
                let (stop_reason, stop_sequence) = match raw.delta {
                    Some(d) => (cow(d.stop_reason), cow(d.stop_sequence)),
                    None => (None, None),
                };
                Event::MessageDelta {
                    stop_reason,
                    stop_sequence,
                    usage: raw.usage.unwrap_or_default(),
                }
            }
            "message_stop" => Event::MessageStop,
            "ping" => Event::Ping,
            "error" => {
                let error = raw.error.ok_or(ParseError::Missing("error"))?;
                Event::Error {
                    kind: cow(error.kind).unwrap_or(Cow::Borrowed("api_error")),
                    message: cow(error.message).unwrap_or_default(),
                }
            }
            _ => Event::Other,
        })
    }

    /// The `type` this event is written with (`None` for [`Event::Other`]).
    pub fn name(&self) -> Option<&'static str> {
        Some(match self {
            Event::MessageStart(_) => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
            Event::Ping => "ping",
            Event::Error { .. } => "error",
            Event::Other => return None,
        })
    }

    /// Append `event: <type>\ndata: {...}\n\n`, the way Anthropic spells it. Nothing is
    /// written for [`Event::Other`], [`Block::Other`] or [`Delta::Other`].
    pub fn write_sse(&self, out: &mut Vec<u8>) {
        let Some(name) = self.name() else { return };
        if matches!(
            self,
            Event::ContentBlockStart {
                block: Block::Other,
                ..
            } | Event::ContentBlockDelta {
                delta: Delta::Other,
                ..
            }
        ) {
            return;
        }
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"");
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
        self.write_body(out);
        out.extend_from_slice(b"}\n\n");
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            Event::MessageStart(m) => {
                out.extend_from_slice(b",\"message\":{\"id\":");
                write_str(out, &m.id);
                out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
                write_str(out, &m.model);
                out.extend_from_slice(
                    b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":",
                );
                write_usage(out, &m.usage);
                out.push(b'}');
            }
            Event::ContentBlockStart { index, block } => {
                write_index(out, *index);
                out.extend_from_slice(b",\"content_block\":");
                block.write(out);
            }
            Event::ContentBlockDelta { index, delta } => {
                write_index(out, *index);
                out.extend_from_slice(b",\"delta\":");
                delta.write(out);
            }
            Event::ContentBlockStop { index } => write_index(out, *index),
            Event::MessageDelta {
                stop_reason,
                stop_sequence,
                usage,
            } => {
                out.extend_from_slice(b",\"delta\":{\"stop_reason\":");
                write_opt_str(out, stop_reason.as_deref());
                out.extend_from_slice(b",\"stop_sequence\":");
                write_opt_str(out, stop_sequence.as_deref());
                out.extend_from_slice(b"},\"usage\":");
                write_usage(out, usage);
            }
            Event::Error { kind, message } => {
                out.extend_from_slice(b",\"error\":{\"type\":");
                write_str(out, kind);
                out.extend_from_slice(b",\"message\":");
                write_str(out, message);
                out.push(b'}');
            }
            Event::MessageStop | Event::Ping | Event::Other => {}
        }
    }
}

impl<'a> Block<'a> {
    fn from_raw(raw: RawBlock<'a>) -> Self {
        match raw.kind.as_ref() {
            "text" => Block::Text(cow(raw.text).unwrap_or_default()),
            "thinking" => Block::Thinking(cow(raw.thinking).unwrap_or_default()),
            "tool_use" => Block::ToolUse {
                id: cow(raw.id).unwrap_or_default(),
                name: cow(raw.name).unwrap_or_default(),
                input: raw.input.map(RawValue::get),
            },
            _ => Block::Other,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Block::Text(text) => {
                out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                write_str(out, text);
            }
            Block::Thinking(thinking) => {
                out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
                write_str(out, thinking);
            }
            Block::ToolUse { id, name, input } => {
                out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
                write_str(out, id);
                out.extend_from_slice(b",\"name\":");
                write_str(out, name);
                out.extend_from_slice(b",\"input\":");
                out.extend_from_slice(input.unwrap_or("{}").as_bytes());
            }
            Block::Other => out.push(b'{'),
        }
        out.push(b'}');
    }
}

impl<'a> Delta<'a> {
    fn from_raw(raw: RawDelta<'a>) -> Result<Self, ParseError> {
        let need = |v: Text<'a>, field| cow(v).ok_or(ParseError::Missing(field));
        Ok(match raw.kind.as_ref().map_or("", |k| k.0.as_ref()) {
            "text_delta" => Delta::Text(need(raw.text, "delta.text")?),
            "thinking_delta" => Delta::Thinking(need(raw.thinking, "delta.thinking")?),
            "input_json_delta" => Delta::InputJson(need(raw.partial_json, "delta.partial_json")?),
            "signature_delta" => Delta::Signature(need(raw.signature, "delta.signature")?),
            _ => Delta::Other,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        let (kind, field, value): (&[u8], &[u8], &str) = match self {
            Delta::Text(t) => (b"text_delta", b"text", t),
            Delta::Thinking(t) => (b"thinking_delta", b"thinking", t),
            Delta::InputJson(t) => (b"input_json_delta", b"partial_json", t),
            Delta::Signature(t) => (b"signature_delta", b"signature", t),
            Delta::Other => {
                out.extend_from_slice(b"{}");
                return;
            }
        };
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind);
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(field);
        out.extend_from_slice(b"\":");
        write_str(out, value);
        out.push(b'}');
    }
}

/// Which text a [`CompactDelta`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactKind {
    Text,
    Thinking,
    InputJson,
}

/// A `content_block_delta` spelled exactly as Anthropic's API writes it, with its string
/// still JSON-escaped: the fast path for the bulk of every stream (no parse, no re-escape).
///
/// [`CompactDelta::parse`] accepts only strings whose escaping is the canonical one that
/// [`write_str`] would produce (escapes `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`; no
/// `\u`, `\/` or raw control characters), so copying `escaped` gives the same bytes as
/// decoding and re-encoding. Anything else returns `None` and takes the full parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactDelta<'a> {
    pub index: u64,
    pub kind: CompactKind,
    /// The string's JSON text without its quotes.
    pub escaped: &'a str,
    /// Characters of the decoded string.
    pub chars: u64,
}

impl<'a> CompactDelta<'a> {
    pub fn parse(data: &'a str) -> Option<Self> {
        let rest = data.strip_prefix(r#"{"type":"content_block_delta","index":"#)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 18 || (digits > 1 && rest.starts_with('0')) {
            return None;
        }
        let index = rest[..digits].parse().ok()?;
        let rest = rest[digits..].strip_prefix(r#","delta":{"type":""#)?;
        let (kind, rest) = if let Some(r) = rest.strip_prefix(r#"text_delta","text":""#) {
            (CompactKind::Text, r)
        } else if let Some(r) = rest.strip_prefix(r#"thinking_delta","thinking":""#) {
            (CompactKind::Thinking, r)
        } else if let Some(r) = rest.strip_prefix(r#"input_json_delta","partial_json":""#) {
            (CompactKind::InputJson, r)
        } else {
            return None;
        };
        let (len, chars) = canonical_string(rest.as_bytes())?;
        if rest[len..].trim_end() != r#""}}"# {
            return None;
        }
        Some(Self {
            index,
            kind,
            escaped: &rest[..len],
            chars,
        })
    }
}

/// Length up to the closing quote and decoded character count of a canonically escaped
/// JSON string body; `None` for any other spelling.
fn canonical_string(bytes: &[u8]) -> Option<(usize, u64)> {
    let mut chars = 0u64;
    let mut i = 0;
    loop {
        match *bytes.get(i)? {
            b'"' => return Some((i, chars)),
            b'\\' => {
                if !matches!(
                    bytes.get(i + 1)?,
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't'
                ) {
                    return None;
                }
                chars += 1;
                i += 2;
            }
            b if b < 0x20 => return None,
            b => {
                // Count UTF-8 leading bytes only.
                chars += u64::from(b & 0xC0 != 0x80);
                i += 1;
            }
        }
    }
}

fn write_index(out: &mut Vec<u8>, index: u64) {
    out.extend_from_slice(b",\"index\":");
    write_u64(out, index);
}

fn write_opt_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => write_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// The fields that are present, in Anthropic's order; `output_tokens` always.
fn write_usage(out: &mut Vec<u8>, usage: &AnthropicUsage) {
    out.push(b'{');
    let fields = [
        ("input_tokens", usage.input_tokens),
        (
            "cache_creation_input_tokens",
            usage.cache_creation_input_tokens,
        ),
        ("cache_read_input_tokens", usage.cache_read_input_tokens),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            write_u64(out, v);
            out.push(b',');
        }
    }
    out.extend_from_slice(b"\"output_tokens\":");
    write_u64(out, usage.output_tokens.unwrap_or(0));
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(data: &str) -> Option<(u64, CompactKind, &str, u64)> {
        CompactDelta::parse(data).map(|d| (d.index, d.kind, d.escaped, d.chars))
    }

    #[test]
    fn compact_deltas_take_the_fast_path() {
        let text = r#"{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":"a\"é\n🙂"}}"#;
        assert_eq!(
            compact(text),
            Some((12, CompactKind::Text, r#"a\"é\n🙂"#, 5))
        );
        let json = r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}  "#;
        assert_eq!(compact(json), Some((0, CompactKind::InputJson, "", 0)));
        let thinking = r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"x"}}"#;
        assert_eq!(compact(thinking).map(|c| c.1), Some(CompactKind::Thinking));
    }

    #[test]
    fn anything_unusual_takes_the_general_parser() {
        for data in [
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"\u00e9"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"a\/b"}}"#,
            r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"a"},"x":1}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"a"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"a"#,
            "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"\t\"}}",
            r#"{"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "a"}}"#,
        ] {
            assert_eq!(compact(data), None, "{data}");
        }
    }

    #[test]
    fn events_parse_and_write_back() {
        let start = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"cache_read_input_tokens":1,"output_tokens":0}}}"#;
        let delta = r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}"#;
        let tool = r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#;
        let error =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        for data in [start, delta, tool, error, r#"{"type":"ping"}"#] {
            let event = Event::parse(data, None).unwrap();
            let mut out = Vec::new();
            event.write_sse(&mut out);
            let name = event.name().unwrap();
            let written = String::from_utf8(out).unwrap();
            let body = written
                .strip_prefix(&format!("event: {name}\ndata: "))
                .and_then(|w| w.strip_suffix("\n\n"))
                .unwrap();
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(body).unwrap(),
                serde_json::from_str(data).unwrap(),
            );
            assert_eq!(a, b);
        }
        assert_eq!(
            Event::parse(r#"{"index":0}"#, Some("content_block_stop")),
            Ok(Event::ContentBlockStop { index: 0 })
        );
        assert_eq!(
            Event::parse(r#"{"type":"content_block_stop"}"#, None),
            Err(ParseError::Missing("index"))
        );
        assert_eq!(Event::parse("[]", None), Err(ParseError::Json));
    }
}
