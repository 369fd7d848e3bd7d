//! Hand-written pre-tokenisers equal to tiktoken's regular expressions for `o200k_base` and
//! `cl100k_base` (leftmost-first alternation with backtracking, emulated case by case).
//!
//! Character classes come from `regex-syntax`'s Unicode tables, the same tables the `regex`
//! crate (and so `fancy-regex`, which tiktoken uses) matches `\p{..}` and `\s` against.

use std::sync::LazyLock;

use regex_syntax::hir::{Class, HirKind};

/// `\p{Lu}` or `\p{Lt}`.
const UPPER: u8 = 1;
/// `\p{Ll}`.
const LOWER: u8 = 2;
/// `\p{Lm}` or `\p{Lo}`.
const OTHER_LETTER: u8 = 4;
/// `\p{M}`.
const MARK: u8 = 8;
/// `\p{N}`.
const NUMBER: u8 = 16;
/// `\s` (`White_Space`).
const SPACE: u8 = 32;
const LETTER: u8 = UPPER | LOWER | OTHER_LETTER;
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
const CASED_HEAD: u8 = UPPER | OTHER_LETTER | MARK;
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
const CASED_TAIL: u8 = LOWER | OTHER_LETTER | MARK;
/// End of text, in the ASCII fast path's classes (no Unicode class uses this bit).
const END: u8 = 64;

/// One class byte per code point (1.1 MB, built once from the Unicode tables).
static CLASSES: LazyLock<Box<[u8]>> = LazyLock::new(|| {
    let mut table = vec![0u8; 0x11_0000];
    for (pattern, bit) in [
        (r"[\p{Lu}\p{Lt}]", UPPER),
        (r"\p{Ll}", LOWER),
        (r"[\p{Lm}\p{Lo}]", OTHER_LETTER),
        (r"\p{M}", MARK),
        (r"\p{N}", NUMBER),
        (r"\s", SPACE),
    ] {
        let hir = regex_syntax::Parser::new()
            .parse(pattern)
            .expect("static class pattern");
        let HirKind::Class(Class::Unicode(class)) = hir.kind() else {
            unreachable!("a Unicode class pattern")
        };
        for range in class.ranges() {
            for cp in u32::from(range.start())..=u32::from(range.end()) {
                table[cp as usize] |= bit;
            }
        }
    }
    table.into_boxed_slice()
});

/// Build the class table now (it is otherwise built on first use).
pub fn warm_up() {
    LazyLock::force(&CLASSES);
}

/// A decoded character: its class bits, code point and UTF-8 length.
#[derive(Clone, Copy)]
struct Ch {
    class: u8,
    cp: u32,
    len: usize,
}

impl Ch {
    fn is(self, bits: u8) -> bool {
        self.class & bits != 0
    }
    fn is_newline(self) -> bool {
        self.cp == u32::from(b'\r') || self.cp == u32::from(b'\n')
    }
    /// `[^\r\n\p{L}\p{N}]`: the optional one-character prefix of a word.
    fn is_word_prefix(self) -> bool {
        !self.is_newline() && !self.is(LETTER | NUMBER)
    }
    /// `[^\s\p{L}\p{N}]`.
    fn is_symbol(self) -> bool {
        !self.is(SPACE | LETTER | NUMBER)
    }
}

struct Text<'a> {
    s: &'a [u8],
    table: &'a [u8],
}

