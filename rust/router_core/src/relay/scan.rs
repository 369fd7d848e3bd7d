//! A hand-written reader for plain chunks, tried before the serde view ([`super::view`]).
//!
//! Most chunks are plain: no repeated or escaped keys among the metered members, `model` an
//! unescaped string, no `error`, and the chunk shape the `OpenAI` SDK relies on. For those this
//! scanner reads the same [`ChunkView`] (and span list and completion text) as the serde view
//! in a single pass, without serde's visitors and without decoding skipped strings, and it
//! skips the leading members it read in the stream's previous chunk when they repeat byte for
//! byte ([`Prefix`]). It validates the whole text as strict JSON as it goes. Anything it is not
//! sure about gives up (`None`), and the caller reads the chunk with the serde view instead,
//! which decides every case, errors included. So the scanner only has to be right about what
//! it accepts:
//!
//! * JSON syntax as serde's (no trailing commas, no leading zeros, literals spelled out,
//!   strings without raw control characters, escapes `\" \\ \/ \b \f \n \r \t \uXXXX`);
//! * `\u` surrogates only as a high-low pair (serde rejects lone ones; the scanner gives up);
//! * numbers: an integer part of at most 200 digits and an exponent of at most 2 digits, so
//!   no float overflows (serde rejects `1e400`); in a metered position, an integer that may
//!   not fit `u64`/`i64` gives up;
//! * nesting at most [`MAX_DEPTH`] deep (serde's limit is 128);
//! * a metered member repeated or of an unexpected type (a `function` that is not an object
//!   and `arguments` that are not a string included), an escaped key in a metered object,
//!   escaped `id`, `model` or `finish_reason`, `error`, more than [`MAX_CALLS`] tool calls
//!   with arguments in one delta: gives up.
//!
//! Every reading function returns `None` when the scanner gives up, so a member that may be
//! absent reads as `Option<Option<_>>`.
#![allow(clippy::option_option)]

use std::borrow::Cow;

use super::view::ChunkView;
use super::Usage;

/// Deepest nesting the scanner reads (the top-level object is depth 1).
const MAX_DEPTH: u32 = 100;
/// Tool calls with string arguments in one delta.
const MAX_CALLS: usize = 8;
/// Digits of an integer part, and of an exponent, that cannot make a float overflow.
const MAX_INT_DIGITS: usize = 200;
const MAX_EXP_DIGITS: usize = 2;

const ONES: u64 = u64::MAX / 255;
const HIGHS: u64 = ONES << 7;

