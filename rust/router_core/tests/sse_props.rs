//! Properties of the incremental SSE parser and the stream relay: reads may split the byte
//! stream anywhere without changing what comes out.

use std::fmt::Write as _;

use proptest::prelude::*;
use router_core::relay::COMPLETION_TEXT_CAP;
use router_core::{Encoding, SseEvent, SseParser, StreamRelay};

fn parse_in_reads(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.clamp(start, bytes.len());
        events.extend(parser.feed(&bytes[start..cut]));
        start = cut;
    }
    events.extend(parser.feed(&bytes[start..]));
    events.extend(parser.finish());
    events
}

fn sorted_cuts(len: usize, raw: Vec<usize>) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.into_iter().map(|c| c % (len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// One structured event and how to spell it on the wire.
#[derive(Debug, Clone)]
struct WireEvent {
    event: Option<String>,
    data_lines: Vec<String>,
    id: Option<String>,
    comment: bool,
}

fn field_text() -> impl Strategy<Value = String> {
    // No line breaks inside a value; any other text, including ':' and non-ASCII.
    "[a-zA-Z0-9 :{}\"\\[\\],é🙂]{0,12}"
}

fn wire_event() -> impl Strategy<Value = WireEvent> {
    (
        proptest::option::of("[a-z]{1,8}"),
        proptest::collection::vec(field_text(), 1..4),
        proptest::option::of("[a-z0-9]{0,6}"),
        any::<bool>(),
    )
        .prop_map(|(event, data_lines, id, comment)| WireEvent {
            event,
            data_lines,
            id,
            comment,
        })
}

fn render(events: &[WireEvent], newline_choices: &[u8], bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let mut n = 0;
    let mut newline = |out: &mut Vec<u8>| {
        let choice = newline_choices
            .get(n % newline_choices.len().max(1))
            .copied()
            .unwrap_or(0);
        n += 1;
        // A bare '\n' right after a bare '\r' would merge into one "\r\n" line end.
        let after_cr = out.last() == Some(&b'\r');
        out.extend_from_slice(match choice % 3 {
            0 if after_cr => b"\r\n",
            0 => b"\n",
            1 => b"\r",
            _ => b"\r\n",
        });
    };
    for e in events {
        if e.comment {
            out.extend_from_slice(b": keep-alive");
            newline(&mut out);
        }
        if let Some(name) = &e.event {
            out.extend_from_slice(format!("event: {name}").as_bytes());
            newline(&mut out);
        }
        if let Some(id) = &e.id {
            out.extend_from_slice(format!("id:{id}").as_bytes());
            newline(&mut out);
        }
        for line in &e.data_lines {
            out.extend_from_slice(format!("data: {line}").as_bytes());
            newline(&mut out);
        }
        newline(&mut out);
    }
    out
}

fn expected(events: &[WireEvent]) -> Vec<SseEvent> {
    let mut last_id: Option<String> = None;
    events
        .iter()
        .map(|e| {
            if e.id.is_some() {
                last_id.clone_from(&e.id);
            }
            SseEvent {
                event: e.event.clone(),
                data: e.data_lines.join("\n"),
                id: last_id.clone(),
                retry: None,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn structured_stream_parses_to_its_events_under_any_split(
        events in proptest::collection::vec(wire_event(), 0..6),
        newlines in proptest::collection::vec(any::<u8>(), 1..8),
        bom in any::<bool>(),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let bytes = render(&events, &newlines, bom);
        let cuts = sorted_cuts(bytes.len(), raw_cuts);
        prop_assert_eq!(parse_in_reads(&bytes, &cuts), expected(&events));
    }

    #[test]
    fn arbitrary_bytes_parse_the_same_under_any_split(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(0xEF), any::<u8>(),
                        Just(b'd'), Just(b'a'), Just(b't')], 0..200),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let whole = parse_in_reads(&bytes, &[]);
        let cuts = sorted_cuts(bytes.len(), raw_cuts);
        prop_assert_eq!(parse_in_reads(&bytes, &cuts), whole);
    }

    #[test]
    fn byte_by_byte_equals_whole(events in proptest::collection::vec(wire_event(), 0..4),
                                 newlines in proptest::collection::vec(any::<u8>(), 1..4)) {
        let bytes = render(&events, &newlines, false);
        let cuts: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(parse_in_reads(&bytes, &cuts), expected(&events));
    }

    #[test]
    fn relay_output_is_split_independent(
        contents in proptest::collection::vec("[a-z é\"\\\\]{0,10}", 0..5),
        with_usage in any::<bool>(),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = String::new();
        for (i, c) in contents.iter().enumerate() {
            let chunk = serde_json::json!({
                "id": "c", "created": 1, "model": "up",
                "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": null}],
            });
            let _ = write!(stream, "data: {chunk}\r\n\r\n");
            if i == 0 { stream.push_str("data:\n\n: keep-alive\n\n"); }
        }
        if with_usage {
            stream.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}\n\n");
        }
        stream.push_str("data: [DONE]\n\n");
        let bytes = stream.as_bytes();
        let run = |cuts: &[usize]| {
            let mut relay = StreamRelay::new("served");
            let mut out = Vec::new();
            let mut start = 0;
            for &cut in cuts {
                relay.feed(&bytes[start..cut], &mut out);
                start = cut;
            }
            relay.feed(&bytes[start..], &mut out);
            relay.finish(&mut out);
            (out, relay.state().clone())
        };
        let (whole_out, whole_state) = run(&[]);
        let (split_out, split_state) = run(&sorted_cuts(bytes.len(), raw_cuts));
        prop_assert_eq!(&split_out, &whole_out);
        prop_assert_eq!(&split_state, &whole_state);
        prop_assert!(whole_state.done);
        prop_assert_eq!(whole_state.chunks, contents.len() as u64);
        prop_assert_eq!(whole_state.content_chars, contents.iter().map(|c| c.chars().count() as u64).sum::<u64>());
        prop_assert_eq!(whole_state.usage.is_some(), with_usage);
        prop_assert_eq!(whole_state.malformed, 0);
    }
}

