//! Relaying an upstream OpenAI-format chat-completions stream to the client.
//!
//! Each upstream chunk is re-emitted with `model` set to the served model; `[DONE]`, error
//! events and the usage-only chunk are withheld so the gateway can close the stream with its
//! own final chunk. Usage, ids and progress are kept for metering.

use serde_json::{Map, Value};

use crate::sse::{SseEventRef, SseParser};

/// Token usage as the upstream reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    fn from_json(usage: &Map<String, Value>) -> Self {
        let int = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        let detail = |details: &str, key: &str| int(usage.get(details).and_then(|d| d.get(key)));
        Self {
            prompt_tokens: int(usage.get("prompt_tokens")),
            completion_tokens: int(usage.get("completion_tokens")),
            cached_tokens: detail("prompt_tokens_details", "cached_tokens"),
            reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens"),
        }
    }
}

/// What the relay learned from the stream so far (everything except the SSE parser).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayState {
    /// `data: [DONE]` was seen.
    pub done: bool,
    /// JSON text of the first upstream error event.
    pub error: Option<String>,
    /// `id` of the first chunk that had one.
    pub chunk_id: Option<String>,
    /// `created` of the first chunk that had one.
    pub created: Option<i64>,
    pub usage: Option<Usage>,
    /// Chunks forwarded.
    pub chunks: u64,
    /// Characters of delta text, refusal, reasoning and tool arguments forwarded.
    pub content_chars: u64,
    pub finish_reason: Option<String>,
    /// Events whose data was not a JSON object.
    pub malformed: u64,
}

/// Upstream OpenAI-format SSE bytes in, client bytes out.
#[derive(Debug, Clone)]
pub struct StreamRelay {
    parser: SseParser,
    model: Value,
    state: RelayState,
}

impl StreamRelay {
    /// A relay that reports `model` as the serving model in every chunk.
    pub fn new(model: &str) -> Self {
        Self {
            parser: SseParser::new(),
            model: Value::String(model.to_owned()),
            state: RelayState::default(),
        }
    }

    /// What was learned so far.
    pub fn state(&self) -> &RelayState {
        &self.state
    }

    /// Consume one upstream read, appending the client bytes it completes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Self {
            parser,
            model,
            state,
        } = self;
        parser.feed_with(input, |event| state.event(&event, model, out));
    }

    /// End of stream: flush a final event that lacked its blank line.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let Self {
            parser,
            model,
            state,
        } = self;
        parser.finish_with(|event| state.event(&event, model, out));
    }
}

impl RelayState {
    fn event(&mut self, event: &SseEventRef<'_>, model: &Value, out: &mut Vec<u8>) {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        let is_error_event = event.event == Some("error");
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(data) else {
            self.malformed += 1;
            if is_error_event {
                // Keep the upstream's words even when they are not JSON.
                let wrapped = serde_json::json!({ "error": { "message": event.data } });
                self.error.get_or_insert_with(|| wrapped.to_string());
            }
            return;
        };
        if is_error_event || chunk.contains_key("error") {
            self.error
                .get_or_insert_with(|| Value::Object(chunk).to_string());
            return;
        }
        if self.chunk_id.is_none() {
            self.chunk_id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
        }
        if self.created.is_none() {
            self.created = chunk.get("created").and_then(Value::as_i64);
        }
        if let Some(Value::Object(usage)) = chunk.get("usage") {
            self.usage = Some(Usage::from_json(usage));
        }
        let choices = chunk.get("choices");
        if matches!(choices, Some(Value::Array(c)) if c.is_empty())
            && matches!(chunk.get("usage"), Some(Value::Object(_)))
        {
            return; // usage-only chunk: the gateway sends its own final usage chunk
        }
        if let Some(Value::Array(choices)) = choices {
            for choice in choices {
                self.choice(choice);
            }
        }
        // Replacing an existing key keeps its position (serde_json `preserve_order`).
        chunk.insert("model".to_owned(), model.clone());
        out.extend_from_slice(b"data: ");
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &chunk);
        out.extend_from_slice(b"\n\n");
        self.chunks += 1;
    }

    fn choice(&mut self, choice: &Value) {
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        let chars = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map_or(0, |s| s.chars().count() as u64)
        };
        for key in ["content", "refusal", "reasoning_content"] {
            self.content_chars += chars(delta.get(key));
        }
        if let Some(Value::Array(calls)) = delta.get("tool_calls") {
            for call in calls {
                self.content_chars += chars(call.get("function").and_then(|f| f.get("arguments")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(input: &str) -> (StreamRelay, String) {
        let mut r = StreamRelay::new("served");
        let mut out = Vec::new();
        r.feed(input.as_bytes(), &mut out);
        r.finish(&mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn rewrites_model_and_tracks_progress() {
        let (r, out) = relay(concat!(
            "data: {\"id\":\"c1\",\"created\":7,\"model\":\"up\",\"choices\":[{\"index\":0,",
            "\"delta\":{\"content\":\"héllo\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,",
            "\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\n\n",
            "data: [DONE]\n\n",
        ));
        assert_eq!(
            out,
            concat!(
                "data: {\"id\":\"c1\",\"created\":7,\"model\":\"served\",\"choices\":[{\"index\":0,",
                "\"delta\":{\"content\":\"héllo\"},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],",
                "\"model\":\"served\"}\n\n",
            )
        );
        let s = r.state();
        assert!(s.done);
        assert_eq!((s.chunks, s.content_chars, s.malformed), (2, 5, 0));
        assert_eq!(s.chunk_id.as_deref(), Some("c1"));
        assert_eq!(s.created, Some(7));
        assert_eq!(s.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                cached_tokens: 1,
                reasoning_tokens: 0
            })
        );
    }

    #[test]
    fn withholds_errors_and_counts_malformed() {
        let (r, out) = relay("data: nope\n\ndata: {\"error\":{\"message\":\"x\"}}\n\nevent: error\ndata: {\"a\":1}\n\n");
        assert_eq!(out, "");
        let s = r.state();
        assert_eq!(s.malformed, 1);
        assert_eq!(s.error.as_deref(), Some("{\"error\":{\"message\":\"x\"}}"));
        assert!(!s.done);
    }
}
