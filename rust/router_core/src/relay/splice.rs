//! Writing a chunk by splicing: the upstream bytes, with only the `model` value replaced.

use memchr::{memchr, memchr2};

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_ws(c)) {
        i += 1;
    }
    i
}

/// `i` at an opening quote: the index just past the closing one.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let k = j + memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[k] == b'"' {
            return Some(k + 1);
        }
        j = k + 2; // the escaped byte cannot end the string
    }
}

/// `i` at the start of a value: the index just past it.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => j = skip_string(b, j)?,
                    b'{' | b'[' => {
                        depth += 1;
                        j += 1;
                    }
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        j += 1;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                    _ => j += 1,
                }
            }
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|&c| !is_ws(c) && !matches!(c, b',' | b'}' | b']'))
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The byte spans of every top-level `model` value of `data`, a JSON object that serde has
/// already validated. For the rare chunks whose `model` is escaped or not a string; `None`
/// if the text does not scan as expected.
pub fn find_model_spans(data: &str, spans: &mut Vec<(usize, usize)>) -> Option<()> {
    spans.clear();
    let b = data.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        match *b.get(i)? {
            b'}' => return Some(()),
            b',' => i = skip_ws(b, i + 1),
            _ => {}
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(b, i)?;
        let key = data.get(i..key_end)?;
        let is_model = key == "\"model\""
            || (key.contains('\\')
                && serde_json::from_str::<String>(key).is_ok_and(|k| k == "model"));
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let end = skip_value(b, i)?;
        if is_model {
            spans.push((i, end));
        }
        i = end;
    }
}

/// Append `data: <data>\n\n` with each span of `data` replaced by `model` (JSON text); with
/// no spans, `"model":<model>` is appended as the object's last member (`empty`: it has no
/// members yet). Line breaks (whitespace between tokens of a multi-line `data` field) become
/// spaces, so the chunk stays one `data:` line. `false`, with `out` unchanged, when the spans
/// do not fit `data`.
pub fn write_chunk(
    out: &mut Vec<u8>,
    data: &str,
    spans: &[(usize, usize)],
    model: &[u8],
    empty: bool,
) -> bool {
    let start = out.len();
    let bytes = data.as_bytes();
    out.reserve(data.len() + model.len() + 18);
    out.extend_from_slice(b"data: ");
    let body = out.len();
    if spans.is_empty() {
        let Some((b'}', body)) = bytes.split_last() else {
            out.truncate(start);
            return false;
        };
        out.extend_from_slice(body);
        out.extend_from_slice(if empty { b"\"model\":" } else { b",\"model\":" });
        out.extend_from_slice(model);
        out.push(b'}');
    } else {
        let mut pos = 0;
        for &(s, e) in spans {
            let Some(kept) = bytes.get(pos..s) else {
                out.truncate(start);
                return false;
            };
            out.extend_from_slice(kept);
            out.extend_from_slice(model);
            pos = e;
        }
        let Some(rest) = bytes.get(pos..) else {
            out.truncate(start);
            return false;
        };
        out.extend_from_slice(rest);
    }
    if memchr(b'\n', bytes).is_some() {
        for b in &mut out[body..] {
            if *b == b'\n' {
                *b = b' ';
            }
        }
    }
    out.extend_from_slice(b"\n\n");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(data: &str) -> Option<Vec<&str>> {
        let mut s = Vec::new();
        find_model_spans(data, &mut s)?;
        Some(s.iter().map(|&(a, b)| &data[a..b]).collect())
    }

    #[test]
    fn scanner_finds_top_level_model_values_only() {
        assert_eq!(
            spans(
                r#" { "a" : {"model":1,"s":"}\"]"} , "model" : "a\/b" ,"mod\u0065l":[1,{"x":"]"}],"model":null}"#
            ),
            Some(vec![r#""a\/b""#, r#"[1,{"x":"]"}]"#, "null"])
        );
        assert_eq!(spans("{}"), Some(vec![]));
        assert_eq!(spans(r#"{"model":-1.5e3}"#), Some(vec!["-1.5e3"]));
        assert_eq!(spans("[]"), None);
        assert_eq!(spans(r#"{"model":"#), None);
        assert_eq!(spans(r#"{"model":"x"#), None);
    }

    #[test]
    fn writes_spliced_or_appended() {
        let mut out = b"x".to_vec();
        assert!(write_chunk(
            &mut out,
            r#"{"model": "up" , "a":1}"#,
            &[(10, 14)],
            b"\"s\"",
            false
        ));
        assert_eq!(out, b"xdata: {\"model\": \"s\" , \"a\":1}\n\n");
        out.clear();
        assert!(write_chunk(&mut out, "{ }", &[], b"\"s\"", true));
        assert!(write_chunk(&mut out, "{\"a\":1}", &[], b"\"s\"", false));
        assert_eq!(
            out,
            b"data: { \"model\":\"s\"}\n\ndata: {\"a\":1,\"model\":\"s\"}\n\n"
        );
        out.clear();
        assert!(write_chunk(
            &mut out,
            "{\"model\":\n\"up\"}",
            &[(10, 14)],
            b"\"s\"",
            false
        ));
        assert_eq!(out, b"data: {\"model\": \"s\"}\n\n");
        out.clear();
        assert!(!write_chunk(&mut out, "{}", &[(1, 9)], b"\"s\"", false));
        assert!(!write_chunk(&mut out, "[]", &[], b"\"s\"", false));
        assert!(out.is_empty());
    }
}
