//! A borrowed, typed view of one `chat.completion.chunk`: only the members the relay meters.
//!
//! The view is read in one pass by serde visitors that accept *any* JSON in every position,
//! so a chunk is rejected only when it is not valid JSON or not an object. A member of an
//! unexpected type either reads as absent (as `Value::get`/`as_str` did: `id`, `usage`,
//! `function`, …) or, where the `OpenAI` SDK would crash on it, marks the chunk misshapen
//! (see [`parse`]); the relay then drops it. Every value goes
//! through `deserialize_any`, the path `serde_json::Value` takes, so validation (string
//! escapes, number range, nesting depth) is the same as before. Duplicate keys resolve as in
//! `Value`: the last occurrence wins. Strings are borrowed from the event's data; characters
//! are counted without copying, and completion text is copied only into the caller's sink.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Usage;

/// What one value position expects; every other JSON type reads as [`Shape::other`].
trait Shape<'de>: Sized {
    type Out;
    fn other(self) -> Self::Out;
    fn null(self) -> Self::Out {
        self.other()
    }
    fn borrowed_str(self, v: &'de str) -> Self::Out {
        self.str(v)
    }
    fn str(self, _v: &str) -> Self::Out {
        self.other()
    }
    fn u64(self, _v: u64) -> Self::Out {
        self.other()
    }
    fn i64(self, _v: i64) -> Self::Out {
        self.other()
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(self.other())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(self.other())
    }
}

