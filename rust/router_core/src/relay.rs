//! Relaying an upstream OpenAI-format chat-completions stream to the client.
//!
//! Each upstream chunk is re-emitted with `model` set to the served model; `[DONE]`, error
//! events and the usage-only chunk are withheld so the gateway can close the stream with its
//! own final chunk. Usage, ids and progress are kept for metering.
//!
//! Chunks are not re-encoded: each event's data is read once into a borrowed, typed view of
//! just the metered members, and the client bytes are the upstream bytes with only the
//! `model` value spliced in ([`splice`]); the upstream's key order, whitespace and string
//! escapes are kept. A chunk without `model` gets it as its last member. A plain chunk is read
//! by a hand-written scanner ([`scan`]) that skips the leading members it already read in the
//! stream's previous chunk when they repeat byte for byte; anything unusual (repeated or
//! escaped metered keys, a misshapen or error chunk, invalid JSON) is left to the serde view
//! ([`view`]), which reads exactly the same view and decides every such case.
//!
//! A JSON object that breaks the `chat.completion.chunk` shape the `OpenAI` SDK relies on
//! (`choices` not an array, `delta: null`, `content: 5`, …; see [`view::parse`]) is counted
//! in [`RelayState::malformed`] and dropped, like data that is not a JSON object.
//!
//! The forwarded completion text is kept (up to [`COMPLETION_TEXT_CAP`]) so that a stream
//! without upstream usage can be metered by an exact token count
//! ([`StreamRelay::completion_tokens`]).

mod scan;
mod splice;
mod view;

use serde_json::Value;

use crate::sse::{SseEventRef, SseParser};
use crate::tokens::Encoding;

/// Bytes of completion text kept for exact counting; beyond it, collection stops.
pub const COMPLETION_TEXT_CAP: usize = 4 * 1024 * 1024;

/// Token usage as the upstream reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
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
    /// Events whose data was not a JSON object, or an object that breaks the chunk shape.
    pub malformed: u64,
    /// The forwarded completion text: per choice of each forwarded chunk, delta `content`,
    /// `refusal`, `reasoning_content`, then the tool calls' `function.arguments`. At most
    /// the relay's cap ([`COMPLETION_TEXT_CAP`]) bytes, cut at a character boundary.
    pub completion_text: String,
    /// The cap was reached: `completion_text` holds only a prefix and collection stopped.
    pub completion_truncated: bool,
}

/// The served model and per-event scratch space, reused for the life of the stream.
#[derive(Debug, Clone)]
struct Rewrite {
    /// The served model as a JSON string literal.
    model_json: Vec<u8>,
    /// Byte spans of the `model` values of the chunk being written.
    spans: Vec<(usize, usize)>,
    /// The leading members of the last chunk the scanner read.
    prefix: scan::Prefix,
    /// Bytes of completion text to keep.
    text_cap: usize,
}

/// Upstream OpenAI-format SSE bytes in, client bytes out.
#[derive(Debug, Clone)]
pub struct StreamRelay {
    parser: SseParser,
    rewrite: Rewrite,
    state: RelayState,
}

impl StreamRelay {
    /// A relay that reports `model` as the serving model in every chunk.
    pub fn new(model: &str) -> Self {
        Self::with_text_cap(model, COMPLETION_TEXT_CAP)
    }