#[test]
fn whatwg_field_rules() {
    let mut p = SseParser::new();
    let events = p.feed(
        b"\xEF\xBB\xBFdata\n\ndata:  two spaces\nretry: 15\nid: a\0b\n\nretry: 1x\nevent\ndata: x\n\n",
    );
    assert_eq!(
        events,
        vec![
            SseEvent {
                data: String::new(),
                ..SseEvent::default()
            },
            SseEvent {
                data: " two spaces".into(),
                retry: Some(15),
                ..SseEvent::default()
            },
            SseEvent {
                data: "x".into(),
                ..SseEvent::default()
            },
        ]
    );
}

#[test]
fn blank_line_without_data_only_resets() {
    let mut p = SseParser::new();
    assert!(p.feed(b"event: e\n\ndata: d\n\n")[0].event.is_none());
}

#[test]
fn finish_flushes_unterminated_event_and_line() {
    let mut p = SseParser::new();
    assert!(p.feed(b"data: a\ndata: b").is_empty());
    assert_eq!(
        p.finish(),
        vec![SseEvent {
            data: "a\nb".into(),
            ..SseEvent::default()
        }]
    );
    assert!(p.finish().is_empty());
}

#[test]
fn cr_at_read_edge_is_one_line_end() {
    let mut p = SseParser::new();
    let mut events = p.feed(b"data: a\r");
    events.extend(p.feed(b"\n"));
    events.extend(p.feed(b"\r\n"));
    assert_eq!(
        events,
        vec![SseEvent {
            data: "a".into(),
            ..SseEvent::default()
        }]
    );
}

#[test]
fn invalid_utf8_is_replaced_and_split_utf8_is_kept() {
    let mut p = SseParser::new();
    let mut events = p.feed(b"data: \xC3");
    events.extend(p.feed(b"\xA9 \xFF\n\n"));
    assert_eq!(events[0].data, "é \u{FFFD}");
}

// ---------------------------------------------------------------------------------------------
// The relay against a reference: the straightforward decode → set `model` → re-encode relay
// (the implementation before chunks were spliced). Same state on every stream; every emitted
// chunk is one `data:` line that decodes to the reference's chunk (the relay now keeps the
// upstream's bytes except `model`, so only the decoded JSON is compared).

