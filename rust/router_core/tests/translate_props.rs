//! Properties of stream translation: reads may split the stream anywhere without changing
//! the output, arbitrary bytes never panic, and a round trip keeps the content.

use std::fmt::Write as _;

use proptest::prelude::*;
use router_core::{AnthropicStreamRelay, OpenAIToAnthropicRelay, SseParser};
use serde_json::{json, Value};

/// One generated content block.
#[derive(Debug, Clone)]
enum GenBlock {
    Text(Vec<String>),
    Thinking(Vec<String>),
    /// id, name, argument fragments (concatenated: a JSON object's text).
    Tool(String, String, Vec<String>),
}

#[derive(Debug, Clone)]
struct GenStream {
    blocks: Vec<GenBlock>,
    stop_reason: &'static str,
    input_tokens: u64,
    cache_read: u64,
    output_tokens: u64,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 \"\\\\\n\t\r\\x01\\x08\\x0c\\x1f/\\x7fé🙂{}:,]{0,10}"
}

fn split_text(s: &str, cuts: &[usize]) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
    bounds.push(0);
    bounds.push(chars.len());
    bounds.sort_unstable();
    bounds
        .windows(2)
        .map(|w| chars[w[0]..w[1]].iter().collect())
        .collect()
}

fn block() -> impl Strategy<Value = GenBlock> {
    prop_oneof![
        proptest::collection::vec(text(), 1..4).prop_map(GenBlock::Text),
        proptest::collection::vec(text(), 1..3).prop_map(GenBlock::Thinking),
        (
            "toolu_[a-z0-9]{4}",
            "[a-z_]{1,8}",
            proptest::collection::btree_map("[a-z]{1,5}", text(), 0..3),
            proptest::collection::vec(any::<usize>(), 0..4),
        )
            .prop_map(|(id, name, args, cuts)| {
                let args = serde_json::to_string(&args).unwrap();
                GenBlock::Tool(id, name, split_text(&args, &cuts))
            }),
    ]
}

fn stream() -> impl Strategy<Value = GenStream> {
    (
        proptest::collection::vec(block(), 0..5),
        prop_oneof![
            Just("end_turn"),
            Just("max_tokens"),
            Just("tool_use"),
            Just("refusal")
        ],
        0..5000u64,
        0..5000u64,
        0..5000u64,
    )
        .prop_map(
            |(blocks, stop_reason, input_tokens, cache_read, output_tokens)| GenStream {
                blocks,
                stop_reason,
                input_tokens,
                cache_read,
                output_tokens,
            },
        )
}

/// Compact JSON, as Anthropic sends it; or pretty-printed over several `data:` lines,
/// which takes the relay's general parser instead of its fast path.
fn event(out: &mut String, data: &Value, pretty: bool) {
    let name = data["type"].as_str().unwrap();
    let _ = writeln!(out, "event: {name}");
    if pretty {
        for line in serde_json::to_string_pretty(data).unwrap().lines() {
            let _ = writeln!(out, "data: {line}");
        }
        out.push('\n');
    } else {
        let _ = write!(out, "data: {data}\n\n");
    }
}

fn render_anthropic(s: &GenStream) -> String {
    render(s, false)
}