    /// [`StreamRelay::new`] keeping at most `text_cap` bytes of completion text.
    pub fn with_text_cap(model: &str, text_cap: usize) -> Self {
        let mut model_json = Vec::with_capacity(model.len() + 2);
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut model_json, model);
        Self {
            parser: SseParser::new(),
            rewrite: Rewrite {
                model_json,
                spans: Vec::new(),
                prefix: scan::Prefix::default(),
                text_cap,
            },
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
            rewrite,
            state,
        } = self;
        parser.feed_with(input, |event| state.event(&event, rewrite, out));
    }

    /// Completion tokens of what was forwarded, for a stream whose upstream sent no usage.
    ///
    /// With an encoding: the exact count of [`RelayState::completion_text`] (plus, when it was
    /// truncated, the estimate below for the characters beyond it). Without: the estimate
    /// `ceil(content_chars / 4)`, about 4 characters per token for English text.
    pub fn completion_tokens(&self, encoding: Option<Encoding>) -> u64 {
        let state = &self.state;
        let Some(encoding) = encoding else {
            return state.content_chars.div_ceil(4);
        };
        let exact = encoding.count(&state.completion_text) as u64;
        if !state.completion_truncated {
            return exact;
        }
        let kept = state.completion_text.chars().count() as u64;
        exact + state.content_chars.saturating_sub(kept).div_ceil(4)
    }

    /// End of stream: flush a final event that lacked its blank line.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let Self {
            parser,
            rewrite,
            state,
        } = self;
        parser.finish_with(|event| state.event(&event, rewrite, out));
    }
}

impl RelayState {
    /// The stream has ended (`[DONE]`), reported an error or sent an event the relay could
    /// not use: nothing after it is forwarded, because what follows a hole is not the answer.
    pub fn halted(&self) -> bool {
        self.done || self.error.is_some() || self.malformed > 0
    }
}

/// Replace `slot` with `value`, reusing its allocation.
fn set_string(slot: &mut Option<String>, value: &str) {
    match slot {
        Some(s) => {
            s.clear();
            s.push_str(value);
        }
        None => *slot = Some(value.to_owned()),
    }
}

impl RelayState {
    fn event(&mut self, event: &SseEventRef<'_>, rewrite: &mut Rewrite, out: &mut Vec<u8>) {
        let data = event.data.trim();
        if self.halted() || data.is_empty() {
            return; // nothing after the end, an error or a hole; an empty event is a keep-alive
        }
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        let is_error_event = event.event == Some("error");
        let mark = self.completion_text.len();
        let sink = (!self.completion_truncated).then_some(&mut self.completion_text);
        let Some(chunk) = read_chunk(data, rewrite, sink) else {
            self.malformed += 1;
            if is_error_event {
                // Keep the upstream's words even when they are not JSON.
                let wrapped = serde_json::json!({ "error": { "message": event.data } });
                self.error.get_or_insert_with(|| wrapped.to_string());
            }
            self.completion_text.truncate(mark);
            return;
        };
        if is_error_event || chunk.has_error {
            self.completion_text.truncate(mark);
            // Rare: the compact re-encoding the gateway has always reported.
            self.error.get_or_insert_with(|| {
                serde_json::from_str::<Value>(data)
                    .map_or_else(|_| data.to_owned(), |v| v.to_string())
            });
            return;
        }
        if chunk.misshapen {
            // The OpenAI SDK would crash on it: dropped, and nothing learned from it.
            self.completion_text.truncate(mark);
            self.malformed += 1;
            return;
        }
        if self.chunk_id.is_none() {
            self.chunk_id = chunk.id.map(std::borrow::Cow::into_owned);
        }
        if self.created.is_none() {
            self.created = chunk.created;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
            if chunk.choices_empty {
                return; // usage-only chunk: the gateway sends its own final usage chunk
            }
        }
        if self.completion_text.len() > rewrite.text_cap {
            let mut cut = rewrite.text_cap;
            while !self.completion_text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.completion_text.truncate(cut);
            self.completion_truncated = true;
        }
        if let Some(reason) = &chunk.finish_reason {
            set_string(&mut self.finish_reason, reason);
        }
        self.content_chars = self.content_chars.wrapping_add(chunk.content_chars);
        let Rewrite {
            model_json, spans, ..
        } = rewrite;
        // `model` escaped or not a string (rare): find its value(s) by scanning instead.
        let located = chunk.model_spans_known
            || splice::find_model_spans(data, spans).is_some_and(|()| !spans.is_empty());
        if !(located && splice::write_chunk(out, data, spans, model_json, chunk.members == 0)) {
            reencode(data, model_json, out);
        }
        self.chunks += 1;
    }
}