mod reference {
    use router_core::relay::RelayState;
    use router_core::{SseEventRef, SseParser, Usage};
    use serde_json::{Map, Value};

    fn usage(usage: &Map<String, Value>) -> Usage {
        let int = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        let detail = |details: &str, key: &str| int(usage.get(details).and_then(|d| d.get(key)));
        Usage {
            prompt_tokens: int(usage.get("prompt_tokens")),
            completion_tokens: int(usage.get("completion_tokens")),
            cached_tokens: detail("prompt_tokens_details", "cached_tokens"),
            reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens"),
        }
    }

    /// The chunk shape the `OpenAI` SDK relies on, checked on the decoded value.
    fn misshapen(chunk: &Map<String, Value>) -> bool {
        let text_ok = |v: Option<&Value>| matches!(v, None | Some(Value::Null | Value::String(_)));
        let choice_ok = |choice: &Value| {
            let Value::Object(choice) = choice else {
                return false;
            };
            let delta_ok = match choice.get("delta") {
                None => true,
                Some(Value::Object(delta)) => {
                    ["content", "refusal", "reasoning_content"]
                        .iter()
                        .all(|k| text_ok(delta.get(*k)))
                        && match delta.get("tool_calls") {
                            None | Some(Value::Null) => true,
                            Some(Value::Array(calls)) => calls.iter().all(Value::is_object),
                            Some(_) => false,
                        }
                }
                Some(_) => false,
            };
            delta_ok && text_ok(choice.get("finish_reason"))
        };
        match chunk.get("choices") {
            None => false,
            Some(Value::Array(choices)) => !choices.iter().all(choice_ok),
            Some(_) => true,
        }
    }

    fn event(
        s: &mut RelayState,
        event: &SseEventRef<'_>,
        model: &str,
        cap: usize,
        out: &mut Vec<String>,
    ) {
        let data = event.data.trim();
        if s.done || s.error.is_some() || s.malformed > 0 || data.is_empty() {
            return; // halted, or a keep-alive
        }
        if data == "[DONE]" {
            s.done = true;
            return;
        }
        let is_error_event = event.event == Some("error");
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(data) else {
            s.malformed += 1;
            if is_error_event {
                let wrapped = serde_json::json!({ "error": { "message": event.data } });
                s.error.get_or_insert_with(|| wrapped.to_string());
            }
            return;
        };
        if is_error_event || chunk.contains_key("error") {
            s.error
                .get_or_insert_with(|| Value::Object(chunk).to_string());
            return;
        }
        if misshapen(&chunk) {
            s.malformed += 1;
            return;
        }
        if s.chunk_id.is_none() {
            s.chunk_id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
        }
        if s.created.is_none() {
            s.created = chunk.get("created").and_then(Value::as_i64);
        }
        if let Some(Value::Object(u)) = chunk.get("usage") {
            s.usage = Some(usage(u));
        }
        let choices = chunk.get("choices");
        if matches!(choices, Some(Value::Array(c)) if c.is_empty())
            && matches!(chunk.get("usage"), Some(Value::Object(_)))
        {
            return;
        }
        let mut text = String::new();
        if let Some(Value::Array(choices)) = choices {
            for choice in choices {
                if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                    s.finish_reason = Some(reason.to_owned());
                }
                let Some(delta) = choice.get("delta") else {
                    continue;
                };
                for key in ["content", "refusal", "reasoning_content"] {
                    text.extend(delta.get(key).and_then(Value::as_str));
                }
                if let Some(Value::Array(calls)) = delta.get("tool_calls") {
                    for call in calls {
                        let arguments = call.get("function").and_then(|f| f.get("arguments"));
                        text.extend(arguments.and_then(Value::as_str));
                    }
                }
            }
        }
        s.content_chars += text.chars().count() as u64;
        if !s.completion_truncated {
            s.completion_text.push_str(&text);
            if s.completion_text.len() > cap {
                let mut cut = cap;
                while !s.completion_text.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.completion_text.truncate(cut);
                s.completion_truncated = true;
            }
        }
        chunk.insert("model".to_owned(), Value::String(model.to_owned()));
        out.push(Value::Object(chunk).to_string());
        s.chunks += 1;
    }

    /// The reference relay over a whole stream: (chunks as compact JSON, state).
    pub fn relay(bytes: &[u8], model: &str, cap: usize) -> (Vec<String>, RelayState) {
        let mut parser = SseParser::new();
        let mut state = RelayState::default();
        let mut out = Vec::new();
        parser.feed_with(bytes, |e| event(&mut state, &e, model, cap, &mut out));
        parser.finish_with(|e| event(&mut state, &e, model, cap, &mut out));
        (out, state)
    }
}