impl Text<'_> {
    /// Class of the byte at `j` for the ASCII fast paths: [`END`] past the end, `None` on a
    /// non-ASCII byte (the caller then falls back to the general, decoding path).
    #[inline]
    fn ascii_class(&self, j: usize) -> Option<u8> {
        match self.s.get(j) {
            None => Some(END),
            Some(&b) if b < 0x80 => Some(self.table[b as usize]),
            Some(_) => None,
        }
    }

    /// End of the run of ASCII characters in `bits` from `j`; `None` when the run reaches a
    /// non-ASCII character (which may or may not belong to the class).
    #[inline]
    fn ascii_run(&self, mut j: usize, bits: u8) -> Option<usize> {
        while self.ascii_class(j)? & bits != 0 {
            j += 1;
        }
        Some(j)
    }

    /// `[^\s\p{L}\p{N}]` on an ASCII class (not the end of text).
    #[inline]
    fn ascii_symbol(class: u8) -> bool {
        class & (SPACE | LETTER | NUMBER | END) == 0
    }

    /// `o200k_base` piece at `i` (an ASCII byte) decided from ASCII characters only: the same
    /// alternatives in the same order as [`Self::o200k`], `None` as soon as a decision would
    /// depend on a non-ASCII character.
    #[inline]
    fn o200k_ascii(&self, i: usize) -> Option<usize> {
        let byte = self.s[i];
        let c = self.ascii_class(i)?;
        if c & (OTHER_LETTER | MARK) != 0 {
            return None;
        }
        // Words: `[^\r\n\p{L}\p{N}]?[A]*[B]+'..?|[^\r\n\p{L}\p{N}]?[A]+[B]*'..?`; in ASCII
        // both are an uppercase run then a lowercase run, at least one character long.
        let word = if c & LETTER != 0 {
            Some(i)
        } else if c & NUMBER == 0 && byte != b'\r' && byte != b'\n' {
            let d = self.ascii_class(i + 1)?;
            if d & (OTHER_LETTER | MARK) != 0 {
                return None;
            }
            (d & LETTER != 0).then_some(i + 1)
        } else {
            None
        };
        if let Some(j) = word {
            let k = self.ascii_run(j, UPPER)?;
            let e = self.ascii_run(k, LOWER)?;
            if self.ascii_class(e)? & (OTHER_LETTER | MARK) != 0 {
                return None;
            }
            return Some(self.contraction(e).unwrap_or(e));
        }
        if c & NUMBER != 0 {
            let mut j = i;
            for _ in 0..3 {
                if self.ascii_class(j)? & NUMBER == 0 {
                    break;
                }
                j += 1;
            }
            return Some(j);
        }
        let e = self.ascii_symbols(i, byte, c, true)?;
        if e > i {
            return Some(e);
        }
        if c & SPACE != 0 {
            let (end, last, newline) = self.ascii_space_run(i)?;
            return Some(newline.unwrap_or_else(|| self.trailing_space(i, end, last)));
        }
        Some(i + 1)
    }

    /// `cl100k_base` piece at `i` (an ASCII byte) from ASCII characters only, as
    /// [`Self::o200k_ascii`] does for [`Self::cl100k`].
    #[inline]
    fn cl100k_ascii(&self, i: usize) -> Option<usize> {
        let byte = self.s[i];
        let c = self.ascii_class(i)?;
        if c & (OTHER_LETTER | MARK) != 0 {
            return None;
        }
        if let Some(e) = self.cl100k_contraction(i) {
            return Some(e);
        }
        let start = if c & (LETTER | NUMBER) == 0 && byte != b'\r' && byte != b'\n' {
            i + 1
        } else {
            i
        };
        if self.ascii_class(start)? & LETTER != 0 {
            let e = self.ascii_run(start, UPPER | LOWER)?;
            if self.ascii_class(e)? & (OTHER_LETTER | MARK) != 0 {
                return None;
            }
            return Some(e);
        }
        if c & NUMBER != 0 {
            let mut j = i;
            for _ in 0..3 {
                if self.ascii_class(j)? & NUMBER == 0 {
                    break;
                }
                j += 1;
            }
            return Some(j);
        }
        let e = self.ascii_symbols(i, byte, c, false)?;
        if e > i {
            return Some(e);
        }
        if c & SPACE != 0 {
            let (end, last, newline) = self.ascii_space_run(i)?;
            if end == self.s.len() {
                return Some(end);
            }
            return Some(newline.unwrap_or_else(|| self.trailing_space(i, end, last)));
        }
        Some(i + 1)
    }

    /// ASCII ` ?[^\s\p{L}\p{N}]+[\r\n]*` (`/` too when `slash`) at `i` (whose byte and
    /// class are given): the end of the match, `i` when it does not match, `None` when a
    /// non-ASCII character decides.
    #[inline]
    fn ascii_symbols(&self, i: usize, byte: u8, class: u8, slash: bool) -> Option<usize> {
        let start = if Self::ascii_symbol(class) {
            i
        } else if byte == b' ' && Self::ascii_symbol(self.ascii_class(i + 1)?) {
            i + 1
        } else {
            return Some(i);
        };
        let mut e = start;
        while Self::ascii_symbol(self.ascii_class(e)?) {
            e += 1;
        }
        while let Some(&b) = self.s.get(e) {
            if b == b'\r' || b == b'\n' || (slash && b == b'/') {
                e += 1;
            } else {
                break;
            }
        }
        Some(e)
    }

    /// [`Self::space_run`] over ASCII whitespace; `None` when a non-ASCII character follows.
    #[inline]
    fn ascii_space_run(&self, mut i: usize) -> Option<(usize, usize, Option<usize>)> {
        let (mut last, mut newline) = (i, None);
        while self.ascii_class(i)? & SPACE != 0 {
            if matches!(self.s[i], b'\r' | b'\n') {
                newline = Some(i + 1);
            }
            last = i;
            i += 1;
        }
        Some((i, last, newline))
    }

    #[inline]
    fn at(&self, i: usize) -> Option<Ch> {
        let b0 = *self.s.get(i)?;
        if b0 < 0x80 {
            return Some(Ch {
                class: self.table[b0 as usize],
                cp: u32::from(b0),
                len: 1,
            });
        }
        // The input is a `&str`, so the sequence is valid UTF-8.
        let cont = |k: usize| u32::from(self.s[i + k] & 0x3f);
        let (cp, len) = if b0 < 0xe0 {
            ((u32::from(b0 & 0x1f) << 6) | cont(1), 2)
        } else if b0 < 0xf0 {
            ((u32::from(b0 & 0x0f) << 12) | (cont(1) << 6) | cont(2), 3)
        } else {
            (
                (u32::from(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3),
                4,
            )
        };
        Some(Ch {
            class: self.table[cp as usize],
            cp,
            len,
        })
    }

    /// End of the maximal run of characters in `bits` starting at `i`.
    #[inline]
    fn run(&self, mut i: usize, bits: u8) -> usize {
        while let Some(c) = self.at(i) {
            if !c.is(bits) {
                break;
            }
            i += c.len;
        }
        i
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `i`: end of the match, if any. Case-insensitive
    /// matching follows Unicode simple case folding, so `'ſ` (U+017F) matches `'s`.
    fn contraction(&self, i: usize) -> Option<usize> {
        if self.s.get(i) != Some(&b'\'') {
            return None;
        }
        let c = self.at(i + 1)?;
        match c.cp {
            0x73 | 0x53 | 0x17f | 0x74 | 0x54 | 0x6d | 0x4d | 0x64 | 0x44 => Some(i + 1 + c.len),
            _ => {
                let two = self.s.get(i + 1..i + 3)?;
                let two = [two[0].to_ascii_lowercase(), two[1].to_ascii_lowercase()];
                matches!(&two, b"re" | b"ve" | b"ll").then_some(i + 3)
            }
        }
    }

    /// `[A]*[B]+` at `j` with A = `CASED_HEAD`, B = `CASED_TAIL` (greedy, backtracking).
    fn cased_lower(&self, j: usize) -> Option<usize> {
        let mut i = j;
        let mut last_tail = None;
        while let Some(c) = self.at(i) {
            if !c.is(CASED_HEAD) {
                break;
            }
            if c.is(CASED_TAIL) {
                last_tail = Some(i + c.len);
            }
            i += c.len;
        }
        match self.at(i) {
            Some(c) if c.is(CASED_TAIL) => Some(self.run(i, CASED_TAIL)),
            _ => last_tail,
        }
    }

    /// `[A]+[B]*` at `j`.
    fn cased_upper(&self, j: usize) -> Option<usize> {
        let c = self.at(j)?;
        if !c.is(CASED_HEAD) {
            return None;
        }
        let i = self.run(j, CASED_HEAD);
        Some(self.run(i, CASED_TAIL))
    }

    /// Whitespace run from `i`: (end, start of its last character, start+1 of its last
    /// `\r`/`\n` if any).
    fn space_run(&self, mut i: usize) -> (usize, usize, Option<usize>) {
        let (mut last, mut newline) = (i, None);
        while let Some(c) = self.at(i) {
            if !c.is(SPACE) {
                break;
            }
            if c.is_newline() {
                newline = Some(i + 1);
            }
            last = i;
            i += c.len;
        }
        (i, last, newline)
    }

    /// ` ?[^\s\p{L}\p{N}]+` then `tail` chars (`[\r\n]*` or `[\r\n/]*`).
    fn symbols(&self, i: usize, c: Ch, slash: bool) -> Option<usize> {
        let j = if c.is_symbol() {
            i
        } else if c.cp == 0x20 && self.at(i + 1).is_some_and(Ch::is_symbol) {
            i + 1
        } else {
            return None;
        };
        let mut e = j;
        while let Some(d) = self.at(e) {
            if !d.is_symbol() {
                break;
            }
            e += d.len;
        }
        while let Some(&b) = self.s.get(e) {
            if b == b'\r' || b == b'\n' || (slash && b == b'/') {
                e += 1;
            } else {
                break;
            }
        }
        Some(e)
    }

    /// `\s+(?!\S)` then `\s+`, at a whitespace character.
    fn trailing_space(&self, i: usize, end: usize, last: usize) -> usize {
        if end == self.s.len() || last == i {
            end
        } else {
            last
        }
    }

    fn digits(&self, mut i: usize) -> usize {
        for _ in 0..3 {
            match self.at(i) {
                Some(c) if c.is(NUMBER) => i += c.len,
                _ => break,
            }
        }
        i
    }

    /// End of the `o200k_base` piece starting at `i` (`i < len`).
    fn o200k(&self, i: usize) -> usize {
        let Some(c) = self.at(i) else { return i };
        let starts = [c.is_word_prefix().then_some(i + c.len), Some(i)];
        for start in starts.into_iter().flatten() {
            if let Some(e) = self.cased_lower(start) {
                return self.contraction(e).unwrap_or(e);
            }
        }
        for start in starts.into_iter().flatten() {
            if let Some(e) = self.cased_upper(start) {
                return self.contraction(e).unwrap_or(e);
            }
        }
        if c.is(NUMBER) {
            return self.digits(i);
        }
        if let Some(e) = self.symbols(i, c, true) {
            return e;
        }
        if c.is(SPACE) {
            let (end, last, newline) = self.space_run(i);
            return newline.unwrap_or_else(|| self.trailing_space(i, end, last));
        }
        i + c.len
    }

    /// End of the `cl100k_base` piece starting at `i`.
    fn cl100k(&self, i: usize) -> usize {
        let Some(c) = self.at(i) else { return i };
        if let Some(e) = self.cl100k_contraction(i) {
            return e;
        }
        let start = if c.is_word_prefix() { i + c.len } else { i };
        if self.at(start).is_some_and(|d| d.is(LETTER)) {
            return self.run(start, LETTER);
        }
        if c.is(NUMBER) {
            return self.digits(i);
        }
        if let Some(e) = self.symbols(i, c, false) {
            return e;
        }
        if c.is(SPACE) {
            let (end, last, newline) = self.space_run(i);
            if end == self.s.len() {
                return end;
            }
            return newline.unwrap_or_else(|| self.trailing_space(i, end, last));
        }
        i + c.len
    }

    /// `'(?i:[sdmt]|ll|ve|re)`: same set as o200k's contractions.
    fn cl100k_contraction(&self, i: usize) -> Option<usize> {
        self.contraction(i)
    }
}

/// Which pre-tokenisation pattern to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    O200k,
    Cl100k,
}

