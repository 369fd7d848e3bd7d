//! Properties of the incremental SSE parser and the stream relay: reads may split the byte
//! stream anywhere without changing what comes out.

use std::fmt::Write as _;

use proptest::prelude::*;
use router_core::{SseEvent, SseParser, StreamRelay};

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
            if i == 0 { stream.push_str("data: not json\n\n"); }
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
        prop_assert_eq!(whole_state.malformed, u64::from(!contents.is_empty()));
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