fn render(s: &GenStream, pretty: bool) -> String {
    let mut out = String::new();
    let event = |out: &mut String, data: &Value| event(out, data, pretty);
    event(
        &mut out,
        &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": "claude", "content": [], "stop_reason": null,
            "usage": {"input_tokens": s.input_tokens, "cache_read_input_tokens": s.cache_read,
                      "cache_creation_input_tokens": 0, "output_tokens": 1}}}),
    );
    event(&mut out, &json!({"type": "ping"}));
    for (index, block) in s.blocks.iter().enumerate() {
        let (start, deltas): (Value, Vec<Value>) = match block {
            GenBlock::Text(parts) => (
                json!({"type": "text", "text": ""}),
                parts
                    .iter()
                    .map(|p| json!({"type": "text_delta", "text": p}))
                    .collect(),
            ),
            GenBlock::Thinking(parts) => (
                json!({"type": "thinking", "thinking": ""}),
                parts
                    .iter()
                    .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                    .chain([json!({"type": "signature_delta", "signature": "c2ln"})])
                    .collect(),
            ),
            GenBlock::Tool(id, name, parts) => (
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                parts
                    .iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                    .collect(),
            ),
        };
        event(
            &mut out,
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in deltas {
            event(
                &mut out,
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        event(
            &mut out,
            &json!({"type": "content_block_stop", "index": index}),
        );
    }
    event(
        &mut out,
        &json!({"type": "message_delta", "delta": {"stop_reason": s.stop_reason,
            "stop_sequence": null}, "usage": {"output_tokens": s.output_tokens}}),
    );
    event(&mut out, &json!({"type": "message_stop"}));
    out
}

fn reads<'a>(bytes: &'a [u8], raw_cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = raw_cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in cuts {
        parts.push(&bytes[start..cut]);
        start = cut;
    }
    parts.push(&bytes[start..]);
    parts
}

fn to_openai(reads: &[&[u8]]) -> (Vec<u8>, AnthropicStreamRelay) {
    let mut relay = AnthropicStreamRelay::new("served", "chatcmpl-1", 5);
    let mut out = Vec::new();
    for read in reads {
        relay.feed(read, &mut out);
    }
    relay.finish(&mut out);
    (out, relay)
}

fn to_anthropic(reads: &[&[u8]]) -> (Vec<u8>, OpenAIToAnthropicRelay) {
    let mut relay = OpenAIToAnthropicRelay::new("served", "msg_x", 77);
    let mut out = Vec::new();
    for read in reads {
        relay.feed(read, &mut out);
    }
    relay.finish(&mut out);
    (out, relay)
}

/// What a stream says, whichever format: (text, thinking, [(id, name, args)]).
type Content = (String, String, Vec<(String, String, String)>);

fn anthropic_content(bytes: &[u8]) -> Content {
    let mut parser = SseParser::new();
    let mut events = parser.feed(bytes);
    events.extend(parser.finish());
    let (mut text, mut thinking, mut tools) = (String::new(), String::new(), Vec::new());
    for e in events {
        let d: Value = serde_json::from_str(&e.data).unwrap();
        match d["type"].as_str().unwrap() {
            "content_block_start" if d["content_block"]["type"] == "tool_use" => tools.push((
                d["content_block"]["id"].as_str().unwrap().to_owned(),
                d["content_block"]["name"].as_str().unwrap().to_owned(),
                String::new(),
            )),
            "content_block_delta" => {
                let delta = &d["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => text.push_str(delta["text"].as_str().unwrap()),
                    "thinking_delta" => thinking.push_str(delta["thinking"].as_str().unwrap()),
                    "input_json_delta" => tools
                        .last_mut()
                        .unwrap()
                        .2
                        .push_str(delta["partial_json"].as_str().unwrap()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    (text, thinking, tools)
}

fn openai_content(bytes: &[u8]) -> Content {
    let (mut text, mut thinking, mut tools) = (String::new(), String::new(), Vec::new());
    for event in std::str::from_utf8(bytes).unwrap().split("\n\n") {
        let Some(data) = event.strip_prefix("data: ") else {
            continue;
        };
        let chunk: Value = serde_json::from_str(data).unwrap();
        let delta = &chunk["choices"][0]["delta"];
        text.push_str(delta["content"].as_str().unwrap_or(""));
        thinking.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().unwrap() as usize;
            if let Some(id) = call["id"].as_str() {
                assert_eq!(i, tools.len());
                let name = call["function"]["name"].as_str().unwrap().to_owned();
                tools.push((id.to_owned(), name, String::new()));
            }
            tools[i]
                .2
                .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    (text, thinking, tools)
}

fn expected_content(s: &GenStream) -> Content {
    let (mut text, mut thinking, mut tools) = (String::new(), String::new(), Vec::new());
    for block in &s.blocks {
        match block {
            GenBlock::Text(p) => text.push_str(&p.concat()),
            GenBlock::Thinking(p) => thinking.push_str(&p.concat()),
            GenBlock::Tool(id, name, p) => tools.push((id.clone(), name.clone(), p.concat())),
        }
    }
    (text, thinking, tools)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn anthropic_to_openai_is_split_independent(
        s in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let wire = render_anthropic(&s);
        let (whole, whole_relay) = to_openai(&[wire.as_bytes()]);
        let (split, split_relay) = to_openai(&reads(wire.as_bytes(), &cuts));
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(whole_relay.state(), split_relay.state());
        // The compact fast path and the general parser agree byte for byte.
        let (general, general_relay) = to_openai(&[render(&s, true).as_bytes()]);
        prop_assert_eq!(&whole, &general);
        prop_assert_eq!(whole_relay.state(), general_relay.state());
        let state = whole_relay.state();
        prop_assert!(state.done);
        prop_assert_eq!(state.malformed, 0);
        prop_assert_eq!(openai_content(&whole), expected_content(&s));
        let usage = state.usage.unwrap();
        prop_assert_eq!(usage.prompt_tokens, s.input_tokens + s.cache_read);
        prop_assert_eq!(usage.cached_tokens, s.cache_read);
        prop_assert_eq!(usage.completion_tokens, s.output_tokens);
    }

    #[test]
    fn round_trip_through_openai_keeps_content(
        s in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let wire = render_anthropic(&s);
        let (openai, relay) = to_openai(&[wire.as_bytes()]);
        // What the gateway appends after the relay's chunks.
        let (p, c, cached, _) = {
            let u = relay.state().usage.unwrap();
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens)
        };
        let mut gateway = openai.clone();
        gateway.extend_from_slice(format!(
            "data: {{\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{p},\
             \"completion_tokens\":{c},\"prompt_tokens_details\":{{\"cached_tokens\":{cached}}}}}}}\n\n\
             data: [DONE]\n\n").as_bytes());
        let (back, back_relay) = to_anthropic(&[&gateway]);
        let (back_split, _) = to_anthropic(&reads(&gateway, &cuts));
        prop_assert_eq!(&back, &back_split);
        prop_assert_eq!(anthropic_content(&back), expected_content(&s));
        let state = back_relay.state();
        prop_assert!(state.done);
        prop_assert_eq!(state.stop_reason(), Some(s.stop_reason));
        let text = String::from_utf8(back).unwrap();
        let usage = format!(
            "\"usage\":{{\"input_tokens\":{},\"cache_read_input_tokens\":{},\"output_tokens\":{}}}",
            s.input_tokens, s.cache_read, s.output_tokens
        );
        prop_assert!(text.contains(&usage), "{} not in {}", usage, text);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_independently(
        bytes in proptest::collection::vec(
            prop_oneof![
                Just(b'{'), Just(b'}'), Just(b'"'), Just(b'\n'), Just(b':'), Just(b'\r'),
                any::<u8>(),
            ],
            0..300,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let (a, ra) = to_openai(&[&bytes]);
        let (b, rb) = to_openai(&reads(&bytes, &cuts));
        prop_assert_eq!(a, b);
        prop_assert_eq!(ra.state(), rb.state());
        let (a, ra) = to_anthropic(&[&bytes]);
        let (b, rb) = to_anthropic(&reads(&bytes, &cuts));
        prop_assert_eq!(a, b);
        prop_assert_eq!(ra.state(), rb.state());
    }

    #[test]
    fn mangled_events_never_panic(
        s in stream(),
        cut in any::<usize>(),
        junk in "[a-z{}\":,\\[\\]0-9]{0,8}",
    ) {
        // Truncate one event's JSON somewhere and splice junk in: counted, never fatal.
        let wire = render_anthropic(&s);
        let at = wire.char_indices().map(|(i, _)| i).nth(cut % wire.chars().count()).unwrap_or(0);
        let mangled = format!("{}{junk}\n\n{}", &wire[..at], &wire[at..]);
        let (_, clean) = to_openai(&[wire.as_bytes()]);
        let (_, relay) = to_openai(&[mangled.as_bytes()]);
        prop_assert!(relay.state().chunks <= clean.state().chunks);
        let (_, relay) = to_anthropic(&[mangled.as_bytes()]);
        prop_assert!(relay.state().malformed > 0 || relay.state().events <= 3);
    }
}