/// Reads one value of any JSON type through `deserialize_any` and hands it to a [`Shape`].
struct Seed<S>(S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Out;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Out, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Shape<'de>> Visitor<'de> for Seed<S> {
    type Value = S::Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _v: bool) -> Result<S::Out, E> {
        Ok(self.0.other())
    }
    fn visit_i64<E>(self, v: i64) -> Result<S::Out, E> {
        Ok(self.0.i64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<S::Out, E> {
        Ok(self.0.u64(v))
    }
    fn visit_f64<E>(self, _v: f64) -> Result<S::Out, E> {
        Ok(self.0.other())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<S::Out, E> {
        Ok(self.0.borrowed_str(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<S::Out, E> {
        Ok(self.0.str(v))
    }
    fn visit_unit<E>(self) -> Result<S::Out, E> {
        Ok(self.0.null())
    }
    fn visit_none<E>(self) -> Result<S::Out, E> {
        Ok(self.0.null())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S::Out, A::Error> {
        self.0.seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S::Out, A::Error> {
        self.0.map(map)
    }
}

/// Any JSON value, validated and dropped.
struct Skip;

struct SkipShape;

impl Shape<'_> for SkipShape {
    type Out = ();
    fn other(self) {}
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Seed(SkipShape).deserialize(deserializer).map(|()| Skip)
    }
}

/// An object key, classified by `classify` (keys with escapes are decoded first).
struct Key<C>(C);

impl<K: Default, C: FnOnce(&str) -> K> Shape<'_> for Key<C> {
    type Out = K;
    fn other(self) -> K {
        K::default()
    }
    fn str(self, v: &str) -> K {
        (self.0)(v)
    }
}

/// Read every member of an object, classifying keys with `classify`.
fn members<'de, A, K, C, F>(map: &mut A, classify: C, mut member: F) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    K: Default,
    C: Fn(&str) -> K + Copy,
    F: FnMut(K, &mut A) -> Result<(), A::Error>,
{
    while let Some(key) = map.next_key_seed(Seed(Key(classify)))? {
        member(key, map)?;
    }
    Ok(())
}

/// A non-negative integer (`Value::as_u64`).
struct U64;

impl Shape<'_> for U64 {
    type Out = Option<u64>;
    fn other(self) -> Option<u64> {
        None
    }
    fn u64(self, v: u64) -> Option<u64> {
        Some(v)
    }
}

/// An integer that fits `i64` (`Value::as_i64`).
struct I64;

impl Shape<'_> for I64 {
    type Out = Option<i64>;
    fn other(self) -> Option<i64> {
        None
    }
    fn u64(self, v: u64) -> Option<i64> {
        i64::try_from(v).ok()
    }
    fn i64(self, v: i64) -> Option<i64> {
        Some(v)
    }
}

/// A string, borrowed when it has no escapes (`Value::as_str`).
struct Str;

impl<'de> Shape<'de> for Str {
    type Out = Option<Cow<'de, str>>;
    fn other(self) -> Self::Out {
        None
    }
    fn borrowed_str(self, v: &'de str) -> Self::Out {
        Some(Cow::Borrowed(v))
    }
    fn str(self, v: &str) -> Self::Out {
        Some(Cow::Owned(v.to_owned()))
    }
}

/// `usage.*_tokens_details.<wanted>`: the integer when the details are an object.
struct Detail(&'static str);

impl<'de> Shape<'de> for Detail {
    type Out = Option<u64>;
    fn other(self) -> Option<u64> {
        None
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut found = None;
        while let Some(wanted) = map.next_key_seed(Seed(DetailKey(self.0)))? {
            if wanted {
                found = map.next_value_seed(Seed(U64))?;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(found)
    }
}

/// Whether a key is the wanted one.
struct DetailKey(&'static str);

impl Shape<'_> for DetailKey {
    type Out = bool;
    fn other(self) -> bool {
        false
    }
    fn str(self, v: &str) -> bool {
        v == self.0
    }
}

#[derive(Default)]
enum UsageKey {
    Prompt,
    Completion,
    PromptDetails,
    CompletionDetails,
    #[default]
    Other,
}

/// `usage`, when it is an object.
struct UsageShape;

impl<'de> Shape<'de> for UsageShape {
    type Out = Option<Usage>;
    fn other(self) -> Option<Usage> {
        None
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Usage>, A::Error> {
        let (mut prompt, mut completion, mut cached, mut reasoning) = (None, None, None, None);
        let classify = |k: &str| match k {
            "prompt_tokens" => UsageKey::Prompt,
            "completion_tokens" => UsageKey::Completion,
            "prompt_tokens_details" => UsageKey::PromptDetails,
            "completion_tokens_details" => UsageKey::CompletionDetails,
            _ => UsageKey::Other,
        };
        members(&mut map, classify, |key, map| {
            match key {
                UsageKey::Prompt => prompt = map.next_value_seed(Seed(U64))?,
                UsageKey::Completion => completion = map.next_value_seed(Seed(U64))?,
                UsageKey::PromptDetails => {
                    cached = map.next_value_seed(Seed(Detail("cached_tokens")))?;
                }
                UsageKey::CompletionDetails => {
                    reasoning = map.next_value_seed(Seed(Detail("reasoning_tokens")))?;
                }
                UsageKey::Other => map.next_value::<Skip>().map(|_| ())?,
            }
            Ok(())
        })?;
        Ok(Some(Usage {
            prompt_tokens: prompt.unwrap_or(0),
            completion_tokens: completion.unwrap_or(0),
            cached_tokens: cached.unwrap_or(0),
            reasoning_tokens: reasoning.unwrap_or(0),
        }))
    }
}

/// A text member that must be a string or `null` when present (`content`, `finish_reason`…).
#[derive(Default)]
enum Text<'a> {
    /// Absent or `null`.
    #[default]
    Null,
    Str(Cow<'a, str>),
    /// Any other JSON type: the chunk is misshapen.
    Bad,
}

impl<'a> Text<'a> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(s) => Some(s),
            _ => None,
        }
    }
    fn chars(&self) -> u64 {
        self.as_str().map_or(0, |s| s.chars().count() as u64)
    }
    fn into_cow(self) -> Option<Cow<'a, str>> {
        match self {
            Text::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct TextShape;

impl<'de> Shape<'de> for TextShape {
    type Out = Text<'de>;
    fn other(self) -> Self::Out {
        Text::Bad
    }
    fn null(self) -> Self::Out {
        Text::Null
    }
    fn borrowed_str(self, v: &'de str) -> Self::Out {
        Text::Str(Cow::Borrowed(v))
    }
    fn str(self, v: &str) -> Self::Out {
        Text::Str(Cow::Owned(v.to_owned()))
    }
}

/// `function`: its `arguments` when that is a string (anything else reads as absent).
struct Function;

impl<'de> Shape<'de> for Function {
    type Out = Option<Cow<'de, str>>;
    fn other(self) -> Self::Out {
        None
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut arguments = None;
        while let Some(is_arguments) = map.next_key_seed(Seed(DetailKey("arguments")))? {
            if is_arguments {
                arguments = map.next_value_seed(Seed(Str))?;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(arguments)
    }
}

/// One `tool_calls` entry: `Err(())` when it is not an object, else `function.arguments`.
struct ToolCall;

impl<'de> Shape<'de> for ToolCall {
    type Out = Result<Option<Cow<'de, str>>, ()>;
    fn other(self) -> Self::Out {
        Err(())
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut arguments = None;
        while let Some(is_function) = map.next_key_seed(Seed(DetailKey("function")))? {
            if is_function {
                arguments = map.next_value_seed(Seed(Function))?;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(Ok(arguments))
    }
}

/// What `tool_calls` contributes.
#[derive(Default)]
struct ToolCallsOut {
    chars: u64,
    /// Neither an array of objects nor `null`.
    bad: bool,
}

/// `tool_calls`: total argument characters; the arguments are appended to the sink.
struct ToolCalls<'s> {
    sink: Option<&'s mut String>,
}

impl<'de> Shape<'de> for ToolCalls<'_> {
    type Out = ToolCallsOut;
    fn other(self) -> ToolCallsOut {
        ToolCallsOut {
            chars: 0,
            bad: true,
        }
    }
    fn null(self) -> ToolCallsOut {
        ToolCallsOut::default()
    }
    fn seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<ToolCallsOut, A::Error> {
        let mut out = ToolCallsOut::default();
        while let Some(call) = seq.next_element_seed(Seed(ToolCall))? {
            match call {
                Ok(Some(arguments)) => {
                    out.chars = out.chars.wrapping_add(arguments.chars().count() as u64);
                    if let Some(sink) = self.sink.as_deref_mut() {
                        sink.push_str(&arguments);
                    }
                }
                Ok(None) => {}
                Err(()) => out.bad = true,
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
enum DeltaKey {
    Content,
    Refusal,
    Reasoning,
    ToolCalls,
    #[default]
    Other,
}

/// What one `delta` contributes.
#[derive(Default)]
struct DeltaOut {
    chars: u64,
    /// Not an object (`null` included), or a member of the wrong type.
    misshapen: bool,
}

/// `delta`: characters of text, refusal, reasoning and tool arguments. Their text is appended
/// to the sink in that order (content, refusal, reasoning, then tool arguments in order).
struct Delta<'s> {
    sink: Option<&'s mut String>,
}

impl<'de> Shape<'de> for Delta<'_> {
    type Out = DeltaOut;
    fn other(self) -> DeltaOut {
        DeltaOut {
            chars: 0,
            misshapen: true,
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<DeltaOut, A::Error> {
        let mut sink = self.sink;
        let mark = sink.as_deref().map_or(0, String::len);
        let (mut content, mut refusal, mut reasoning) = (Text::Null, Text::Null, Text::Null);
        let mut tools = ToolCallsOut::default();
        let classify = |k: &str| match k {
            "content" => DeltaKey::Content,
            "refusal" => DeltaKey::Refusal,
            "reasoning_content" => DeltaKey::Reasoning,
            "tool_calls" => DeltaKey::ToolCalls,
            _ => DeltaKey::Other,
        };
        members(&mut map, classify, |key, map| {
            match key {
                DeltaKey::Content => content = map.next_value_seed(Seed(TextShape))?,
                DeltaKey::Refusal => refusal = map.next_value_seed(Seed(TextShape))?,
                DeltaKey::Reasoning => reasoning = map.next_value_seed(Seed(TextShape))?,
                DeltaKey::ToolCalls => {
                    // Only tool arguments were appended since `mark`: a repeated key replaces them.
                    if let Some(s) = sink.as_deref_mut() {
                        s.truncate(mark);
                    }
                    let sink = sink.as_deref_mut();
                    tools = map.next_value_seed(Seed(ToolCalls { sink }))?;
                }
                DeltaKey::Other => map.next_value::<Skip>().map(|_| ())?,
            }
            Ok(())
        })?;
        let texts = [&content, &refusal, &reasoning];
        if let Some(s) = sink {
            let mut at = mark;
            for text in texts.iter().filter_map(|t| t.as_str()) {
                s.insert_str(at, text);
                at += text.len();
            }
        }
        let misshapen = tools.bad || texts.iter().any(|t| matches!(t, Text::Bad));
        let chars = texts
            .iter()
            .fold(tools.chars, |a, t| a.wrapping_add(t.chars()));
        Ok(DeltaOut { chars, misshapen })
    }
}

#[derive(Default)]
enum ChoiceKey {
    FinishReason,
    Delta,
    #[default]
    Other,
}

/// What one `choices` entry contributes.
#[derive(Default)]
struct ChoiceOut<'a> {
    chars: u64,
    finish_reason: Option<Cow<'a, str>>,
    /// Not an object, or `delta` / `finish_reason` of the wrong type.
    misshapen: bool,
}

struct Choice<'s> {
    sink: Option<&'s mut String>,
}

impl<'de> Shape<'de> for Choice<'_> {
    type Out = ChoiceOut<'de>;
    fn other(self) -> Self::Out {
        ChoiceOut {
            misshapen: true,
            ..ChoiceOut::default()
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut sink = self.sink;
        let mark = sink.as_deref().map_or(0, String::len);
        let mut finish_reason = Text::Null;
        let mut delta = DeltaOut::default();
        let classify = |k: &str| match k {
            "finish_reason" => ChoiceKey::FinishReason,
            "delta" => ChoiceKey::Delta,
            _ => ChoiceKey::Other,
        };
        members(&mut map, classify, |key, map| {
            match key {
                ChoiceKey::FinishReason => finish_reason = map.next_value_seed(Seed(TextShape))?,
                ChoiceKey::Delta => {
                    if let Some(s) = sink.as_deref_mut() {
                        s.truncate(mark); // a repeated `delta`: the last one wins
                    }
                    let sink = sink.as_deref_mut();
                    delta = map.next_value_seed(Seed(Delta { sink }))?;
                }
                ChoiceKey::Other => map.next_value::<Skip>().map(|_| ())?,
            }
            Ok(())
        })?;
        let misshapen = delta.misshapen || matches!(finish_reason, Text::Bad);
        Ok(ChoiceOut {
            chars: delta.chars,
            finish_reason: finish_reason.into_cow(),
            misshapen,
        })
    }
}

/// What the `choices` member contributes.
#[derive(Default)]
struct ChoicesOut<'a> {
    /// It is an empty array.
    empty: bool,
    chars: u64,
    /// The last string `finish_reason` among the choices.
    finish_reason: Option<Cow<'a, str>>,
    /// Not an array, or an entry is misshapen.
    misshapen: bool,
}

struct Choices<'s> {
    sink: Option<&'s mut String>,
}

impl<'de> Shape<'de> for Choices<'_> {
    type Out = ChoicesOut<'de>;
    fn other(self) -> Self::Out {
        ChoicesOut {
            misshapen: true,
            ..ChoicesOut::default()
        }
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut sink = self.sink;
        let mut out = ChoicesOut {
            empty: true,
            ..ChoicesOut::default()
        };
        loop {
            let sink = sink.as_deref_mut();
            let Some(choice) = seq.next_element_seed(Seed(Choice { sink }))? else {
                break;
            };
            out.empty = false;
            out.chars = out.chars.wrapping_add(choice.chars);
            out.misshapen |= choice.misshapen;
            if choice.finish_reason.is_some() {
                out.finish_reason = choice.finish_reason;
            }
        }
        Ok(out)
    }
}

/// A `model` member's value: its byte span (quotes included) when it is a plain string.
struct Model<'de> {
    base: &'de str,
}

impl<'de> Shape<'de> for Model<'de> {
    type Out = Option<(usize, usize)>;
    fn other(self) -> Self::Out {
        None
    }
    fn borrowed_str(self, v: &'de str) -> Self::Out {
        // serde_json borrows an unescaped string straight from the input: locate it there.
        let start = (v.as_ptr() as usize).checked_sub(self.base.as_ptr() as usize)?;
        let end = start.checked_add(v.len())?;
        let bytes = self.base.as_bytes();
        let open = start.checked_sub(1)?;
        (bytes.get(open) == Some(&b'"') && bytes.get(end) == Some(&b'"')).then_some((open, end + 1))
    }
}

#[derive(Default)]
enum ChunkKey {
    Id,
    Created,
    Model,
    Usage,
    Choices,
    Error,
    #[default]
    Other,
}

/// What the relay needs from one chunk.
// Independent facts about the chunk, not a state machine.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkView<'a> {
    pub id: Option<Cow<'a, str>>,
    pub created: Option<i64>,
    /// `usage`, when it is an object.
    pub usage: Option<Usage>,
    /// `choices` is an empty array.
    pub choices_empty: bool,
    /// Characters of delta text, refusal, reasoning and tool arguments over all choices.
    pub content_chars: u64,
    /// The last string `finish_reason` among the choices.
    pub finish_reason: Option<Cow<'a, str>>,
    /// The object breaks the `chat.completion.chunk` shape (see [`parse`]).
    pub misshapen: bool,
    /// The chunk has an `error` member.
    pub has_error: bool,
    /// Members of the object (duplicates included).
    pub members: usize,
    /// Every `model` member was a plain string whose span was pushed to the span list.
    pub model_spans_known: bool,
}

struct ChunkShape<'s, 'de> {
    base: &'de str,
    spans: &'s mut Vec<(usize, usize)>,
    sink: Option<&'s mut String>,
}

impl<'de> Shape<'de> for ChunkShape<'_, 'de> {
    type Out = Option<ChunkView<'de>>;
    fn other(self) -> Self::Out {
        None // not an object
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut view = ChunkView {
            model_spans_known: true,
            ..ChunkView::default()
        };
        let base = self.base;
        let spans = self.spans;
        let mut sink = self.sink;
        let mark = sink.as_deref().map_or(0, String::len);
        let classify = |k: &str| match k {
            "id" => ChunkKey::Id,
            "created" => ChunkKey::Created,
            "model" => ChunkKey::Model,
            "usage" => ChunkKey::Usage,
            "choices" => ChunkKey::Choices,
            "error" => ChunkKey::Error,
            _ => ChunkKey::Other,
        };
        members(&mut map, classify, |key, map| {
            view.members += 1;
            match key {
                ChunkKey::Id => view.id = map.next_value_seed(Seed(Str))?,
                ChunkKey::Created => view.created = map.next_value_seed(Seed(I64))?,
                ChunkKey::Model => match map.next_value_seed(Seed(Model { base }))? {
                    Some(span) => spans.push(span),
                    None => view.model_spans_known = false,
                },
                ChunkKey::Usage => view.usage = map.next_value_seed(Seed(UsageShape))?,
                ChunkKey::Choices => {
                    if let Some(s) = sink.as_deref_mut() {
                        s.truncate(mark); // a repeated `choices`: the last one wins
                    }
                    let sink = sink.as_deref_mut();
                    let choices = map.next_value_seed(Seed(Choices { sink }))?;
                    view.choices_empty = choices.empty;
                    view.content_chars = choices.chars;
                    view.finish_reason = choices.finish_reason;
                    view.misshapen = choices.misshapen;
                }
                ChunkKey::Error => {
                    view.has_error = true;
                    map.next_value::<Skip>()?;
                }
                ChunkKey::Other => map.next_value::<Skip>().map(|_| ())?,
            }
            Ok(())
        })?;
        Ok(Some(view))
    }
}

/// Read one event's data (already trimmed). `None` when it is not a JSON object. The spans
/// of plain-string `model` values are left in `spans` (cleared first), in document order.
///
/// The completion text of the chunk (per choice: delta `content`, `refusal`,
/// `reasoning_content`, then every tool call's `function.arguments`) is appended to `sink`
/// when one is given; the caller truncates it back if the chunk is not forwarded.
///
/// [`ChunkView::misshapen`] is set when the object breaks the chunk shape the `OpenAI` SDK
/// relies on: `choices` present but not an array; a choice that is not an object; `delta`
/// present and not an object (`null` included); `delta.content` / `refusal` /
/// `reasoning_content` present and neither a string nor `null`; `tool_calls` present and
/// neither an array of objects nor `null`; `finish_reason` neither a string nor `null`. As
/// everywhere, a repeated key is judged by its last occurrence.
pub fn parse<'a>(
    data: &'a str,
    spans: &mut Vec<(usize, usize)>,
    sink: Option<&mut String>,
) -> Option<ChunkView<'a>> {
    spans.clear();
    let mut de = serde_json::Deserializer::from_str(data);
    let view = Seed(ChunkShape {
        base: data,
        spans,
        sink,
    })
    .deserialize(&mut de)
    .ok()??;
    de.end().ok()?;
    Some(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(data: &str) -> Option<(ChunkView<'_>, Vec<(usize, usize)>)> {
        let mut spans = Vec::new();
        parse(data, &mut spans, None).map(|v| (v, spans))
    }

    #[test]
    fn reads_what_the_relay_meters() {
        let data = r#"{"id":"c\"1","created":-3,"model":"up","choices":[
            {"delta":{"content":"hé","refusal":null,"reasoning_content":"ab",
             "tool_calls":[{"function":{"arguments":"{\"a\""}},{"function":7},{}]},
             "finish_reason":"stop"},
            {"delta":{"tool_calls":null,"content":"\u00e9"},"finish_reason":null},
            {}],
            "usage":{"prompt_tokens":3,"completion_tokens":-1,
                     "prompt_tokens_details":{"cached_tokens":2},
                     "completion_tokens_details":[]}}"#;
        let mut spans = Vec::new();
        let mut sink = String::from("before|");
        let v = parse(data, &mut spans, Some(&mut sink)).unwrap();
        assert_eq!(v.id.as_deref(), Some("c\"1"));
        assert_eq!(v.created, Some(-3));
        assert_eq!(&data[spans[0].0..spans[0].1], "\"up\"");
        assert!(v.model_spans_known);
        assert_eq!(v.content_chars, 2 + 2 + 4 + 1);
        assert_eq!(sink, "before|héab{\"a\"é");
        assert_eq!(v.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            v.usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 0,
                cached_tokens: 2,
                reasoning_tokens: 0
            })
        );
        assert!(!v.choices_empty && !v.has_error && !v.misshapen);
        assert_eq!(v.members, 5);
    }

    #[test]
    fn misshapen_chunks_are_flagged() {
        for data in [
            r#"{"choices":"nope"}"#,
            r#"{"choices":null}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[3]}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[{"delta":null}]}"#,
            r#"{"choices":[{"delta":[1]}]}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[{"delta":{"refusal":{}}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":[]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":{}}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{},1]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":0}]}"#,
            r#"{"choices":[{"delta":{}},{"finish_reason":false}]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":1}}]}"#,
        ] {
            assert!(view(data).unwrap().0.misshapen, "{data}");
        }
        for data in [
            "{}",
            r#"{"choices":[]}"#,
            r#"{"choices":[{}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":null,"refusal":null,"reasoning_content":null,"tool_calls":null}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":null},{"function":{"arguments":1}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":1,"content":"a"}}],"id":7,"usage":[]}"#,
            r#"{"choices":5,"choices":[]}"#,
        ] {
            assert!(!view(data).unwrap().0.misshapen, "{data}");
        }
    }

    #[test]
    fn repeated_keys_replace_collected_text() {
        let data = r#"{"choices":[{"delta":{"content":"x"}}],"choices":[{"delta":{"content":"a","tool_calls":[{"function":{"arguments":"1"}}],"tool_calls":[{"function":{"arguments":"2","arguments":"3"}}],"refusal":"r"},"delta":{"content":"b","tool_calls":[{"function":{"arguments":"4"},"function":{"arguments":"5"}}]}},{"delta":{"reasoning_content":"z"}}]}"#;
        let mut spans = Vec::new();
        let mut sink = String::new();
        let v = parse(data, &mut spans, Some(&mut sink)).unwrap();
        assert_eq!(sink, "b5z");
        assert_eq!(v.content_chars, 3);
    }

    #[test]
    fn last_duplicate_wins_like_value() {
        let (v, spans) =
            view(r#"{"id":"a","id":1,"choices":[],"choices":[{"finish_reason":"x","finish_reason":0}],"model":"m","model":"n"}"#)
                .unwrap();
        assert_eq!(v.id, None);
        assert!(!v.choices_empty);
        assert_eq!(v.finish_reason, None);
        assert_eq!(spans.len(), 2);
    }

    #[test]
    fn escaped_or_odd_model_is_not_located() {
        for data in [
            r#"{"model":"a\/b"}"#,
            r#"{"model":null}"#,
            r#"{"model":{"a":1}}"#,
        ] {
            let (v, spans) = view(data).unwrap();
            assert!(!v.model_spans_known && spans.is_empty(), "{data}");
        }
        // An escaped key is still the `model` key; its plain value is located.
        let data = r#"{"mod\u0065l":"m"}"#;
        let (v, spans) = view(data).unwrap();
        assert!(v.model_spans_known);
        assert_eq!(&data[spans[0].0..spans[0].1], "\"m\"");
    }

    #[test]
    fn rejects_what_value_rejects() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        for data in [
            "",
            "[]",
            "\"s\"",
            "{",
            "{} x",
            r#"{"a":1e400}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"\ud800":1}"#,
            &deep,
        ] {
            let value_ok = matches!(
                serde_json::from_str::<serde_json::Value>(data),
                Ok(serde_json::Value::Object(_))
            );
            assert_eq!(view(data).is_some(), value_ok, "{data}");
        }
    }
}
