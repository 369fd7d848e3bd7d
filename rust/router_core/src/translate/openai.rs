//! OpenAI `chat.completion.chunk` pieces: parsed borrowing the event's data, and written.

use std::borrow::Cow;

use serde::Deserialize;

use super::json::{cow, write_i64, write_str, write_u64, CowStr};
use crate::relay::Usage;

type Text<'a> = Option<CowStr<'a>>;

/// `delta.tool_calls[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallDelta<'a> {
    pub index: Option<u64>,
    pub id: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub arguments: Option<Cow<'a, str>>,
}

/// The first choice of a chunk (the gateway serves `n = 1`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Choice<'a> {
    pub content: Option<Cow<'a, str>>,
    pub refusal: Option<Cow<'a, str>>,
    /// `reasoning_content` (or `reasoning`, as some providers spell it).
    pub reasoning: Option<Cow<'a, str>>,
    pub tool_calls: Vec<ToolCallDelta<'a>>,
    pub finish_reason: Option<Cow<'a, str>>,
}

/// One parsed chunk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunk<'a> {
    pub choice: Option<Choice<'a>>,
    pub usage: Option<Usage>,
    /// The chunk carries an `error` member (an error event sent as a plain data event).
    pub error: Option<ErrorInfo<'a>>,
}

/// The `error` member of an error event (SPEC §6 shape).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorInfo<'a> {
    pub kind: Cow<'a, str>,
    pub message: Cow<'a, str>,
    pub code: Option<String>,
}

#[derive(Deserialize)]
struct RawFunction<'a> {
    #[serde(borrow, default)]
    name: Text<'a>,
    #[serde(borrow, default)]
    arguments: Text<'a>,
}

#[derive(Deserialize)]
struct RawToolCall<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    function: Option<RawFunction<'a>>,
}

#[derive(Deserialize)]
struct RawDelta<'a> {
    #[serde(borrow, default)]
    content: Text<'a>,
    #[serde(borrow, default)]
    refusal: Text<'a>,
    #[serde(borrow, default, alias = "reasoning")]
    reasoning_content: Text<'a>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<RawToolCall<'a>>>,
}

#[derive(Deserialize)]
struct RawChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<RawDelta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Text<'a>,
}

#[derive(Deserialize, Default)]
struct RawDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<RawDetails>,
    #[serde(default)]
    completion_tokens_details: Option<RawDetails>,
}

#[derive(Deserialize)]
struct RawError<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Text<'a>,
    #[serde(borrow, default)]
    message: Text<'a>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawChunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<RawChoice<'a>>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(borrow, default)]
    error: Option<RawError<'a>>,
}

impl<'a> Chunk<'a> {
    /// Parse one event's data; `None` when it is not a chunk-shaped JSON object.
    pub fn parse(data: &'a str) -> Option<Self> {
        if !data.trim_start().starts_with('{') {
            return None;
        }
        let raw: RawChunk<'a> = serde_json::from_str(data).ok()?;
        let choice = raw.choices.and_then(|c| c.into_iter().next()).map(|c| {
            let delta = c.delta;
            let (content, refusal, reasoning, calls) = match delta {
                Some(d) => (
                    cow(d.content),
                    cow(d.refusal),
                    cow(d.reasoning_content),
                    d.tool_calls.unwrap_or_default(),
                ),
                None => (None, None, None, Vec::new()),
            };
            Choice {
                content,
                refusal,
                reasoning,
                tool_calls: calls
                    .into_iter()
                    .map(|t| {
                        let (name, arguments) = match t.function {
                            Some(f) => (cow(f.name), cow(f.arguments)),
                            None => (None, None),
                        };
                        ToolCallDelta {
                            index: t.index,
                            id: cow(t.id),
                            name,
                            arguments,
                        }
                    })
                    .collect(),
                finish_reason: cow(c.finish_reason),
            }
        });
        let usage = raw.usage.map(|u| {
            let details = |d: &Option<RawDetails>, pick: fn(&RawDetails) -> Option<u64>| {
                d.as_ref().and_then(pick).unwrap_or(0)
            };
            Usage {
                prompt_tokens: u.prompt_tokens.unwrap_or(0),
                completion_tokens: u.completion_tokens.unwrap_or(0),
                cached_tokens: details(&u.prompt_tokens_details, |d| d.cached_tokens),
                reasoning_tokens: details(&u.completion_tokens_details, |d| d.reasoning_tokens),
            }
        });
        let error = raw.error.map(|e| {
            let code = match e.code {
                Some(serde_json::Value::String(s)) => Some(s),
                _ => None,
            };
            ErrorInfo {
                kind: cow(e.kind).unwrap_or_default(),
                message: cow(e.message).unwrap_or_default(),
                code,
            }
        });
        Some(Chunk {
            choice,
            usage,
            error,
        })
    }
}