/// Call `f` with every piece of `text`, in order.
pub fn for_each_piece(text: &str, pattern: Pattern, mut f: impl FnMut(&[u8])) {
    let t = Text {
        s: text.as_bytes(),
        table: &CLASSES,
    };
    let mut i = 0;
    while i < t.s.len() {
        let ascii = t.s[i] < 0x80;
        let e = match pattern {
            Pattern::O200k => ascii
                .then(|| t.o200k_ascii(i))
                .flatten()
                .unwrap_or_else(|| t.o200k(i)),
            Pattern::Cl100k => ascii
                .then(|| t.cl100k_ascii(i))
                .flatten()
                .unwrap_or_else(|| t.cl100k(i)),
        };
        debug_assert!(e > i);
        f(&t.s[i..e]);
        i = e;
    }
}

/// The pieces of `text` (for tests and debugging).
pub fn pieces(text: &str, pattern: Pattern) -> Vec<&str> {
    let mut out = Vec::new();
    let mut pos = 0;
    for_each_piece(text, pattern, |p| {
        out.push(&text[pos..pos + p.len()]);
        pos += p.len();
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pieces from the general (decoding) path only.
    fn general_pieces(text: &str, pattern: Pattern) -> Vec<&str> {
        let t = Text {
            s: text.as_bytes(),
            table: &CLASSES,
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < t.s.len() {
            let e = match pattern {
                Pattern::O200k => t.o200k(i),
                Pattern::Cl100k => t.cl100k(i),
            };
            out.push(&text[i..e]);
            i = e;
        }
        out
    }

    #[test]
    fn ascii_fast_path_edges() {
        for text in [
            "HELLO world's end'S 'ſ x'ſ",
            "ABCdef ABC\u{301}def caf\u{e9} nai\u{308}ve",
            " \u{a0}x  \u{85}\n \r\n\t 12\u{661}3 1234567",
            " ...— ./\n/ 'll 'LL 're'\u{17f}",
            "a\u{2028}b  \u{3000}",
        ] {
            for pattern in [Pattern::O200k, Pattern::Cl100k] {
                assert_eq!(
                    pieces(text, pattern),
                    general_pieces(text, pattern),
                    "{text:?}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn ascii_fast_path_equals_general_path(
            text in "\\PC{0,80}|[aAzZ09 '\\r\\n\\t\\x0b\\x0c.,/!é中ſ\\x{301}\\x{a0}\\x{85}\\x{661}\\x{2003}]{0,60}"
        ) {
            for pattern in [Pattern::O200k, Pattern::Cl100k] {
                prop_assert_eq!(pieces(&text, pattern), general_pieces(&text, pattern));
            }
        }
    }
}