/// JSON text with chosen spellings: duplicate keys, escapes, number forms, whitespace.
#[derive(Debug, Clone)]
enum J {
    Lit(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn render(&self, ws: &[u8], n: &mut usize, out: &mut String) {
        let space = |out: &mut String, n: &mut usize| {
            let w = ws.get(*n % ws.len().max(1)).copied().unwrap_or(0);
            *n += 1;
            out.push_str(match w % 8 {
                0 => " ",
                1 => "\n",
                2 => "\t ",
                _ => "",
            });
        };
        match self {
            J::Lit(text) => out.push_str(text),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    space(out, n);
                    item.render(ws, n, out);
                    space(out, n);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    space(out, n);
                    out.push_str(key);
                    space(out, n);
                    out.push(':');
                    space(out, n);
                    value.render(ws, n, out);
                    space(out, n);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string literal for `s`, plain or with every character `\u`-escaped.
fn string_literal() -> impl Strategy<Value = String> {
    ("[a-z é🙂\"\\\\/\n\u{1}]{0,8}", any::<bool>()).prop_map(|(s, escaped)| {
        if !escaped {
            return serde_json::to_string(&s).unwrap();
        }
        let mut lit = String::from("\"");
        for unit in s.encode_utf16() {
            let _ = write!(lit, "\\u{unit:04x}");
        }
        lit.push('"');
        lit
    })
}

fn key(name: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(format!("\"{name}\"")),
        1 => Just(format!("\"{}\\u{:04x}\"", &name[..name.len() - 1], name.as_bytes()[name.len() - 1])),
    ]
}

fn scalar() -> BoxedStrategy<J> {
    prop_oneof![
        Just(J::Lit("null".into())),
        Just(J::Lit("true".into())),
        Just(J::Lit("-7".into())),
        Just(J::Lit("42".into())),
        Just(J::Lit("1.5e3".into())),
        Just(J::Lit("18446744073709551615".into())),
        Just(J::Lit("9223372036854775808".into())),
        Just(J::Lit("1e400".into())),
        Just(J::Lit("\"\\ud800\"".into())),
        string_literal().prop_map(J::Lit),
    ]
    .boxed()
}

/// A value of a chosen shape, or (sometimes) something else of any type.
fn or_odd(shape: impl Strategy<Value = J> + 'static) -> impl Strategy<Value = J> {
    prop_oneof![
        6 => shape,
        1 => scalar(),
        1 => Just(J::Arr(vec![])),
        1 => Just(J::Obj(vec![])),
    ]
}

fn object(members: Vec<BoxedStrategy<Option<(String, J)>>>) -> BoxedStrategy<J> {
    (
        members,
        proptest::collection::vec(("\"[a-z_]{1,6}\"", scalar()), 0..2),
        proptest::option::weighted(0.2, (any::<proptest::sample::Index>(), scalar())),
    )
        .prop_flat_map(|(members, extra, duplicate)| {
            let mut all: Vec<(String, J)> = members.into_iter().flatten().collect();
            all.extend(extra);
            if let (Some((ix, value)), false) = (duplicate, all.is_empty()) {
                let key = all[ix.index(all.len())].0.clone();
                all.push((key, value)); // a repeated key: the last occurrence wins
            }
            Just(all).prop_shuffle()
        })
        .prop_map(J::Obj)
        .boxed()
}

fn member(
    name: &'static str,
    value: impl Strategy<Value = J> + 'static,
) -> BoxedStrategy<Option<(String, J)>> {
    proptest::option::weighted(0.7, (key(name), or_odd(value))).boxed()
}

fn int() -> impl Strategy<Value = J> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| J::Lit(n.to_string())),
        scalar()
    ]
}