/// A string to write into a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Str<'s> {
    /// Decoded text, escaped on writing.
    Plain(&'s str),
    /// Already JSON-escaped text (without quotes), copied as is.
    Escaped(&'s str),
}

impl Str<'_> {
    fn write(self, out: &mut Vec<u8>) {
        match self {
            Str::Plain(s) => write_str(out, s),
            Str::Escaped(s) => {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            }
        }
    }
}

/// What one emitted chunk's `delta` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOut<'s> {
    /// `{"role":"assistant","content":""}`: the stream's first chunk.
    Role,
    Content(Str<'s>),
    Reasoning(Str<'s>),
    /// The first fragment of a tool call.
    ToolStart {
        index: u64,
        id: &'s str,
        name: &'s str,
        arguments: &'s str,
    },
    ToolArguments {
        index: u64,
        arguments: Str<'s>,
    },
    /// `{}`: a chunk that only carries `finish_reason`.
    Empty,
}

/// Writes `data: {chat.completion.chunk}\n\n` with a fixed id, created and model.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[{"index":0,"delta":`
    prefix: Vec<u8>,
}

impl ChunkWriter {
    pub fn new(chunk_id: &str, created: i64, model: &str) -> Self {
        let mut prefix = b"data: {\"id\":".to_vec();
        write_str(&mut prefix, chunk_id);
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        write_i64(&mut prefix, created);
        prefix.extend_from_slice(b",\"model\":");
        write_str(&mut prefix, model);
        prefix.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        Self { prefix }
    }

    /// Append one chunk.
    pub fn write(&self, out: &mut Vec<u8>, delta: DeltaOut<'_>, finish_reason: Option<&str>) {
        out.extend_from_slice(&self.prefix);
        match delta {
            DeltaOut::Role => out.extend_from_slice(b"{\"role\":\"assistant\",\"content\":\"\"}"),
            DeltaOut::Content(text) => {
                out.extend_from_slice(b"{\"content\":");
                text.write(out);
                out.push(b'}');
            }
            DeltaOut::Reasoning(text) => {
                out.extend_from_slice(b"{\"reasoning_content\":");
                text.write(out);
                out.push(b'}');
            }
            DeltaOut::ToolStart {
                index,
                id,
                name,
                arguments,
            } => {
                out.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                write_u64(out, index);
                out.extend_from_slice(b",\"id\":");
                write_str(out, id);
                out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                write_str(out, name);
                out.extend_from_slice(b",\"arguments\":");
                write_str(out, arguments);
                out.extend_from_slice(b"}}]}");
            }
            DeltaOut::ToolArguments { index, arguments } => {
                out.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                write_u64(out, index);
                out.extend_from_slice(b",\"function\":{\"arguments\":");
                arguments.write(out);
                out.extend_from_slice(b"}}]}");
            }
            DeltaOut::Empty => out.extend_from_slice(b"{}"),
        }
        out.extend_from_slice(b",\"finish_reason\":");
        match finish_reason {
            Some(reason) => write_str(out, reason),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
    }
}