/// Index of the first `"`, `\` or control character (< 0x20) in `b`.
#[inline]
fn find_special(b: &[u8]) -> Option<usize> {
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // Per byte: zero (after the xor), or below 0x20. The lowest flagged byte is exact.
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let hits = hits & HIGHS;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

fn hex4(b: &[u8]) -> Option<u32> {
    let mut n = 0;
    for &c in b.get(..4)? {
        n = n << 4 | char::from(c).to_digit(16)?;
    }
    Some(n)
}

/// A string literal: its content between the quotes, and whether that has escapes.
#[derive(Clone, Copy, Default)]
struct Lit {
    start: usize,
    end: usize,
    escaped: bool,
}

/// A number as serde's `deserialize_any` would visit it.
enum Num {
    U64(u64),
    I64(i64),
    /// Visited as `f64` (fraction, exponent, `-0`).
    Float,
    /// An integer too long to tell here whether it fits.
    Long,
}

struct Scanner<'a> {
    data: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The byte at the cursor, consumed.
    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// At an opening quote: the literal, with the cursor past its closing quote.
    #[inline]
    fn string(&mut self) -> Option<Lit> {
        let start = self.i + 1;
        let end = start + find_special(self.b.get(start..)?)?;
        if self.b[end] != b'"' {
            return self.escaped_string(start, end);
        }
        self.i = end + 1;
        Some(Lit {
            start,
            end,
            escaped: false,
        })
    }

    /// [`Scanner::string`] from `j`, the first backslash or control character after `start`.
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, mut j: usize) -> Option<Lit> {
        loop {
            match self.b[j] {
                b'"' => {
                    self.i = j + 1;
                    return Some(Lit {
                        start,
                        end: j,
                        escaped: true,
                    });
                }
                b'\\' => j = self.escape(j)?,
                _ => return None, // a raw control character
            }
            j += find_special(self.b.get(j..)?)?;
        }
    }

    /// `j` at a backslash: the index past the escape (a surrogate pair is one escape).
    fn escape(&self, j: usize) -> Option<usize> {
        match *self.b.get(j + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(j + 2),
            b'u' => {
                let n = hex4(self.b.get(j + 2..)?)?;
                if (0xD800..0xDC00).contains(&n) {
                    let low = (self.b.get(j + 6..j + 8)? == b"\\u")
                        .then(|| hex4(self.b.get(j + 8..)?))??;
                    (0xDC00..0xE000).contains(&low).then_some(j + 12)
                } else {
                    (!(0xDC00..0xE000).contains(&n)).then_some(j + 6)
                }
            }
            _ => None,
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<Num> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        let int_digits = match self.peek()? {
            b'0' => {
                self.i += 1;
                1
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        };
        if int_digits > MAX_INT_DIGITS {
            return None;
        }
        let int_end = self.i;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !(1..=MAX_EXP_DIGITS).contains(&self.digits()) {
                return None;
            }
            float = true;
        }
        if float {
            return Some(Num::Float);
        }
        let max_digits = if negative { 18 } else { 19 };
        if int_digits > max_digits {
            return Some(Num::Long);
        }
        let value = self.b[int_start..int_end]
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        Some(match (negative, value) {
            (false, v) => Num::U64(v),
            (true, 0) => Num::Float, // serde reads `-0` as a float
            (true, v) => Num::I64(-(v as i64)),
        })
    }

    /// Any value, validated and skipped. `depth`: its nesting depth if it is a container.
    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                if depth > MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if self.peek()? != b'"' {
                        return None;
                    }
                    self.string()?;
                    self.ws();
                    if self.next()? != b':' {
                        return None;
                    }
                    self.ws();
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => self.elements(depth, |s| s.skip(depth + 1)).map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }

    /// At `{`: call `member` with each (unescaped) key, the cursor at its value, which
    /// `member` must consume. `depth`: the object's nesting depth.
    #[inline]
    fn members(
        &mut self,
        depth: u32,
        mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            if key.escaped {
                return None;
            }
            let b = self.b;
            let key = &b[key.start..key.end];
            self.ws();
            if self.next()? != b':' {
                return None;
            }
            self.ws();
            member(self, key)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// At `[`: call `element` with the cursor at each element, which it must consume.
    /// Returns whether the array was empty.
    #[inline]
    fn elements(
        &mut self,
        depth: u32,
        mut element: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<bool> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(true);
        }
        loop {
            element(self)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(false),
                _ => return None,
            }
        }
    }

    /// A `Value::as_u64` position: the integer, or `None` for any other value.
    fn u64_value(&mut self, depth: u32) -> Option<Option<u64>> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => match self.number()? {
                Num::U64(v) => Some(Some(v)),
                Num::I64(_) | Num::Float => Some(None),
                Num::Long => None,
            },
            _ => self.skip(depth).map(|()| None),
        }
    }

    /// A `Value::as_i64` position.
    fn i64_value(&mut self, depth: u32) -> Option<Option<i64>> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => match self.number()? {
                Num::U64(v) => Some(i64::try_from(v).ok()),
                Num::I64(v) => Some(Some(v)),
                Num::Float => Some(None),
                Num::Long => None,
            },
            _ => self.skip(depth).map(|()| None),
        }
    }

    /// A string or `null` (a text member of a choice or delta); anything else gives up.
    fn text(&mut self) -> Option<Option<Lit>> {
        match self.peek()? {
            b'"' => self.string().map(Some),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// `usage.*_tokens_details`: the `wanted` integer when the details are an object.
    fn detail(&mut self, depth: u32, wanted: &[u8]) -> Option<Option<u64>> {
        if self.peek()? != b'{' {
            return self.skip(depth).map(|()| None);
        }
        let mut found = None;
        let mut seen = false;
        self.members(depth, |s, key| {
            if key != wanted {
                return s.skip(depth + 1);
            }
            if std::mem::replace(&mut seen, true) {
                return None;
            }
            found = s.u64_value(depth + 1)?;
            Some(())
        })?;
        Some(found)
    }

    fn usage(&mut self, depth: u32) -> Option<Option<Usage>> {
        if self.peek()? != b'{' {
            return self.skip(depth).map(|()| None);
        }
        let mut seen = Seen::default();
        let (mut prompt, mut completion, mut cached, mut reasoning) = (None, None, None, None);
        self.members(depth, |s, key| {
            let inner = depth + 1;
            match key {
                b"prompt_tokens" => prompt = seen.once(0).and_then(|()| s.u64_value(inner))?,
                b"completion_tokens" => {
                    completion = seen.once(1).and_then(|()| s.u64_value(inner))?;
                }
                b"prompt_tokens_details" => {
                    seen.once(2)?;
                    cached = s.detail(inner, b"cached_tokens")?;
                }
                b"completion_tokens_details" => {
                    seen.once(3)?;
                    reasoning = s.detail(inner, b"reasoning_tokens")?;
                }
                _ => s.skip(inner)?,
            }
            Some(())
        })?;
        Some(Some(Usage {
            prompt_tokens: prompt.unwrap_or(0),
            completion_tokens: completion.unwrap_or(0),
            cached_tokens: cached.unwrap_or(0),
            reasoning_tokens: reasoning.unwrap_or(0),
        }))
    }

    /// One `tool_calls` entry (an object): its `function.arguments` string, if any.
    fn tool_call(&mut self, depth: u32, args: &mut Args) -> Option<()> {
        if self.peek()? != b'{' {
            return None;
        }
        let mut seen = false;
        self.members(depth, |s, key| {
            if key != b"function" {
                return s.skip(depth + 1);
            }
            if std::mem::replace(&mut seen, true) || s.peek()? != b'{' {
                // `function` not an object reads as absent, but is rare: give up.
                return None;
            }
            let mut seen_args = false;
            s.members(depth + 1, |s, key| {
                if key != b"arguments" {
                    return s.skip(depth + 2);
                }
                if std::mem::replace(&mut seen_args, true) || s.peek()? != b'"' {
                    return None;
                }
                args.push(s.string()?)
            })
        })
    }

    /// `delta` (at `{`): its text, in the sink's order, added to `view` and the sink.
    fn delta(
        &mut self,
        depth: u32,
        view: &mut ChunkView<'a>,
        sink: Option<&mut String>,
    ) -> Option<()> {
        let mut seen = Seen::default();
        let mut texts: [Option<Lit>; 3] = [None; 3];
        let mut args = Args::default();
        self.members(depth, |s, key| {
            let slot = match key {
                b"content" => 0,
                b"refusal" => 1,
                b"reasoning_content" => 2,
                b"tool_calls" => {
                    seen.once(3)?;
                    return match s.peek()? {
                        b'[' => s
                            .elements(depth + 1, |s| s.tool_call(depth + 2, &mut args))
                            .map(drop),
                        b'n' => s.literal(b"null"),
                        _ => None,
                    };
                }
                _ => return s.skip(depth + 1),
            };
            seen.once(slot)?;
            texts[usize::from(slot)] = s.text()?;
            Some(())
        })?;
        let mut sink = sink;
        let mut chars = 0u64;
        for lit in texts.iter().flatten().chain(&args.lits[..args.len]) {
            chars = chars.wrapping_add(self.decode(*lit, sink.as_deref_mut()));
        }
        view.content_chars = view.content_chars.wrapping_add(chars);
        Some(())
    }

    /// Characters of a validated string literal, its text appended to `sink`.
    fn decode(&self, lit: Lit, sink: Option<&mut String>) -> u64 {
        let text = &self.data[lit.start..lit.end];
        if !lit.escaped {
            if let Some(sink) = sink {
                sink.push_str(text);
            }
            return text.chars().count() as u64;
        }
        let mut chars = 0u64;
        let mut rest = text;
        let mut sink = sink;
        while let Some(k) = memchr::memchr(b'\\', rest.as_bytes()) {
            let plain = &rest[..k];
            chars += plain.chars().count() as u64 + 1;
            let b = rest.as_bytes();
            let (c, len) = match b[k + 1] {
                b'b' => ('\u{8}', 2),
                b'f' => ('\u{c}', 2),
                b'n' => ('\n', 2),
                b'r' => ('\r', 2),
                b't' => ('\t', 2),
                b'u' => {
                    let n = hex4(&b[k + 2..]).unwrap_or(0);
                    if (0xD800..0xDC00).contains(&n) {
                        let low = hex4(&b[k + 8..]).unwrap_or(0xDC00);
                        let c = 0x1_0000 + ((n - 0xD800) << 10 | (low - 0xDC00));
                        (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
                    } else {
                        (char::from_u32(n).unwrap_or('\u{FFFD}'), 6)
                    }
                }
                other => (char::from(other), 2), // `"`, `\` or `/`
            };
            if let Some(sink) = sink.as_deref_mut() {
                sink.push_str(plain);
                sink.push(c);
            }
            rest = &rest[k + len..];
        }
        if let Some(sink) = sink {
            sink.push_str(rest);
        }
        chars + rest.chars().count() as u64
    }

    /// One `choices` entry (it must be an object).
    fn choice(
        &mut self,
        depth: u32,
        view: &mut ChunkView<'a>,
        sink: Option<&mut String>,
    ) -> Option<()> {
        if self.peek()? != b'{' {
            return None;
        }
        let mut seen = Seen::default();
        let mut sink = sink;
        let mut finish_reason = None;
        self.members(depth, |s, key| match key {
            b"delta" => {
                seen.once(0)?;
                if s.peek()? != b'{' {
                    return None;
                }
                s.delta(depth + 1, view, sink.as_deref_mut())
            }
            b"finish_reason" => {
                seen.once(1)?;
                if let Some(lit) = s.text()? {
                    if lit.escaped {
                        return None;
                    }
                    finish_reason = Some(s.data.get(lit.start..lit.end)?);
                }
                Some(())
            }
            _ => s.skip(depth + 1),
        })?;
        if let Some(reason) = finish_reason {
            view.finish_reason = Some(Cow::Borrowed(reason));
        }
        Some(())
    }
}

impl<'a> Scanner<'a> {
    /// One member of the chunk object, the cursor at its value.
    fn top_member(
        &mut self,
        key: &[u8],
        top: &mut Top,
        view: &mut ChunkView<'a>,
        sink: Option<&mut String>,
    ) -> Option<()> {
        top.members += 1;
        let seen = &mut top.seen;
        match key {
            b"id" => {
                seen.once(0)?;
                top.id = if self.peek()? == b'"' {
                    let lit = self.string()?;
                    if lit.escaped {
                        return None;
                    }
                    Some((lit.start, lit.end))
                } else {
                    self.skip(2)?;
                    None
                };
            }
            b"created" => top.created = seen.once(1).and_then(|()| self.i64_value(2))?,
            b"model" => {
                seen.once(2)?;
                let start = self.i;
                if self.peek()? != b'"' || self.string()?.escaped {
                    return None;
                }
                top.model = Some((start, self.i));
            }
            b"usage" => top.usage = seen.once(3).and_then(|()| self.usage(2))?,
            b"choices" => {
                seen.once(CHOICES)?;
                if self.peek()? != b'[' {
                    return None;
                }
                let mut sink = sink;
                view.choices_empty =
                    self.elements(2, |s| s.choice(3, view, sink.as_deref_mut()))?;
            }
            b"error" => return None,
            _ => self.skip(2)?,
        }
        Some(())
    }
}

/// Which metered members of one object were seen (a repeat gives up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen(u8);

impl Seen {
    fn has(self, bit: u8) -> bool {
        self.0 & 1 << bit != 0
    }

    #[inline]
    fn once(&mut self, bit: u8) -> Option<()> {
        let mask = 1 << bit;
        let first = self.0 & mask == 0;
        self.0 |= mask;
        first.then_some(())
    }
}

/// The `function.arguments` strings of one delta's tool calls.
#[derive(Default)]
struct Args {
    lits: [Lit; MAX_CALLS],
    len: usize,
}

impl Args {
    fn push(&mut self, lit: Lit) -> Option<()> {
        *self.lits.get_mut(self.len)? = lit;
        self.len += 1;
        Some(())
    }
}

/// The top-level state between two members, before `choices`: all the scanner has learned
/// from the bytes before that point, and nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Top {
    /// Span of a string `id`.
    id: Option<(usize, usize)>,
    created: Option<i64>,
    /// Span of the `model` value, quotes included.
    model: Option<(usize, usize)>,
    usage: Option<Usage>,
    seen: Seen,
    members: usize,
}

const CHOICES: u8 = 4;

/// The leading members of the last chunk read, reused when the next chunk starts with the
/// same bytes: an upstream repeats `id`, `object`, `created`, `model`… in every chunk, and
/// the scanner's state after a top-level comma depends only on the bytes before it.
#[derive(Debug, Clone, Default)]
pub struct Prefix {
    /// The chunk's bytes up to just after a top-level comma that precedes `choices`.
    bytes: Vec<u8>,
    /// The state the scanner had there.
    top: Top,
}

/// Read a plain chunk (the data already trimmed) as [`super::view::parse`] would, or `None`
/// to leave it to the serde view. `spans` must be empty; on `None`, `spans` and `sink` may
/// hold partial results that the caller discards. `prefix` is the stream's [`Prefix`].
pub fn parse<'a>(
    data: &'a str,
    spans: &mut Vec<(usize, usize)>,
    sink: Option<&mut String>,
    prefix: &mut Prefix,
) -> Option<ChunkView<'a>> {
    let mut s = Scanner {
        data,
        b: data.as_bytes(),
        i: 0,
    };
    let mut view = ChunkView {
        model_spans_known: true,
        ..ChunkView::default()
    };
    let mut top = Top::default();
    let resumed = !prefix.bytes.is_empty() && s.b.starts_with(&prefix.bytes);
    // Where the prefix to keep for the next chunk ends (0: none found), and its state.
    let mut cut = (0, top);
    let empty = if resumed {
        s.i = prefix.bytes.len();
        top = prefix.top;
        s.ws();
        false // just after a comma
    } else {
        s.ws();
        if s.peek()? != b'{' {
            return None;
        }
        s.i += 1;
        s.ws();
        s.peek()? == b'}'
    };
    if empty {
        s.i += 1;
    } else {
        let mut sink = sink;
        loop {
            if s.peek()? != b'"' {
                return None;
            }
            let key = s.string()?;
            if key.escaped {
                return None;
            }
            let key = &s.b[key.start..key.end];
            s.ws();
            if s.next()? != b':' {
                return None;
            }
            s.ws();
            s.top_member(key, &mut top, &mut view, sink.as_deref_mut())?;
            s.ws();
            match s.next()? {
                b',' => {
                    if !top.seen.has(CHOICES) {
                        cut = (s.i, top);
                    }
                    s.ws();
                }
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    if !resumed || cut.0 > prefix.bytes.len() {
        prefix.bytes.clear();
        prefix.bytes.extend_from_slice(&s.b[..cut.0]);
        prefix.top = cut.1;
    }
    view.id = match top.id {
        Some((start, end)) => Some(Cow::Borrowed(data.get(start..end)?)),
        None => None,
    };
    view.created = top.created;
    view.usage = top.usage;
    view.members = top.members;
    spans.extend(top.model);
    Some(view)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::super::view::parse as parse_serde;
    use super::*;

    type Read<'a> = (ChunkView<'a>, Vec<(usize, usize)>, String);

    fn fast(data: &str) -> Option<Read<'_>> {
        let (mut spans, mut sink) = (Vec::new(), String::from("|"));
        parse(data, &mut spans, Some(&mut sink), &mut Prefix::default()).map(|v| (v, spans, sink))
    }

    fn serde(data: &str) -> Option<Read<'_>> {
        let (mut spans, mut sink) = (Vec::new(), String::from("|"));
        parse_serde(data, &mut spans, Some(&mut sink)).map(|v| (v, spans, sink))
    }

    /// The scanner either gives up or reads exactly what serde reads; `true` if it read.
    fn agrees(data: &str) -> bool {
        match fast(data) {
            None => false,
            Some(read) => {
                assert_eq!(Some(read), serde(data), "{data}");
                let mut spans = Vec::new();
                let counted =
                    parse(data, &mut spans, None, &mut Prefix::default()).map(|v| v.content_chars);
                assert_eq!(counted, serde(data).map(|r| r.0.content_chars), "{data}");
                true
            }
        }
    }

    #[test]
    fn reads_plain_chunks() {
        for data in [
            "{}",
            r#"{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1763700001, "model": "gpt-4o-mini", "system_fingerprint": "fp_0ba0d124f1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null, "finish_reason": null}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":" \u00fcn\u00efc\u00f6d\u00e9 \u6570\u636e \ud83d\ude42 \"q\" \\ \/ \b\f\n\r\t"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"arg_0\": \"the\""}}]}}],"usage":null}"#,
            r#"{"choices":[{"delta":{"content":"a","refusal":"b","reasoning_content":"c","tool_calls":[{"function":{"arguments":"d"}},{},{"function":{"arguments":"e"}}]}},{"delta":{"content":"f"},"finish_reason":"stop"}]}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":200,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":4,"audio_tokens":0}}}"#,
            r#"{"created":-5,"usage":{"prompt_tokens":-1,"completion_tokens":1.5,"prompt_tokens_details":null},"x":[1,-0,0.5,1e5,-2E-7,true,false,null,{"a":[{}]}],"choices":[{"delta":{},"finish_reason":"length"}]}"#,
            r#"{"created":9999999999999999999,"usage":{"prompt_tokens":9999999999999999999}}"#,
            r#"{"created":-999999999999999999,"usage":{"prompt_tokens":0}}"#,
            " {\n\"model\" :\t\"m\" , \"choices\" : [ { \"delta\" : { \"content\" : null } } ] } ",
            r#"{"x":{"k\"ey":"v\u0000"},"model":"m"}"#,
        ] {
            assert!(agrees(data), "not read by the scanner: {data}");
        }
    }

    #[test]
    fn gives_up_on_the_unusual() {
        for data in [
            "",
            "[]",
            "{} x",
            "{,}",
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e400}"#,
            r#"{"a":1e-400}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00\ud800"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"error":{"message":"x"}}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"id":"a\/b"}"#,
            r#"{"model":"a\/b"}"#,
            r#"{"model":null}"#,
            r#"{"mod\u0065l":"m"}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[{"delta":null}]}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":{}}}]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":[{"finish_reason":"st\u006fp"}]}"#,
            r#"{"x\"":1}"#,
            r#"{"created":99999999999999999999}"#,
            r#"{"created":18446744073709551615}"#,
            r#"{"usage":{"prompt_tokens":-99999999999999999999}}"#,
        ] {
            assert!(fast(data).is_none(), "{data}");
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(120), "]".repeat(120));
        assert!(fast(&deep).is_none());
        let calls = format!(
            r#"{{"choices":[{{"delta":{{"tool_calls":[{}]}}}}]}}"#,
            [r#"{"function":{"arguments":"a"}}"#; MAX_CALLS + 1].join(",")
        );
        assert!(fast(&calls).is_none());
    }

    /// Read `chunks` in order with one [`Prefix`]; each read must agree with serde.
    fn agree_in_sequence(chunks: &[String]) -> usize {
        let mut prefix = Prefix::default();
        let mut resumed = 0;
        for data in chunks {
            let (mut spans, mut sink) = (Vec::new(), String::from("|"));
            let reuses = !prefix.bytes.is_empty() && data.as_bytes().starts_with(&prefix.bytes);
            let read = parse(data, &mut spans, Some(&mut sink), &mut prefix);
            if let Some(view) = read {
                resumed += usize::from(reuses);
                assert_eq!(Some((view, spans, sink)), serde(data), "{data}");
            }
        }
        resumed
    }

    #[test]
    fn resumes_after_the_repeated_leading_members() {
        let head =
            r#"{"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m", "#;
        let chunk = |rest: &str| format!("{head}{rest}");
        let chunks = [
            chunk(r#""choices": [{"delta": {"content": "a"}}]}"#),
            chunk(r#""choices": [{"delta": {"content": "b"}, "finish_reason": "stop"}]}"#),
            chunk(r#""choices": [], "usage": {"prompt_tokens": 3}}"#),
            chunk(r#""usage": {"completion_tokens": 2}, "x": 1, "choices": []}"#),
            chunk(r#""usage": {"completion_tokens": 2}, "x": 2, "choices": []}"#),
            chunk(r#""model": "dup", "choices": []}"#),
            chunk(r#""choices": [], "error": 1}"#),
            chunk("}"),
            chunk(""),
            chunk(r#""choices": [],}"#),
            chunk(r#""choices": []} x"#),
            r#"{"id": "c2", "choices": []}"#.to_owned(),
            chunk(r#""choices": [{"delta": {"content": "c"}}]}"#),
        ];
        assert_eq!(agree_in_sequence(&chunks), 3);
        for bad in &chunks[5..11] {
            let mut prefix = Prefix::default();
            parse(&chunks[0], &mut Vec::new(), None, &mut prefix).unwrap();
            assert!(
                parse(bad, &mut Vec::new(), None, &mut prefix).is_none(),
                "{bad}"
            );
        }
        // The prefix ends just after the last comma before `choices`.
        let mut prefix = Prefix::default();
        parse(&chunks[3], &mut Vec::new(), None, &mut prefix).unwrap();
        assert!(chunks[3][..prefix.bytes.len()].ends_with(r#""x": 1,"#));
        parse(&chunks[0], &mut Vec::new(), None, &mut prefix).unwrap();
        assert_eq!(prefix.bytes, head.trim_end().as_bytes());
        parse(&chunks[3], &mut Vec::new(), None, &mut prefix).unwrap(); // resumed, and grown
        assert!(chunks[3][..prefix.bytes.len()].ends_with(r#""x": 1,"#));
    }

    #[test]
    fn finds_specials_in_any_position() {
        for len in 0..20 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0, 0x1f] {
                    let mut b = vec![b'a'; len];
                    b.extend_from_slice(&[0xC3, 0xA9, 0x7F, b' ']);
                    if at < len {
                        b[at] = special;
                        assert_eq!(find_special(&b), Some(at));
                    } else {
                        assert_eq!(find_special(&b), None);
                    }
                }
            }
        }
    }

    fn good_string() -> impl Strategy<Value = String> {
        "\"([a-z é🙂]|\\\\[\"\\\\/bfnrt]|\\\\u00[0-9a-f]{2}|\\\\ud83d\\\\ude42){0,6}\""
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => Just("null".to_owned()),
            1 => Just("true".to_owned()),
            1 => Just("false".to_owned()),
            2 => "-?(0|[1-9][0-9]{0,5})",
            1 => "-?(0|[1-9][0-9]{0,21})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,4})?",
            4 => good_string(),
            1 => "\"([a-z é🙂\"/\u{1}]|\\\\[\"\\\\/bfnrtx]|\\\\u[dD][89abAB][0-9a-f]{2}|\\\\u[0-9a-fA-F]{4}){0,6}\"",
        ]
    }

    /// What a metered text member usually is: a string or `null`, sometimes anything.
    fn text() -> BoxedStrategy<String> {
        prop_oneof![8 => good_string(), 2 => Just("null".to_owned()), 1 => scalar()].boxed()
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::sample::select(vec![
                "id", "created", "model", "usage", "choices", "error", "delta", "finish_reason",
                "content", "refusal", "reasoning_content", "tool_calls", "function",
                "arguments", "prompt_tokens", "completion_tokens", "prompt_tokens_details",
                "completion_tokens_details", "cached_tokens", "reasoning_tokens", "index",
            ])
            .prop_map(|k| format!("\"{k}\"")),
            1 => "\"[a-z\\\\]{0,3}\"",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        scalar().prop_recursive(6, 48, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec((key(), inner), 0..5).prop_map(|members| {
                    let mut out = String::from("{");
                    for (i, (k, v)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}:{v}");
                    }
                    out.push('}');
                    out
                }),
            ]
        })
    }

    /// Chunk-shaped objects: the metered members nested where the relay reads them.
    fn chunk() -> impl Strategy<Value = String> {
        let text = text();
        let call =
            (proptest::option::of(text.clone()), value()).prop_map(|(args, other)| match args {
                Some(a) => format!(
                    r#"{{"index":0,"function":{{"name":"f","arguments":{a}}},"x":{other}}}"#
                ),
                None => format!(r#"{{"x":{other}}}"#),
            });
        let delta = (
            proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "content",
                        "refusal",
                        "reasoning_content",
                        "role",
                    ]),
                    text.clone(),
                ),
                0..4,
            ),
            proptest::option::of(proptest::collection::vec(call, 0..3)),
        )
            .prop_map(|(texts, calls)| {
                let mut members: Vec<String> =
                    texts.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                if let Some(calls) = calls {
                    members.push(format!("\"tool_calls\":[{}]", calls.join(",")));
                }
                format!("{{{}}}", members.join(","))
            });
        let choice = (delta, text.clone()).prop_map(|(d, f)| {
            format!(r#"{{"index":0,"delta":{d},"logprobs":null,"finish_reason":{f}}}"#)
        });
        let usage = (scalar(), scalar(), scalar(), value()).prop_map(|(p, c, cached, other)| {
            format!(r#"{{"prompt_tokens":{p},"completion_tokens":{c},"prompt_tokens_details":{{"cached_tokens":{cached}}},"completion_tokens_details":{other}}}"#)
        });
        let model = prop_oneof![8 => "\"[a-z-]{0,8}\"", 1 => text.clone()];
        (
            prop_oneof![3 => "\"[a-z-]{0,8}\"", 1 => scalar()],
            scalar(),
            model,
            proptest::collection::vec(choice, 0..3),
            proptest::option::of(usage),
            value(),
        )
            .prop_map(|(id, created, model, choices, usage, other)| {
                let usage = usage.unwrap_or_else(|| "null".to_owned());
                format!(
                    r#"{{"id":{id},"created":{created},"model":{model},"choices":[{}],"usage":{usage},"other":{other}}}"#,
                    choices.join(",")
                )
            })
    }

    /// Spell `text` with random whitespace around its structural characters and, sometimes,
    /// one byte changed.
    fn respell(text: &str, ws: &[u8], edit: Option<(usize, char)>) -> String {
        let mut out = String::new();
        let mut in_string = false;
        let mut escaped = false;
        for (n, c) in text.chars().enumerate() {
            out.push(c);
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
            } else if c == '"' {
                in_string = true;
            } else if matches!(c, '{' | '}' | '[' | ']' | ',' | ':') {
                out.push_str(
                    match ws.get(n % ws.len().max(1)).copied().unwrap_or(0) % 6 {
                        0 => " ",
                        1 => "\n\t",
                        _ => "",
                    },
                );
            }
        }
        if let Some((at, c)) = edit {
            let mut chars: Vec<char> = out.chars().collect();
            if !chars.is_empty() {
                let at = at % chars.len();
                chars[at] = c;
            }
            out = chars.into_iter().collect();
        }
        out.trim().to_owned()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn scanner_agrees_with_serde_on_chunks(
            chunk in chunk(),
            ws in proptest::collection::vec(any::<u8>(), 1..8),
            edit in proptest::option::weighted(
                0.3,
                (any::<usize>(), proptest::sample::select(vec![
                    '"', '\\', ',', ':', '{', '}', '[', ']', '0', '-', 'e', '.', 'u', ' ', '\u{1}',
                ])),
            ),
        ) {
            agrees(&respell(&chunk, &ws, edit));
        }

        #[test]
        fn resumed_reads_agree_with_serde(
            chunk in chunk(),
            ws in proptest::collection::vec(any::<u8>(), 1..8),
            edits in proptest::collection::vec(
                (any::<usize>(), proptest::sample::select(vec![
                    '"', '\\', ',', ':', '{', '}', '[', ']', '0', '-', 'u', ' ', 'x',
                ])),
                1..4,
            ),
        ) {
            // The chunk, then versions of it with one more byte changed each time, somewhere
            // in the shared leading members or after them.
            let mut chunks = vec![respell(&chunk, &ws, None)];
            for &(at, c) in &edits {
                let last = chunks.last().cloned().unwrap_or_default();
                let mut chars: Vec<char> = last.chars().collect();
                let at = at % chars.len().max(1);
                if let Some(slot) = chars.get_mut(at) {
                    *slot = c;
                }
                chunks.push(chars.into_iter().collect());
                chunks.push(last);
            }
            agree_in_sequence(&chunks);
        }

        #[test]
        fn scanner_agrees_with_serde_on_any_object(
            members in proptest::collection::vec((key(), value()), 0..6),
        ) {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            agrees(&format!("{{{}}}", body.join(",")));
        }
    }

    #[test]
    fn most_generated_chunks_take_the_fast_path() {
        // Guard against a scanner that silently gives up on everything.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = chunk();
        let mut read = 0;
        for _ in 0..500 {
            let data = strategy.new_tree(&mut runner).unwrap().current();
            read += usize::from(agrees(&data));
        }
        assert!(read > 50, "{read} of 500");
    }
}