fn text() -> impl Strategy<Value = J> {
    string_literal().prop_map(J::Lit)
}

fn chunk_json() -> impl Strategy<Value = J> {
    let function = object(vec![member("arguments", text()), member("name", text())]);
    let call = object(vec![member("index", int()), member("function", function)]);
    let delta = object(vec![
        member("role", text()),
        member("content", text()),
        member("refusal", text()),
        member("reasoning_content", text()),
        member(
            "tool_calls",
            proptest::collection::vec(call, 0..3).prop_map(J::Arr),
        ),
    ]);
    let choice = object(vec![
        member("index", int()),
        member("delta", delta),
        member("finish_reason", text()),
    ]);
    let details = |name: &'static str| object(vec![member(name, int())]);
    let usage = object(vec![
        member("prompt_tokens", int()),
        member("completion_tokens", int()),
        member("prompt_tokens_details", details("cached_tokens")),
        member("completion_tokens_details", details("reasoning_tokens")),
    ]);
    let error = proptest::option::weighted(0.05, (key("error"), scalar())).boxed();
    object(vec![
        member("id", text()),
        member("created", int()),
        member("model", text()),
        member("model", text()), // sometimes twice
        member(
            "choices",
            proptest::collection::vec(choice, 0..3).prop_map(J::Arr),
        ),
        member("usage", usage),
        error,
    ])
}

fn relay_event() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (chunk_json(), proptest::collection::vec(any::<u8>(), 1..16), "( |\n| \u{a0})?")
            .prop_map(|(j, ws, pad)| {
                let mut text = pad.clone();
                j.render(&ws, &mut 0, &mut text);
                text.push_str(&pad);
                let mut event = String::new();
                for line in text.split('\n') {
                    let _ = writeln!(event, "data: {line}");
                }
                event
            }),
        1 => Just("data: [DONE]\n".to_owned()),
        1 => Just("data: not json\n".to_owned()),
        1 => Just("event: error\ndata: {\"error\": {\"message\": \"x\"}}\n".to_owned()),
        1 => Just("event: error\ndata: oops\n".to_owned()),
        1 => Just(": keep-alive\n".to_owned()),
    ]
}

/// Pieces of SSE and JSON syntax (and bad UTF-8) to build noisy streams from.
const NOISE: &[&[u8]] = &[
    b"data: ",
    b"{",
    b"}",
    b"\"model\"",
    b":",
    b"\"x\"",
    b",",
    b"[",
    b"]",
    b"\n",
    b"\n\n",
    b"\"choices\"",
    b"\"usage\"",
    b"1",
    b"null",
    b"\\",
    b"\"",
    b"\r",
    b" ",
    b"\xC3",
    b"\xFF",
    b"event: error\n",
    b"[DONE]",
];

/// The relay's completion-text cap: the real one, or a few bytes so that truncation happens.
fn text_cap() -> impl Strategy<Value = usize> {
    prop_oneof![Just(COMPLETION_TEXT_CAP), 0usize..24]
}