/// Read one event's data (trimmed): the scanner for a plain chunk, else the serde view, which
/// decides everything the scanner leaves to it. Both read the same view (see [`scan`]).
fn read_chunk<'a>(
    data: &'a str,
    rewrite: &mut Rewrite,
    mut sink: Option<&mut String>,
) -> Option<view::ChunkView<'a>> {
    let mark = sink.as_deref().map_or(0, String::len);
    rewrite.spans.clear();
    let fast = scan::parse(
        data,
        &mut rewrite.spans,
        sink.as_deref_mut(),
        &mut rewrite.prefix,
    );
    if fast.is_some() {
        return fast;
    }
    // The scanner's partial results are discarded.
    if let Some(s) = sink.as_deref_mut() {
        s.truncate(mark);
    }
    view::parse(data, &mut rewrite.spans, sink)
}

/// Last resort for a chunk that could not be spliced: decode, set `model`, re-encode.
fn reencode(data: &str, model_json: &[u8], out: &mut Vec<u8>) {
    let (Ok(Value::Object(mut chunk)), Ok(model)) = (
        serde_json::from_str::<Value>(data),
        serde_json::from_slice::<Value>(model_json),
    ) else {
        return;
    };
    // Replacing an existing key keeps its position (serde_json `preserve_order`).
    chunk.insert("model".to_owned(), model);
    out.extend_from_slice(b"data: ");
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &chunk);
    out.extend_from_slice(b"\n\n");
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
    fn withholds_errors_and_forwards_nothing_after_one() {
        let (r, out) = relay(concat!(
            "data: {\"error\":{\"message\":\"x\"}}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n",
        ));
        assert_eq!(out, "");
        let s = r.state();
        assert_eq!(s.error.as_deref(), Some("{\"error\":{\"message\":\"x\"}}"));
        assert!(!s.done && s.halted());
    }

    #[test]
    fn a_malformed_chunk_halts_the_stream() {
        for bad in [
            "data: nope\n\n",
            "data: {\"id\":\"x\",\"choices\":\"nope\",\"usage\":{\"prompt_tokens\":1}}\n\n",
            "data: {\"choices\":[{\"delta\":null,\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"b\",\"refusal\":5}}]}\n\n",
        ] {
            let input = String::from("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n")
                + "data:\n\n"
                + bad
                + "data: {\"choices\":[{\"delta\":{\"content\":\"c\"}}]}\n\n";
            let (r, out) = relay(&input);
            assert_eq!(
                out,
                "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"model\":\"served\"}\n\n",
                "{bad}"
            );
            let s = r.state();
            assert_eq!((s.chunks, s.malformed, s.content_chars), (1, 1, 1));
            assert_eq!((s.usage, s.finish_reason.as_deref()), (None, None));
            assert_eq!(s.completion_text, "a");
            assert!(s.halted());
        }
        let (r, _) =
            relay("data: {\"choices\":[{\"delta\":{\"content\":\"c\",\"tool_calls\":null}}]}\n\n");
        assert_eq!((r.state().chunks, r.state().malformed), (1, 0));
    }

    #[test]
    fn keeps_completion_text_up_to_the_cap() {
        let chunk = |text: &str| {
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
        };
        let mut r = StreamRelay::with_text_cap("m", 6);
        let mut out = Vec::new();
        r.feed(chunk("héllo").as_bytes(), &mut out);
        assert_eq!(
            r.completion_tokens(Some(Encoding::O200kBase)),
            Encoding::O200kBase.count("héllo") as u64
        );
        r.feed(chunk(" wörld").as_bytes(), &mut out);
        r.feed(chunk("!!!!").as_bytes(), &mut out);
        let s = r.state();
        // "héllo" is exactly the 6-byte cap; the chunk that crossed it was cut back to it
        assert_eq!(
            (s.completion_text.as_str(), s.completion_truncated),
            ("héllo", true)
        );
        assert_eq!(s.content_chars, 15);
        let exact = Encoding::O200kBase.count("héllo") as u64;
        assert_eq!(r.completion_tokens(Some(Encoding::O200kBase)), exact + 3); // 10 chars left
        assert_eq!(r.completion_tokens(None), 4);
    }
}