fn check_against_reference(bytes: &[u8], cuts: &[usize], cap: usize) -> Result<(), TestCaseError> {
    let mut relay = StreamRelay::with_text_cap("served/\"m\"", cap);
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        relay.feed(&bytes[start..cut], &mut out);
        start = cut;
    }
    relay.feed(&bytes[start..], &mut out);
    relay.finish(&mut out);
    let (want, want_state) = reference::relay(bytes, "served/\"m\"", cap);
    prop_assert_eq!(relay.state(), &want_state);
    let text = String::from_utf8(out).expect("relay output is UTF-8");
    let got: Vec<&str> = text.split_terminator("\n\n").collect();
    prop_assert_eq!(got.len(), want.len());
    prop_assert!(text.is_empty() || text.ends_with("\n\n"));
    for (line, want) in got.iter().zip(&want) {
        prop_assert!(
            line.starts_with("data: ") && !line.contains('\n'),
            "{line:?}"
        );
        let decoded: serde_json::Value = serde_json::from_str(&line[6..]).expect("valid JSON");
        prop_assert_eq!(&decoded.to_string(), want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn relay_matches_the_decode_reencode_reference(
        events in proptest::collection::vec(relay_event(), 0..6),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..6),
        cap in text_cap(),
    ) {
        let stream = events.join("\n");
        let bytes = stream.as_bytes();
        check_against_reference(bytes, &[], cap)?;
        check_against_reference(bytes, &sorted_cuts(bytes.len(), raw_cuts), cap)?;
    }

    #[test]
    fn relay_never_panics_and_matches_reference_on_noise(
        pieces in proptest::collection::vec(proptest::sample::select(NOISE), 0..60),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let bytes = pieces.concat();
        check_against_reference(&bytes, &[], COMPLETION_TEXT_CAP)?;
        check_against_reference(&bytes, &sorted_cuts(bytes.len(), raw_cuts), COMPLETION_TEXT_CAP)?;
    }

    #[test]
    fn relay_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut relay = StreamRelay::new("m");
        let mut out = Vec::new();
        relay.feed(&bytes, &mut out);
        relay.finish(&mut out);
    }
}

/// A well-shaped content chunk, sometimes with a tool-call fragment, written by `serde_json`.
fn content_chunk() -> impl Strategy<Value = (String, String)> {
    (
        "[a-z é🙂\"\\\\\n]{0,12}",
        proptest::option::of("[a-z{}\":, ]{0,8}"),
        any::<bool>(),
    )
        .prop_map(|(content, arguments, null_refusal)| {
            let mut delta = serde_json::json!({ "content": content });
            if null_refusal {
                delta["refusal"] = serde_json::Value::Null;
            }
            let mut text = content;
            if let Some(arguments) = arguments {
                delta["tool_calls"] =
                    serde_json::json!([{ "index": 0, "function": { "arguments": arguments } }]);
                text.push_str(&arguments);
            }
            let chunk = serde_json::json!({
                "id": "c", "model": "up",
                "choices": [{ "index": 0, "delta": delta, "finish_reason": null }],
            });
            (format!("data: {chunk}\n\n"), text)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn completion_tokens_count_the_forwarded_text_exactly(
        chunks in proptest::collection::vec(content_chunk(), 0..8),
        misshapen in proptest::collection::vec(0usize..4, 0..3),
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        const JUNK: [&str; 4] = [
            "data: {\"choices\":[{\"delta\":{\"content\":5}}]}\n\n",
            "data: {\"choices\":[{\"delta\":null}]}\n\n",
            "data: {\"choices\":{\"delta\":{\"content\":\"x\"}}}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\",\"tool_calls\":[1]}}]}\n\n",
        ];
        // The first misshapen chunk halts the relay: nothing after it is forwarded.
        let mut stream = String::new();
        let mut text = String::new();
        let mut forwarded = 0u64;
        let mut halted = false;
        for (i, (chunk, chunk_text)) in chunks.iter().enumerate() {
            stream.push_str(chunk);
            if !halted {
                text.push_str(chunk_text);
                forwarded += 1;
            }
            if let Some(&j) = misshapen.get(i) {
                stream.push_str(JUNK[j]);
                halted = true;
            }
        }
        let bytes = stream.as_bytes();
        let mut relay = StreamRelay::new("m");
        let mut out = Vec::new();
        let mut start = 0;
        for cut in sorted_cuts(bytes.len(), raw_cuts) {
            relay.feed(&bytes[start..cut], &mut out);
            start = cut;
        }
        relay.feed(&bytes[start..], &mut out);
        relay.finish(&mut out);
        let state = relay.state();
        prop_assert_eq!(&state.completion_text, &text);
        prop_assert_eq!(state.chunks, forwarded);
        prop_assert_eq!(state.malformed, u64::from(halted));
        prop_assert_eq!(state.content_chars, text.chars().count() as u64);
        for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
            prop_assert_eq!(relay.completion_tokens(Some(encoding)), encoding.count(&text) as u64);
        }
        prop_assert_eq!(relay.completion_tokens(None), (text.chars().count() as u64).div_ceil(4));
    }
}
